"""Class-incremental learning on a distilled (or any labelled) image set, as in SRe2L-CL.

The classes are put in a random order and split into `steps` equal groups. At step s a student is
trained on the images of every class seen so far (the new classes' and, replayed, the earlier ones')
and tested on the test images of those classes only. As in the official code
(zeyuanyin/SRe2L-CL@bdccefb main.py):

- class order: a permutation drawn with `np.random.seed(0)` (main.py:109-110; CUDD's `CLImageFolder`
  uses seed 42, MIV-XJTU/CUDD@0bf778c training/utils.py:111-113: `class_order_seed=42`);
- training images: all seen classes' images, old ones replayed (main.py:114-130);
- the student: a fresh one at every step (main.py:149), with a head over all classes;
- labels: the teacher's soft labels over all classes, not restricted to the seen ones
  (utils.py:54-58, KL at temperature T on the full logits); the test takes the arg-max over all
  classes (utils.py:64);
- test: the seen classes' test images only (main.py:132-144).

The student recipe is the EvalConfig's (cda's online or hard labels; FKD label files are made for
one set of images and cannot be subset, so `labels="stored"` is refused).
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from .config import EvalConfig
from .data import _subset
from .recover import Distilled
from .runtime import PLAIN, Speed
from .student import evaluate


def class_order(num_classes: int, seed: int = 0) -> list[int]:
    """The official order of the classes: np.random.seed(seed); np.random.permutation(num_classes)."""
    return np.random.RandomState(seed).permutation(num_classes).tolist()


def class_incremental(distilled: Distilled, test_split, cfg: EvalConfig, teacher: nn.Module | None = None, *,
                      steps: int = 5, class_order_seed: int = 0, device: str = "cpu",
                      progress: bool = True, speed: Speed = PLAIN) -> dict:
    """Train a fresh student per step on the images of the classes seen so far and test it on their
    test images (`speed`: the students' layout and compilation, cda.runtime). Returns {"class_order":
    [...], "steps": [{"step", "classes" (seen), "new_classes", "num_images", "num_test", "top1", "top5",
    "seconds"}, ...], "top1": [one per step]}."""
    info = test_split.info
    c = info.num_classes
    if type(steps) is not int or steps < 1 or c % steps:
        raise ValueError(f"class_incremental: steps={steps!r} must divide the {c} classes of {info.name} into "
                         f"equal groups (e.g. steps=5: {c // 5 if c >= 5 else 1} classes per step)")
    if cfg.labels == "stored":
        raise ValueError("class_incremental: FKD label files (labels='stored') are made for one image set and "
                         "cannot be subset per step; use labels='online' with the teacher, or 'hard'")
    labels = torch.as_tensor(distilled.labels).cpu()
    order = class_order(c, class_order_seed)
    per_step = c // steps
    missing = sorted(set(range(c)) - set(labels.unique().tolist()))
    if missing:
        raise ValueError(f"class_incremental: the set has no images of class(es) {missing[:10]}; every step "
                         f"trains on all classes seen so far, so each class needs images")
    out = []
    for s in range(steps):
        start = time.perf_counter()
        seen = order[:(s + 1) * per_step]
        keep = torch.isin(labels, torch.tensor(seen))
        part = Distilled(distilled.images[keep], labels[keep], {**distilled.meta, "cl_step": s + 1})
        tested = torch.isin(test_split.labels.cpu(), torch.tensor(seen))
        test = _subset(test_split, torch.nonzero(tested)[:, 0].numpy(), train=False)
        metrics = evaluate(part, test, replace(cfg, val_every=0), teacher, device=device, progress=progress,
                           desc=f"continual step {s + 1}/{steps}", speed=speed)
        out.append({"step": s + 1, "classes": sorted(seen), "new_classes": order[s * per_step:(s + 1) * per_step],
                    "num_images": int(keep.sum()), "num_test": len(test), "top1": float(metrics["top1"]),
                    "top5": float(metrics["top5"]), "seconds": time.perf_counter() - start})
    return {"class_order": order, "steps": out, "top1": [r["top1"] for r in out]}
