"""CUDD (Curriculum Dataset Distillation): synthesis in stages, each one harder for a student trained
on the stages before it (papers.md 6.5-6.7).

Per stage: pick real training images per class that the current student gets wrong but the teacher
gets right (`select_initial`), optimize them with SRe2L's CE + BN loss plus an L2 pull to the initial
image and an adversarial term that lowers the student's probability of the true class
(`synthesize_stage`), then train the next curriculum student on all images so far (`distill_cudd`).

Deliberate departures from the official code: the initial images are normalized before
optimization (the official code optimizes [0, 1] images as if normalized); the "hard" filter judges
the student against the true class (the official code compares with class 0); the adversarial term
averages over the images the teacher gets right only (the official code zeroes the student's logits
of the others, which keeps them in the mean as constants).
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cache import stamped
from .checkpoint import Resume
from .config import ConfigError, CuddConfig, EvalConfig, config_hash, to_dict
from .data import DatasetInfo
from .distilled import Distilled
from .distributed import rank_and_world
from .models import create_model
from .recover import synthesize
from .runtime import PLAIN_SPEEDS, Speeds
from .student import train_student
from .training import autocast, resolve_device

# Where an initial image came from, in the order the filters try them. "simple": the teacher is
# right (first stage, no student yet); "medium": the teacher is right and the student wrong;
# "hard": both are wrong; "other": any unused image; "noise": Gaussian init (real_init=False).
TIERS = ("simple", "medium", "hard", "other", "noise")
TERMS = ("loss", "ce", "bn", "l2", "adv")


@torch.no_grad()
def _predict(model: nn.Module, images_u8: torch.Tensor, info: DatasetInfo, dev: torch.device) -> np.ndarray:
    with autocast(dev, True):
        logits = model(info.normalize(images_u8.to(dev)))
    return logits.float().argmax(1).cpu().numpy()


def _tiers(teacher_ok: np.ndarray, student_ok: np.ndarray | None) -> list[str]:
    if student_ok is None:
        return ["simple" if t else "other" for t in teacher_ok]
    return ["medium" if t and not s else "hard" if not t and not s else "other"
            for t, s in zip(teacher_ok, student_ok)]


def select_initial(split, teacher: nn.Module, student: nn.Module | None, per_class: int, used: set[int],
                   rng: np.random.Generator, device: str = "cpu",
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` unused real training images per class, by CUDD's filters in order of preference.

    Without a student: images the teacher classifies correctly ("simple"). With one: images the
    teacher gets right and the student wrong ("medium"), then images both get wrong ("hard"), then
    any unused image ("other"). Each class is scanned in a random order and the scan stops once the
    preferred tier is full (the official code also stops early). Returns real indices and tiers,
    both [num_classes, per_class]; `used` is not changed.
    """
    dev = resolve_device(device)
    labels = split.labels.cpu().numpy()
    preferred = "simple" if student is None else "medium"
    indices = np.empty((split.info.num_classes, per_class), np.int64)
    tiers = np.empty((split.info.num_classes, per_class), object)
    for c in range(split.info.num_classes):
        pool = np.flatnonzero(labels == c)
        pool = rng.permutation(pool[~np.isin(pool, list(used))])
        if len(pool) < per_class:
            raise ValueError(f"class {c} has {len(pool)} unused training images, fewer than the {per_class} "
                             f"this stage needs (no real image is used twice)")
        found: dict[str, list[int]] = {t: [] for t in TIERS}
        for start in range(0, len(pool), batch_size):
            chunk = pool[start:start + batch_size]
            images = split.take(chunk)
            teacher_ok = _predict(teacher, images, split.info, dev) == c
            student_ok = None if student is None else _predict(student, images, split.info, dev) == c
            for i, tier in zip(chunk.tolist(), _tiers(teacher_ok, student_ok)):
                found[tier].append(i)
            if len(found[preferred]) >= per_class:
                break
        chosen = [(i, t) for t in (preferred, "hard", "other") for i in found[t]][:per_class]
        indices[c] = [i for i, _ in chosen]
        tiers[c] = [t for _, t in chosen]
    return indices, tiers


def adversarial_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                     label_smoothing: float = 0.0) -> torch.Tensor:
    """CUDD's non-saturating adversarial term: the mean of -log(1 - p + 1e-12) over the images whose
    teacher top-1 is the target, where p is the student's probability of the target, smoothed to
    (1 - eps) one-hot + eps / C. Images the teacher gets wrong add nothing (0 if there are none)."""
    num_classes = student_logits.shape[1]
    target = F.one_hot(targets, num_classes).float() * (1 - label_smoothing) + label_smoothing / num_classes
    p = (F.softmax(student_logits.float(), dim=1) * target).sum(dim=1)
    mask = (teacher_logits.argmax(dim=1) == targets).float()
    return (-torch.log(1 - p + 1e-12) * mask).sum() / mask.sum().clamp(min=1)


def _frozen(model: nn.Module, dev: torch.device) -> nn.Module:
    """An eval-mode copy without parameter gradients: the images, not the student, are optimized, and
    the original stays trainable for the next stage's warm start."""
    model = copy.deepcopy(model).to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def synthesize_stage(teacher: nn.Module, student: nn.Module | None, x0: torch.Tensor, info: DatasetInfo,
                     cfg: CuddConfig, start: int, device: str = "cpu", progress: bool = True,
                     desc: str = "cudd", progress_dir: Path | None = None,
                     checkpoint_every: int = 0, speeds: Speeds = PLAIN_SPEEDS) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Optimize one stage's images from their normalized initial images `x0` [slots, classes, C, H, W]
    (IPC slots start, start+1, ...) with recovery's loop (`recover.synthesize`) plus the L2 and
    adversarial terms. Returns the final uint8 images [slots, classes, C, H, W] and the
    per-iteration mean of each loss term over the groups.

    Groups, per-group BN statistics, views and their seeds are those of `recover.recover`, so a slot's
    views match SRe2L's. x and x0 get the same view each iteration. With `progress_dir` the stage
    resumes from its last checkpoint. Under torchrun each rank optimizes its share of the batches of
    groups and all ranks get the whole stage back.
    """
    dev = resolve_device(device)
    speed = speeds.of("cudd_recover")
    frozen = _frozen(student, dev) if student is not None and cfg.adv > 0 else None
    slots, n_classes = len(x0), info.num_classes

    def init(step_groups):
        return torch.cat([x0[i - start, torch.as_tensor(b)] for i, b in step_groups])

    def extra(view, view0, logits, y, gsize):
        zero = torch.zeros((), device=view.device)
        # The official MSE is over all pixels of the views; per group, then summed, keeps groups apart.
        l2 = ((view - view0) ** 2).flatten(1).mean(1).view(-1, gsize).mean(1).sum() if cfg.l2 > 0 else zero
        adv = zero
        if frozen is not None:
            with autocast(dev, cfg.recover.amp, cpu=speed.amp_cpu):
                s_logits = frozen(view)
            adv = sum(adversarial_loss(s, t, g, cfg.label_smoothing) for s, t, g in
                      zip(s_logits.split(gsize), logits.split(gsize), y.split(gsize)))
        return {"l2": l2, "adv": adv}

    rank, world = rank_and_world()
    out = synthesize(teacher, info, cfg.recover, (start, start + slots), init, extra, {"l2": cfg.l2, "adv": cfg.adv},
                     device, progress, desc=desc, progress_dir=progress_dir,
                     key=f"cudd {config_hash(stamped(cfg, speeds))} stage from slot {start}",  # its initial images, weights
                     checkpoint_every=checkpoint_every,
                     rank=rank, world_size=world, speed=speed)
    images = out.images.reshape(n_classes, slots, *out.images.shape[1:]).transpose(0, 1)
    return images, out.history()


def _initial_images(split, teacher: nn.Module, student: nn.Module | None, cfg: CuddConfig, stage: int,
                    slots: range, used: set[int], device: str) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Normalized initial images [slots, classes, C, H, W], with their real indices and tiers
    [slots, classes] (-1 and "noise" for Gaussian init)."""
    info = split.info
    shape = (len(slots), info.num_classes)
    if not cfg.real_init:
        noise = []
        for slot in slots:
            seed = int(np.random.SeedSequence([cfg.init_seed, slot]).generate_state(1)[0])
            noise.append(torch.randn(info.num_classes, info.channels, info.image_size, info.image_size,
                                     generator=torch.Generator().manual_seed(seed)))
        return torch.stack(noise), np.full(shape, -1), np.full(shape, "noise", object)
    rng = np.random.default_rng([cfg.init_seed, stage])
    indices, tiers = select_initial(split, teacher, student, len(slots), used, rng, device)
    images = split.take(indices.T.ravel())  # slot-major
    x0 = info.normalize(images).reshape(*shape, *images.shape[1:])
    return x0, indices.T, tiers.T


def _class_major(x: torch.Tensor) -> torch.Tensor:
    """[slots, classes, ...] -> [classes * slots, ...], all of class 0 first (recover's order)."""
    return x.transpose(0, 1).reshape(-1, *x.shape[2:])


def _train_curriculum_student(teacher: nn.Module, images: torch.Tensor, info: DatasetInfo, cfg: CuddConfig,
                              previous: nn.Module | None, device: str, progress: bool, stage: int,
                              progress_dir: Path | None = None, speeds: Speeds = PLAIN_SPEEDS) -> nn.Module:
    """A student on all stages so far (uint8 class-major `images`), warm-started from `previous` at
    the lower lr when cfg.warm_start, as the official curriculum students are."""
    warm = previous if cfg.warm_start else None
    labels = torch.arange(info.num_classes).repeat_interleave(len(images) // info.num_classes)
    ecfg = curriculum_student_config(cfg, warm=warm is not None)
    return train_student(Distilled(images, labels), info, ecfg, teacher if ecfg.labels == "online" else None,
                         device=device, progress=progress, desc=f"cudd student {stage}", init=warm,
                         progress_dir=progress_dir, speed=speeds.of("cudd_student"))


def curriculum_student_config(cfg: CuddConfig, warm: bool) -> EvalConfig:
    """The recipe of a curriculum student: `cfg.student` for `cfg.student_epochs` epochs, at
    `cfg.student_lr_warm` when it continues from the previous stage's student."""
    s = cfg.student
    return replace(s, aug=replace(s.aug, epochs=cfg.student_epochs), lr=cfg.student_lr_warm if warm else s.lr)


STAGE_FILE = "stage{}.pt"


def distill_cudd(teacher: nn.Module, train_split, info: DatasetInfo, cfg: CuddConfig, device: str = "cpu",
                 progress: bool = True, progress_dir: str | Path | None = None,
                 checkpoint_every: int = 0, speeds: Speeds = PLAIN_SPEEDS) -> Distilled:
    """Build a CUDD set of `cfg.stages[-1]` images per class, stage by stage.

    Returns uint8 images in class-major order with their labels; meta holds, per image, the real
    training index that seeded it ("seeds", -1 for noise) and its filter tier ("tiers"), and per
    stage its slots, tier counts and seconds. Deterministic for the config's seeds.

    With `progress_dir`, each finished stage is written once (its images, seeds, tiers, loss curves
    and the curriculum student trained after it) and the stage in flight checkpoints like recovery
    and student training do (`checkpoint_every` iterations; 0: by time, see `recover.synthesize`):
    the same call after an interruption continues from the last finished stage and the last
    checkpoint inside the next one, and gives the same set.

    Under torchrun the stages are sharded over the ranks and the curriculum students train with
    DistributedDataParallel; every rank returns the whole set. `speeds`: the runtime's settings of
    CUDD's recovery and students (cda.runtime.Speeds.of("cudd_recover"), "cudd_student").
    """
    if cfg.recover is None or cfg.student is None or not cfg.stages:
        raise ConfigError("CuddConfig needs recover, student and stages; in a run, RunConfig.cudd_for(ipc) "
                          "fills them in")
    dev = resolve_device(device)
    teacher = teacher.to(dev).eval()
    ipc, n_classes = cfg.stages[-1], info.num_classes
    x_all = torch.empty(ipc, n_classes, info.channels, info.image_size, info.image_size, dtype=torch.uint8)
    seeds = np.full((ipc, n_classes), -1)
    tiers = np.full((ipc, n_classes), "noise", object)
    used: set[int] = set()
    student, stages, history = None, [], {}
    folder = Path(progress_dir) if progress_dir is not None else None
    key = config_hash(stamped(cfg, speeds), info.name)
    rank, _ = rank_and_world()
    begin = time.perf_counter()
    for k, (a, b) in enumerate(cfg.stage_ranges(), 1):
        stage = Resume(folder / STAGE_FILE.format(k) if folder is not None else None, key, rank=rank)
        done = stage.saved()
        if done is not None:
            x_all[a:b], seeds[a:b] = done["images"], done["seeds"].numpy()
            tiers[a:b] = np.array(json.loads(done["tiers"]), object)
            history.update({f"stage{k}_{t}": v.tolist() for t, v in done["curves"].items()})
            stages.append(json.loads(done["meta"]))
            if done["student"] is not None:
                student = create_model(cfg.student.arch, n_classes, info.channels, info.image_size)
                student.load_state_dict(done["student"])
                student.eval()  # as train_student returns it: the filters judge with running statistics
            used.update(int(i) for i in seeds[a:b].ravel() if i >= 0)
            continue
        t0 = time.perf_counter()
        x0, seeds[a:b], tiers[a:b] = _initial_images(train_split, teacher, student, cfg, k, range(a, b), used,
                                                     device)
        used.update(int(i) for i in seeds[a:b].ravel() if i >= 0)
        t1 = time.perf_counter()
        stage_dir = folder / f"stage{k}" if folder is not None else None
        x_all[a:b], curves = synthesize_stage(teacher, student, x0, info, cfg, a, device, progress,
                                              desc=f"cudd stage {k}", progress_dir=stage_dir,
                                              checkpoint_every=checkpoint_every, speeds=speeds)
        history.update({f"stage{k}_{t}": v for t, v in curves.items()})
        t2 = time.perf_counter()
        if b < ipc:  # the last stage needs no student
            student = _train_curriculum_student(teacher, _class_major(x_all[:b]), info, cfg, student, device,
                                                progress, k, stage_dir, speeds)
        names, counts = np.unique(tiers[a:b], return_counts=True)
        stages.append({"slots": [a, b], "tiers": dict(zip(names.tolist(), counts.tolist())),
                       "seconds_init": t1 - t0, "seconds_synthesize": t2 - t1,
                       "seconds_student": time.perf_counter() - t2})
        if stage.path is not None and rank == 0:
            stage.save({
                "images": x_all[a:b].clone(), "seeds": torch.as_tensor(seeds[a:b]),
                "tiers": json.dumps(tiers[a:b].tolist()), "meta": json.dumps(stages[-1]),
                "curves": {t: torch.as_tensor(v) for t, v in curves.items()},
                "student": None if b == ipc else {n: v.detach().cpu() for n, v in student.state_dict().items()}})
            shutil.rmtree(stage_dir, ignore_errors=True)  # its checkpoints are superseded by the stage file
    meta = {"method": "cudd", "cudd": to_dict(cfg), "dataset": info.name, "device": str(dev),
            "seconds": time.perf_counter() - begin, "stages": stages,
            "seeds": seeds.T.ravel().tolist(), "tiers": tiers.T.ravel().tolist()}
    labels = torch.arange(n_classes).repeat_interleave(ipc)
    return Distilled(_class_major(x_all), labels, meta, history)
