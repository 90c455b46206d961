"""Student protocols fixed in advance: a second way to train the students, independent of the tuned one.

Every preset's own student recipe (`RunConfig.eval`) was tuned on the validation split (cda tune). A claim
that holds under that recipe only may owe its verdict to the tuning, so each claim is also judged under a
protocol chosen before seeing any result and never tuned (issue 25, part 4). A protocol replaces the
recipe's knobs (loss temperature, optimizer, schedule, augmentation) and keeps what is not a recipe choice:
the student architecture, the label mode, the budget (epochs, batch size; they set the cost) and flips
(off on digits, whose classes are not mirror-symmetric). The teacher, the full-data reference and every
distilled set stay those of the preset (CUDD's curriculum students are pinned to the preset's recipe, as
they are part of its synthesis), so only the students' training differs.

`preset(name, protocol="kd")` (and `--protocol kd`, or `--set protocol=kd`, on the command line) builds a
preset under a protocol; its results go to results/<study>/<preset>-<protocol>.csv (cda.paths.run_tag).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .checks import ConfigError
from .schema import RunConfig

TUNED = "tuned"  # the presets' own recipes


@dataclass(frozen=True)
class StudentProtocol:
    """A fixed student recipe: the EvalConfig knobs it sets, with where each choice comes from."""

    name: str
    title: str
    sources: tuple[str, ...]
    temperature: float
    t2_scale: bool
    optimizer: str
    lr: float
    weight_decay: float
    warmup_epochs: int  # 0: cosine from the start
    mix: str
    crop_scale: tuple[float, float]

    def apply(self, cfg: RunConfig) -> RunConfig:
        """`cfg` with its students trained under this protocol (see the module docstring)."""
        e = cfg.eval
        student = replace(e, temperature=self.temperature, t2_scale=self.t2_scale, optimizer=self.optimizer,
                          lr=self.lr, weight_decay=self.weight_decay, warmup_epochs=self.warmup_epochs,
                          aug=replace(e.aug, mix=self.mix, crop_scale=self.crop_scale))
        # one recipe for every method (no per-method batch sizes); CUDD's sets keep the tuned students
        return replace(cfg, eval=student, method_eval=(), cudd=replace(cfg.cudd, student=cfg.cudd.student or e))


# Plain knowledge distillation, fixed before any result under it was seen.
PLAIN_KD = StudentProtocol(
    name="kd",
    title="plain KD: T 4 with the T² factor, AdamW lr 1e-3 wd 0.01, cosine, crops 0.5–1, no CutMix",
    sources=(
        "T² factor: Hinton, Vinyals and Dean, 'Distilling the Knowledge in a Neural Network' (2015), section 2",
        "T 4: the KD baseline of Tian, Krishnan and Isola, 'Contrastive Representation Distillation' (ICLR 2020; "
        "its RepDistiller code's default --kd_T 4)",
        "AdamW lr 1e-3, weight decay 0.01, per-epoch cosine: the SRe2L/CDA/CUDD student recipe "
        "(papers.md 5.4: train_FKD.py), without its CutMix and its T 20",
        "crops of 0.5–1 and no mixing: a mild augmentation, so that the protocol differs from the tuned ones "
        "in the knobs tuning moved (temperature, learning rate, crop range)",
    ),
    temperature=4.0, t2_scale=True, optimizer="adamw", lr=1e-3, weight_decay=0.01, warmup_epochs=0,
    mix="none", crop_scale=(0.5, 1.0),
)

PROTOCOLS: dict[str, StudentProtocol] = {PLAIN_KD.name: PLAIN_KD}


def get_protocol(name: str) -> StudentProtocol:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown student protocol {name!r}; choose one of {sorted(PROTOCOLS)} "
                          f"(or leave it out for the preset's tuned recipe)")
    return PROTOCOLS[name]


def protocol_of(tag: str) -> str:
    """The protocol a results tag names ('digits-kd' -> 'kd'), TUNED for a preset's own ('digits')."""
    return next((p for p in PROTOCOLS if tag.endswith(f"-{p}")), TUNED)
