"""The configuration schema: frozen, validated dataclasses shared by the command line, the notebooks
and the tests, and the derivations a run makes from them (each method's student recipe, CUDD's
stages, the configs of one seed).

Every hyperparameter of every step is a field here, with the source of its default in a comment
where the papers or the official code set it (see ../shared/research/papers.md, sections 5 and 6).
Which methods exist and how each builds its options is the methods layer's (cda.methods): this
module imports nothing above it, and no torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..datasets import DATASETS
from ..runtime import SPEED_FIELDS, Speeds
from .checks import (
    CROP_SCHEDULES,
    LABEL_MODES,
    MIX_KINDS,
    OPTIMIZERS,
    _check,
    _check_distinct,
    _check_positive,
    _check_scale,
    _check_seeds,
    added,
    with_field,
)
from .seeds import SEED_SCOPES, seeded_eval, seeded_options

SPEEDS = ("fixed", "auto")
SCHEDULES = ("cosine", "onecycle")  # EvalConfig.schedule
# Where the stages' speed fields went ("recover.channels_last" -> "speeds.recover.channels_last"): saved
# configs and overrides that name the old place still work (RunConfig._upgrade, cda.config.io).
MOVED_TO_SPEEDS = {f"{section}.{knob}": f"speeds.{stage}.{knob}"
                   for section, stage in (("squeeze", "teacher"), ("recover", "recover"), ("eval", "student"),
                                          ("cudd.recover", "cudd_recover"), ("cudd.student", "cudd_student"))
                   for knob in SPEED_FIELDS}


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and an optional stratified subset (for tests and smoke runs)."""

    name: str = "fashion_mnist"
    root: str | None = None  # None: look in the usual places (see cda.data)
    train_per_class: int | None = None  # None: the whole training set
    test_per_class: int | None = None  # None: the whole test set
    subset_seed: int = 0
    download: bool = False  # torchvision's downloaders, where there is internet
    image_size: int | None = None  # folder datasets only: resize to this (None: the dataset's own size)
    workers: int | None = None  # folder datasets only: DataLoader workers (None: up to 8)
    # False: pixels in [0, 1] go to the models as they are (mean 0, std 1), as the ImageNet-21K-P
    # teacher was trained (papers.md 5.1); True: the dataset's own mean and std.
    normalize: bool = added(True)
    # Training images per class held out as a validation set (cda.data.load_split(cfg, split="val")),
    # drawn from subset_seed before any train_per_class subset; the training split no longer holds
    # them, so every tuning choice can be made on them and never on the test set. 0: none.
    validation: int = added(0)
    # Folder datasets' test view: Resize(size / ratio) then CenterCrop(size), as ImageNet's 256 -> 224
    # (0.875); 1.0: the images as they are (Tiny-ImageNet's official plain 64-px view).
    test_crop_ratio: float = added(0.875)

    def __post_init__(self):
        _check(0 < self.test_crop_ratio <= 1, f"DataConfig.test_crop_ratio={self.test_crop_ratio}: must lie in (0, 1] "
                                              f"(1.0: no resize or crop)")
        for name in ("train_per_class", "test_per_class"):
            value = getattr(self, name)
            _check(value is None or value > 0, f"DataConfig.{name}={value}: must be positive or None")
        _check(isinstance(self.validation, int) and self.validation >= 0,
               f"DataConfig.validation={self.validation}: give a number of images per class >= 0 "
               f"(0: no validation split)")
        _check(self.image_size is None or self.image_size > 0, f"DataConfig.image_size={self.image_size}: must be positive")
        _check_seeds(self, "subset_seed")
        own = DATASETS.get(self.name)  # in-memory datasets are never resized
        _check(not (own and own.in_memory and self.image_size not in (None, own.image_size)),
               f"DataConfig.image_size={self.image_size}: {self.name} images are {own and own.image_size} px and "
               f"are not resized; drop data.image_size (only folder datasets are resized)")


@dataclass(frozen=True)
class SqueezeConfig:
    """Training the teacher on the full training set (hard labels)."""

    arch: str = "convnet3"
    epochs: int = 5
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    crop_scale: tuple[float, float] = (0.5, 1.0)  # RandomResizedCrop scale during training
    flip: bool = True
    label_smoothing: float = 0.0
    pretrained: str | None = None  # torchvision weights name, e.g. "IMAGENET1K_V1": no training
    seed: int = 0  # (on CUDA the teacher trains under bf16 autocast; the CPU's speed: RunConfig.speeds)

    def __post_init__(self):
        _check_positive(self, "batch_size", "lr")
        _check_seeds(self, "seed")
        _check(self.epochs > 0 or self.pretrained, f"SqueezeConfig.epochs={self.epochs}: must be positive")
        _check(self.optimizer in OPTIMIZERS, f"SqueezeConfig.optimizer={self.optimizer!r}: choose one of {OPTIMIZERS}")
        _check_scale("SqueezeConfig.crop_scale", self.crop_scale)


def full_data_recipe(teacher: SqueezeConfig, arch: str) -> SqueezeConfig:
    """The full-data reference of a student architecture, the one definition (the pipeline's tables
    and cda.evaluator's HLR): the teacher's recipe on `arch`, trained from scratch on all the training
    data under the next seed, so it is a model of its own, never the teacher reused."""
    return replace(teacher, arch=arch, pretrained=None, seed=teacher.seed + 1)


@dataclass(frozen=True)
class CurriculumConfig:
    """CDA's crop curriculum: RandomResizedCrop's lower scale bound as a function of the iteration.

    schedule "none" keeps the bound at `end_scale` throughout, which is SRe2L.
    `reverse` runs the schedule backwards in time (hard to easy, the paper's RCL ablation).
    """

    schedule: str = "none"
    milestone: float = 1.0  # fraction of the iterations after which the bound stays at end_scale
    start_scale: float = 1.0
    end_scale: float = 0.08
    reverse: bool = False

    def __post_init__(self):
        _check(self.schedule in CROP_SCHEDULES,
               f"CurriculumConfig.schedule={self.schedule!r}: choose one of {CROP_SCHEDULES}")
        _check(0 <= self.milestone <= 1, f"CurriculumConfig.milestone={self.milestone}: must lie in [0, 1]")
        _check_scale("CurriculumConfig (end_scale, start_scale)", (self.end_scale, self.start_scale))


@dataclass(frozen=True)
class RecoverConfig:
    """Synthesis from noise by BatchNorm-statistics matching plus cross-entropy (SRe2L / CDA)."""

    ipc: int = 10
    iterations: int = 1000
    lr: float = 0.25  # official ImageNet-1K and CIFAR scripts
    betas: tuple[float, float] = (0.5, 0.9)
    r_bn: float = 0.01
    first_bn_multiplier: float = 10.0
    jitter: int = 4  # circular shift by 0..jitter pixels (official small-data scripts: 4; ImageNet: 32)
    flip: bool = True
    crop: bool = True  # official CIFAR script: no crop at all, roll only
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    classes_per_group: int = 100  # one image per class per group; official batches 100 classes
    groups_per_step: int = 0  # groups optimized together (BN statistics stay per group); 0: all
    seed: int = 0
    amp: bool = True  # bf16 autocast, only on CUDA (the paper presets: False, fp32 as the official code)
    # Consecutive groups whose images form one BatchNorm batch. 1: one image per class of a block (the
    # official batch). k: the statistics are matched over k groups at once; on a 10-class dataset
    # that is k images per class, e.g. 10 for ImageNet's 100-image batch. Steps hold whole batches.
    bn_groups: int = added(1)

    def __post_init__(self):
        _check_positive(self, "ipc", "iterations", "lr", "classes_per_group")
        _check_seeds(self, "seed")
        _check(self.r_bn >= 0, f"RecoverConfig.r_bn={self.r_bn}: must not be negative")
        _check(self.jitter >= 0, f"RecoverConfig.jitter={self.jitter}: must not be negative")
        _check(self.groups_per_step >= 0, f"RecoverConfig.groups_per_step={self.groups_per_step}: must be >= 0")
        _check(isinstance(self.bn_groups, int) and self.bn_groups >= 1,
               f"RecoverConfig.bn_groups={self.bn_groups}: give a number of groups >= 1 (1: the official batch)")


@dataclass(frozen=True)
class AugConfig:
    """The student's view of the distilled set: shared by relabeling and evaluation, so that stored
    soft labels line up with the crops the student sees."""

    epochs: int = 300
    batch_size: int = 128
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    mix: str = "cutmix"
    mix_alpha: float = 1.0  # cutmix Beta(1, 1); mixup in the official code uses 0.8
    mix_prob: float = 1.0  # probability that a batch is mixed
    seed: int = 42  # the official fkd_seed

    def __post_init__(self):
        _check_positive(self, "epochs", "batch_size")
        _check_seeds(self, "seed")
        _check_scale("AugConfig.crop_scale", self.crop_scale)
        _check(self.mix in MIX_KINDS, f"AugConfig.mix={self.mix!r}: choose one of {MIX_KINDS}")
        _check(self.mix == "none" or self.mix_alpha > 0, f"AugConfig.mix_alpha={self.mix_alpha}: must be positive")
        _check(0 <= self.mix_prob <= 1, f"AugConfig.mix_prob={self.mix_prob}: must lie in [0, 1]")


@dataclass(frozen=True)
class RelabelConfig:
    """FKD-style stored soft labels: per batch, the augmentation parameters and the teacher's logits."""

    aug: AugConfig = field(default_factory=AugConfig)
    dtype: str = "float16"  # the teacher's logits are rounded to this before storing (or before top-k)
    # Compact format (cda.labels_compact): topk > 0 keeps the k largest logits per view, quantized as
    # `quant` ("int8": uint8 codes with a per-row offset and scale; "fp16"), plus one fill value for
    # the other classes that keeps their softmax mass at `fill_temperature` (the student's T); the
    # plan is not stored but regenerated from the AugConfig. topk = 0: full logits and plans (FKD);
    # topk = C: every logit, quantized, no plan.
    topk: int = 0
    quant: str = "int8"
    fill_temperature: float = 20.0
    # A pool of labelled epochs: 0 labels every training epoch (FKD); n > 0 labels only the first n,
    # and training epoch e reuses the views and labels of epoch e mod n (n times less storage, fewer
    # distinct views).
    label_epochs: int = added(0)
    # bf16 autocast for the teacher on CUDA; False: fp32 (TF32 on CUDA), as the official code. Left
    # out of the hash at False: on the CPU, where the cached labels were made, both are fp32.
    amp: bool = added(False)

    def __post_init__(self):
        _check(self.dtype in ("float16", "bfloat16", "float32"),
               f"RelabelConfig.dtype={self.dtype!r}: choose float16, bfloat16 or float32")
        _check(self.topk >= 0, f"RelabelConfig.topk={self.topk}: must be >= 0 (0: full logits)")
        _check(self.quant in ("int8", "fp16"), f"RelabelConfig.quant={self.quant!r}: choose int8 or fp16")
        _check(self.fill_temperature > 0, f"RelabelConfig.fill_temperature={self.fill_temperature}: must be positive")
        _check(self.label_epochs >= 0, f"RelabelConfig.label_epochs={self.label_epochs}: must be >= 0 (0: every epoch)")

    @property
    def stored_epochs(self) -> int:
        """How many epochs of labels are stored."""
        return min(self.label_epochs, self.aug.epochs) if self.label_epochs else self.aug.epochs


@dataclass(frozen=True)
class EvalConfig:
    """Training a student on a distilled set and testing it on the real test set."""

    arch: str = "convnet3"
    aug: AugConfig = field(default_factory=AugConfig)
    labels: str = "online"  # "online": teacher in the loop; "stored": FKD labels; "hard": class labels
    temperature: float = 20.0  # official ImageNet scripts
    t2_scale: bool = False  # official FKD/CIFAR code: no T^2 factor; the Tiny code multiplies by T^2
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    momentum: float = 0.9
    test_batch_size: int = 512
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA (layout, CPU bf16 and compilation: RunConfig.speeds)
    # Where the student is tested: "test" (the final tables) or "val", the DataConfig.validation images
    # held out of the training set, on which every tuning choice is made.
    split: str = added("test")
    # Linear warm-up of the learning rate from 1% over the first epochs, then cosine over the rest
    # (the official Tiny-ImageNet students: 5); 0: per-epoch cosine from the start (FKD).
    warmup_epochs: int = added(0)
    # The soft-label loss (hard labels always train with cross-entropy): "kl" the KL above;
    # "mse_gt" CUDD's option, MSE between the student's and the teacher's logits plus ce_weight x
    # cross-entropy with the image's class (cda.student.mse_gt_loss). Validation: every val_every
    # epochs and at the last, cda.student.evaluate tests the student on the validation split and
    # reports the best and the last weights' test accuracy (the tables keep the last, as the papers
    # do); 0: never.
    loss: str = added("kl")
    ce_weight: float = added(0.1)
    val_every: int = added(0)
    # Options for students that converge in fewer epochs (cda tune --stages fast; the defaults change
    # nothing). schedule "onecycle": torch's OneCycleLR learning rate per step (cda.training.onecycle_lr),
    # in place of warm-up and per-epoch cosine. ema_decay > 0: the student tested is an exponential
    # moving average of the weights (cda.weight_ema). label_smoothing: the teacher's soft labels (or
    # the hard labels) mixed with the uniform distribution, (1 - s) p + s / C.
    schedule: str = added("cosine")
    ema_decay: float = added(0.0)
    label_smoothing: float = added(0.0)

    def __post_init__(self):
        _check(self.schedule in SCHEDULES, f"EvalConfig.schedule={self.schedule!r}: choose one of {SCHEDULES}")
        _check(not (self.schedule == "onecycle" and self.warmup_epochs),
               f"EvalConfig.warmup_epochs={self.warmup_epochs} with schedule='onecycle': one-cycle warms up by "
               f"itself; set warmup_epochs=0")
        _check(0 <= self.ema_decay < 1, f"EvalConfig.ema_decay={self.ema_decay}: must lie in [0, 1) (0: no EMA)")
        _check(0 <= self.label_smoothing < 1,
               f"EvalConfig.label_smoothing={self.label_smoothing}: must lie in [0, 1) (0: no smoothing)")
        _check(not (self.label_smoothing and self.loss == "mse_gt"),
               f"EvalConfig.label_smoothing={self.label_smoothing} with loss='mse_gt': that loss matches logits, "
               f"not distributions; set label_smoothing=0 or loss='kl'")
        _check(self.loss in ("kl", "mse_gt"), f"EvalConfig.loss={self.loss!r}: choose 'kl' or 'mse_gt'")
        _check(self.ce_weight >= 0, f"EvalConfig.ce_weight={self.ce_weight}: must be >= 0")
        _check(type(self.val_every) is int and self.val_every >= 0,
               f"EvalConfig.val_every={self.val_every}: give a number of epochs >= 0 (0: no validation)")
        _check(self.warmup_epochs >= 0, f"EvalConfig.warmup_epochs={self.warmup_epochs}: must be >= 0")
        _check(self.split in ("test", "val"), f"EvalConfig.split={self.split!r}: choose 'test' or 'val'")
        _check(self.labels in LABEL_MODES, f"EvalConfig.labels={self.labels!r}: choose one of {LABEL_MODES}")
        _check(self.temperature > 0, f"EvalConfig.temperature={self.temperature}: must be positive")
        _check(self.optimizer in OPTIMIZERS, f"EvalConfig.optimizer={self.optimizer!r}: choose one of {OPTIMIZERS}")
        _check_positive(self, "lr", "test_batch_size")
        _check_seeds(self, "seed")


@dataclass(frozen=True)
class CuddConfig:
    """CUDD: the distilled set is synthesized in stages of IPC slots, each stage initialized from
    real images that the previous stage's student finds hard, and optimized with SRe2L's CE + BN
    loss plus an L2 pull to the initial image and an adversarial term against that student
    (papers.md 6.5-6.7).

    `stages` are IPC boundaries: (1, 3) makes slots 0..0 in stage 1 and slots 1..2 in stage 2.
    `recover` holds the shared synthesis settings (lr, r_bn, iterations, views; a crop curriculum
    there gives CUDD+CDA) and `student` the curriculum students' recipe, whose `aug.epochs` is
    replaced by `student_epochs`. In a RunConfig, `recover`, `student` and `stages` may stay unset
    (None, ()): `RunConfig.cudd_for(ipc)` fills them in from the run.
    """

    recover: RecoverConfig | None = None
    student: EvalConfig | None = None
    stages: tuple[int, ...] = ()
    l2: float = 1.0  # official: MSE between the views of x and x0
    adv: float = 1.0  # official weight of the non-saturating adversarial term
    label_smoothing: float = 0.0  # official default: one-hot adversarial target
    real_init: bool = True  # False: Gaussian noise init (ablation); the L2 term then pulls to that noise
    student_epochs: int = 50  # per curriculum student; the official 150 is half of the final 300
    student_lr_warm: float = 5e-4  # official: halved lr when continuing from the previous student
    warm_start: bool = True
    init_seed: int = 0
    # Stage boundaries as fractions of the IPC, used when `stages` is unset: the official README's
    # one example is IPC 20 -> 50, i.e. 0.4 of the final IPC in the first stage. (1.0,): one stage.
    stage_fractions: tuple[float, ...] = added((0.4, 1.0))

    def __post_init__(self):
        st = self.stages
        _check(all(s > 0 for s in st), f"CuddConfig.stages={st}: IPC boundaries must be positive")
        _check(all(a < b for a, b in zip(st, st[1:])), f"CuddConfig.stages={st}: boundaries must strictly increase")
        if st and self.recover is not None:
            _check(st[-1] == self.recover.ipc, f"CuddConfig.stages={st} must end at recover.ipc={self.recover.ipc}")
        _check(self.l2 >= 0 and self.adv >= 0, f"CuddConfig: l2={self.l2} and adv={self.adv} must not be negative")
        _check(0 <= self.label_smoothing < 1, f"CuddConfig.label_smoothing={self.label_smoothing}: must lie in [0, 1)")
        _check_positive(self, "student_epochs", "student_lr_warm")
        _check_seeds(self, "init_seed")
        fr = self.stage_fractions
        _check(len(fr) > 0 and all(0 < f <= 1 for f in fr) and fr[-1] == 1.0 and list(fr) == sorted(set(fr)),
               f"CuddConfig.stage_fractions={fr}: increasing fractions of the IPC in (0, 1], ending at 1.0")
        _check(self.student is None or self.student.labels != "stored",
               "CuddConfig.student.labels='stored': curriculum students use online soft labels or hard labels")

    def stage_ranges(self) -> list[tuple[int, int]]:
        """The [start, stop) IPC slots of each stage."""
        return list(zip((0,) + self.stages[:-1], self.stages))


@dataclass(frozen=True)
class RunConfig:
    """The whole pipeline: squeeze a teacher, then for each IPC and method build a distilled set,
    relabel it and evaluate students on it, plus the full-data reference."""

    data: DataConfig = field(default_factory=DataConfig)
    squeeze: SqueezeConfig = field(default_factory=SqueezeConfig)
    recover: RecoverConfig = field(default_factory=RecoverConfig)
    # CDA's crop curriculum (saved configs and overrides that call it `cda` are still read: cda.config.io)
    curriculum: CurriculumConfig = field(default_factory=lambda: CurriculumConfig(schedule="cosine", milestone=1.0),
                                         metadata={"was": "cda"})
    eval: EvalConfig = field(default_factory=EvalConfig)
    cudd: CuddConfig = field(default_factory=CuddConfig)
    # Stored-label options (compact formats, labelled epochs); the views are always eval.aug's.
    relabel: RelabelConfig = added(RelabelConfig())
    ipcs: tuple[int, ...] = (1, 10, 50)
    methods: tuple[str, ...] = ("random", "sre2l", "cda")  # "cudd" on request: it trains students per stage
    eval_seeds: tuple[int, ...] = (0,)
    full_data: bool = True  # the teacher recipe on the student architecture, trained on all data
    device: str = "cpu"
    # $CDA_CACHE_DIR lets several output folders (runs/, results/, a test's temp folder) share one cache
    cache_dir: str = field(default_factory=lambda: os.environ.get("CDA_CACHE_DIR", ".cache/cda"))
    out_dir: str = "runs/results/main/custom"  # a user's runs (cda run --publish: results/main/<preset>)
    # What an evaluation seed varies: "student" its initialization only (eval.seed); "all" also its
    # views and batch order, the synthesis noise, the random-real subset and CUDD's initialization
    # (RunConfig.for_seed, RunConfig.seeded).
    seed_scope: str = added("student")
    # "auto": each stage's layout, precision and compilation are measured once on this machine and the
    # fastest kept (cda.speed, <cache_dir>/speed.json); "fixed": `speeds` as written.
    speed: str = added("fixed")
    # Each stage's memory layout, CPU precision and compilation: the runtime's (cda.runtime.Speeds),
    # kept apart from the stages' configs; non-default values still enter the keys (cda.cache.stamped).
    speeds: Speeds = added(Speeds())
    # At most this many students that share a recipe (but for the seed), an architecture and a set size
    # train in one pass (cda.students_batched; 1: one at a time). In no key, as the thread count: a
    # student trained with others is the one trained alone up to float rounding.
    students_at_once: int = added(1)
    # Studies other than the main tables run only the first n of eval_seeds (0: all of them), so that
    # the main tables can hold more seeds than every ablation can afford.
    ablation_seeds: int = added(0)
    # Student recipes that differ by method: (method, dotted EvalConfig field, value) replacing `eval`'s
    # field for that method's students (and so the views its stored labels are made on), e.g. CDA's
    # batch 128 against SRe2L's 1,024 (results/paper/official_settings.csv). See eval_for.
    method_eval: tuple[tuple[str, str, Any], ...] = added(())
    # The main table's student architectures (empty: eval.arch alone), e.g. ResNet-18/50/101.
    students: tuple[str, ...] = added(())

    def __post_init__(self):
        _check(self.students_at_once >= 1, f"RunConfig.students_at_once={self.students_at_once}: must be >= 1 "
                                            f"(1: one student at a time)")
        _check(self.ablation_seeds >= 0, f"RunConfig.ablation_seeds={self.ablation_seeds}: must be >= 0 (0: all seeds)")
        _check(self.speed in SPEEDS, f"RunConfig.speed={self.speed!r}: choose one of {SPEEDS}")
        _check(self.seed_scope in SEED_SCOPES, f"RunConfig.seed_scope={self.seed_scope!r}: choose one of {SEED_SCOPES}")
        _check(len(self.ipcs) > 0 and all(i > 0 for i in self.ipcs), f"RunConfig.ipcs={self.ipcs}: must be positive")
        # which method names exist is the registry's to say (cda.methods.check_run), above this layer
        _check(all(isinstance(m, str) and m for m in self.methods),
               f"RunConfig.methods={self.methods}: give method names")
        _check(len(self.eval_seeds) > 0, "RunConfig.eval_seeds: give at least one seed")
        _check_seeds(self, "eval_seeds")
        _check_distinct(self, "ipcs")
        _check_distinct(self, "methods")
        for entry in self.method_eval:
            _check(len(entry) == 3 and isinstance(entry[0], str),
                   f"RunConfig.method_eval: {entry!r}: give (method, dotted eval field, value)")
            with_field(self.eval, entry[1], entry[2])  # an unknown field is an error now

    _moved = MOVED_TO_SPEEDS  # overrides that name a speed field's old place (cda.config.io.apply_overrides)

    @staticmethod
    def _upgrade(data: dict) -> dict:
        """A saved config's dict with the speed fields its stages held before the runtime took them
        (recover.channels_last, ...) moved to `speeds` (cda.config.io.from_dict)."""
        data = dict(data)
        for old, new in MOVED_TO_SPEEDS.items():
            section, name = old.split(".")[:-1], old.split(".")[-1]
            node = data
            for part in section:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict) or name not in node:
                continue
            value = node.pop(name)
            if value is True:
                stage, knob = new.split(".")[1:]
                speeds = data.setdefault("speeds", {})
                speeds[stage] = {**(speeds.get(stage) or {}), knob: True}
        return data

    def full_data_recipe(self, arch: str | None = None) -> SqueezeConfig:
        """The full-data reference of a student architecture (default eval.arch): `full_data_recipe`."""
        return full_data_recipe(self.squeeze, arch or self.eval.arch)

    def eval_for(self, method: str) -> EvalConfig:
        """The student recipe of a method's sets: `eval` with the method's `method_eval` fields."""
        e = self.eval
        for name, knob, value in self.method_eval:
            if name == method:
                e = with_field(e, knob, tuple(value) if isinstance(value, list) else value)
        return e

    def recover_at(self, ipc: int, curriculum: bool = False) -> RecoverConfig:
        """The run's recovery config at one IPC, with its crop curriculum (CDA) or without (SRe2L: the
        crop's lower bound stays at the curriculum's end value throughout)."""
        return replace(self.recover, ipc=ipc, curriculum=self.curriculum if curriculum
                       else CurriculumConfig(end_scale=self.curriculum.end_scale))

    def relabel_for(self, eval_cfg: "EvalConfig | None" = None) -> RelabelConfig:
        """The stored-label config of a student recipe: the run's label format, the recipe's views."""
        return replace(self.relabel, aug=(eval_cfg or self.eval).aug)

    def seeded(self, seed: int) -> "RunConfig":
        """This run with every random choice made downstream of the teacher drawn from one `seed`.

        One seed drives, each through its own stream (`derive_seed(seed, part)`: numpy SeedSequence
        spawn keys, so no two parts share a stream and the same seed always gives the same run):

        - "student": the student's initialization and its global torch/numpy state (eval.seed);
        - "views": the student's augmentation plan and batch order, which are also the views its
          stored soft labels are made on (eval.aug.seed);
        - "synthesis": the noise SRe2L and CDA start from (recover.seed), and the random-real subset,
          which the "random" method draws from recover.seed too (cda.methods.random_real, through
          default_rng(recover.seed), while the noise comes from SeedSequence([recover.seed, slot,
          class]));
        - "cudd": CUDD's real-image and noise initialization (cudd.init_seed); where the run sets
          CUDD's own curriculum student or recovery config, their seeds follow "cudd_student",
          "cudd_views" and "synthesis".

        `eval_seeds` becomes (eval.seed,), so `pipeline.run(cfg.seeded(s))` trains one student per cell.
        Not varied: the teacher (squeeze.seed: one teacher, shared by every seed), which training and
        test images there are (data.subset_seed, and the validation split drawn from it), and the
        stored-label format. The derived seeds are not the old defaults (eval.seed 0, aug.seed 42,
        recover.seed 0, init_seed 0): seed 0 is a new run, not the committed one.
        """
        ev = seeded_eval(self.eval, seed)
        return replace(self, eval=ev, recover=seeded_options(self.recover, seed),
                       cudd=seeded_options(self.cudd, seed), eval_seeds=(ev.seed,))

    def for_seed(self, seed: int, eval_cfg: "EvalConfig | None" = None, options: Any = None) -> tuple:
        """The student recipe and the set's options of one evaluation seed, as `seed_scope` says:
        "student" (the old behaviour) sets only the student's seed (eval.seed = seed); "all" draws
        every random part from the seed (`seeded_eval`, `seeded_options`). `eval_cfg` and `options`
        default to the run's; returns (eval config, options), options None where none were given and
        only the student's seed moves."""
        e = eval_cfg or self.eval
        if self.seed_scope == "student":
            return replace(e, seed=seed), options
        return seeded_eval(e, seed), None if options is None else seeded_options(options, seed)

    def cudd_for(self, ipc: int) -> CuddConfig:
        """The complete CUDD config at one IPC. Unset parts come from the run: `recover` from SRe2L's
        recovery config (CUDD schedules no crops), `student` from `eval` (with online labels where
        `eval` stores them), and `stages` from `cudd.stage_fractions` of the IPC (IPC 50: (20, 50);
        IPC 1: a single stage)."""
        c = self.cudd
        stages = c.stages or tuple(sorted({max(1, round(f * ipc)) for f in c.stage_fractions}))
        _check(stages[-1] == ipc, f"RunConfig.cudd.stages={stages} must end at the IPC asked for ({ipc}); "
                                  f"leave it empty to derive the stages from the IPC")
        student = c.student or self.eval
        if student.labels == "stored":  # curriculum students label online: the same views, no files
            student = replace(student, labels="online")
        # they are never tested, so where the run's students are tested does not change the set
        student = replace(student, split="test")
        return replace(c, recover=replace(c.recover or self.recover_at(ipc), ipc=ipc),
                       student=student, stages=stages)
