"""Evaluate a distilled set given as plain tensors, from any tool, with cda's student protocol.

The counterpart of DD-Ranking's `compute_metrics` (NUS-HPC-AI-Lab/DD-Ranking @b8b0966): students are
trained on the set and tested on the real test split, and the set is compared with two references,
as DD-Ranking defines them (README "Label-Robust Score"; `ddranking/metrics/soft_label.py` and
`hard_label.py`):

- IOR, improvement over random = Acc(syn-any) - Acc(rdm-any): the set's accuracy with its own labels
  minus that of random real images at the same IPC with the same labels and recipe;
- HLR, hard label recovery = Acc(real-hard) - Acc(syn-hard): full-data accuracy minus the set's
  accuracy with hard labels.

cda reports both as fractions (accuracies in [0, 1]), not percentage points: DD-Ranking 0.2.0 feeds
percentages into its LRS exponential, which saturates (successors.md 3.1). `lrs` is DD-Ranking's
label-robust score, (e^a - e^-1) / (e - e^-1) with a = 0.5 IOR - 0.5 HLR, on those fractions.
Accuracies (`top1`, `top5`, and the references) are in percent, like the rest of cda.

Differences from DD-Ranking: one recipe (the EvalConfig) for every run instead of a learning-rate
grid, the last epoch's accuracy instead of the best one on the test set, and seeds instead of clock
seeding; the random subset is redrawn for each seed, as DD-Ranking redraws it per evaluation.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from .config import AugConfig, DataConfig, EvalConfig, SqueezeConfig
from .config import full_data_recipe as config_full_data_recipe
from .contracts import check_image_set
from .data import DatasetInfo, load_split, real_subset
from .ddranking import hard_label_recovery, improvement_over_random, label_robust_score
from .distilled import Distilled
from .official_formats import FKDLabels
from .student import evaluate

Reference = float | Literal["compute"] | None


def evaluate_images(images: torch.Tensor, labels: torch.Tensor, dataset: str | DataConfig = "fashion_mnist",
                    teacher: nn.Module | str | Path | None = None, *,
                    fkd_labels: FKDLabels | str | Path | None = None, cfg: EvalConfig | None = None,
                    seeds: Sequence[int] = (0,), normalized: bool = False,
                    random_real: Reference = None, full_data: Reference = None,
                    full_data_recipe: SqueezeConfig | None = None,
                    device: str = "cpu", progress: bool = True) -> dict:
    """Train students on `images` [N, C, H, W] with `labels` [N] and test them on `dataset`'s test split.

    images: uint8, or float pixel values in [0, 1], or (`normalized=True`) float normalized with the
        dataset's mean and std; float images are rounded to uint8 levels (as saving them would).
        Their size and channels must be the dataset's.
    dataset: a dataset name or a DataConfig (root, subsets).
    teacher: a model or a cda checkpoint path: online soft labels from it on every view (FKD-style,
        no storage). `fkd_labels`: official FKD label files (a folder or an FKDLabels) for images in
        ImageFolder order (`load_image_folder`). Neither: hard labels.
    cfg: the student recipe (default EvalConfig(); with FKD labels, their batch size and epoch count);
        its `labels` field is set from what was given. One student per seed in `seeds`.
    random_real: the top-1 (%) of random real images at this IPC under the same labels and recipe,
        or "compute" to train them (cda.recover.real_subset, redrawn per seed; needs the teacher for
        soft labels). Gives `ior`.
    full_data: the top-1 (%) of the student architecture trained on all the training data, or
        "compute" to train it as the pipeline's tables do (cda.config.full_data_recipe: the teacher
        recipe `full_data_recipe`, default SqueezeConfig(), on the student's arch under the next
        seed), so a set gets the same HLR here as in the studies. With it the set's hard-label
        accuracy is measured too (one more student per seed, unless the labels are hard already).
        Gives `hlr`.

    Returns a dict: `top1`, `top5` (mean over seeds, %), `hard_top1` (the same as top1 for hard
    labels), `random_real_top1`, `full_data_top1` (% or None), `ior`, `hlr`, `lrs` (fractions, or
    None when their reference is missing), their `*_std` over seeds, `labels` (online, stored or hard), `ipc`, `seconds`, and
    `runs` with the per-seed values.
    """
    start = time.perf_counter()
    data = DataConfig(name=dataset) if isinstance(dataset, str) else dataset
    test = load_split(data, train=False)
    info = test.info
    images = _as_uint8(images, info, normalized)
    labels = _as_labels(labels, len(images), info)
    check_image_set(images, labels, info, "evaluate_images: the image set")
    if teacher is not None and not isinstance(teacher, nn.Module):
        from .checkpoint import load_checkpoint

        teacher, _ = load_checkpoint(teacher, info)
    if fkd_labels is not None and not isinstance(fkd_labels, FKDLabels):
        fkd_labels = FKDLabels(fkd_labels, num_images=len(images))
    mode = "stored" if fkd_labels is not None else "online" if teacher is not None else "hard"
    if cfg is None:
        cfg = EvalConfig()
        if fkd_labels is not None:
            cfg = replace(cfg, aug=replace(AugConfig(), epochs=fkd_labels.epochs, batch_size=fkd_labels.batch_size,
                                           mix=fkd_labels.mix))
    cfg = replace(cfg, labels=mode)
    if fkd_labels is not None:
        fkd_labels.check_fits(cfg.aug, len(images))
    _check_reference("random_real", random_real)
    _check_reference("full_data", full_data)
    if not seeds:
        raise ValueError("seeds=(): give at least one seed")

    counts = torch.bincount(labels, minlength=info.num_classes)
    ipc = int(counts[0]) if bool((counts == counts[0]).all()) else None
    train = None
    if random_real == "compute":
        if ipc is None or ipc == 0:
            raise ValueError(f"random_real='compute' draws the same number of real images per class, but the set "
                             f"has {int(counts.min())} to {int(counts.max())} per class; pass random_real=<top-1 %>")
        if mode == "stored" and teacher is None:
            raise ValueError("random_real='compute' with FKD labels needs the teacher to label the random images "
                             "(online), or pass random_real=<top-1 %>")
        train = load_split(data, train=True)
    if full_data == "compute":
        recipe = config_full_data_recipe(full_data_recipe or SqueezeConfig(), cfg.arch)
        from .squeeze import squeeze

        _, meta = squeeze(data, recipe, device=device, progress=progress)
        full_data = float(meta["metrics"]["top1"])

    distilled = Distilled(images, labels, {"method": "external", "ipc": ipc, "dataset": info.name})
    runs = []
    for seed in seeds:
        c = replace(cfg, seed=seed)
        run = {"seed": seed, **_top(evaluate(distilled, test, c, teacher, fkd_labels, device, progress, "student"))}
        if mode == "hard":
            run["hard_top1"] = run["top1"]
        elif full_data is not None:  # HLR needs the set's hard-label accuracy: one more student
            run["hard_top1"] = evaluate(distilled, test, replace(c, labels="hard"), device=device, progress=progress,
                                        desc="hard labels")["top1"]
        if full_data is not None:
            run["hlr"] = hard_label_recovery(full_data, run["hard_top1"])
        if random_real == "compute":
            subset = real_subset(train, ipc, seed=seed)
            rc = replace(c, labels="online" if mode == "stored" else mode)
            run["random_real_top1"] = evaluate(subset, test, rc, teacher, device=device, progress=progress,
                                               desc="random real")["top1"]
        elif random_real is not None:
            run["random_real_top1"] = float(random_real)
        if "random_real_top1" in run:
            run["ior"] = improvement_over_random(run["top1"], run["random_real_top1"])
        if "ior" in run and "hlr" in run:
            run["lrs"] = label_robust_score(run["ior"], run["hlr"])
        runs.append(run)

    out = {"labels": mode, "ipc": ipc, "full_data_top1": full_data, "runs": runs}
    for key in ("top1", "top5", "hard_top1", "random_real_top1", "ior", "hlr", "lrs"):
        values = [r[key] for r in runs if key in r]
        out[key] = float(np.mean(values)) if values else None
        if key in ("top1", "ior", "hlr", "lrs"):
            out[f"{key}_std"] = float(np.std(values)) if values else None
    out["seconds"] = time.perf_counter() - start
    return out


def _top(metrics: dict) -> dict:
    return {"top1": float(metrics["top1"]), "top5": float(metrics["top5"])}


def _check_reference(name: str, value) -> None:
    if value is None or value == "compute":
        return
    if isinstance(value, str) or not 0 <= float(value) <= 100:
        raise ValueError(f"{name}={value!r}: give a top-1 accuracy in percent (0-100), 'compute' or None")


def _as_uint8(images: torch.Tensor, info: DatasetInfo, normalized: bool) -> torch.Tensor:
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    if c != info.channels or h != info.image_size or w != info.image_size:
        raise ValueError(f"images are {c}x{h}x{w} (CxHxW), but {info.name} is {info.channels}x{info.image_size}x"
                         f"{info.image_size}: convert them (load_image_folder(..., channels=, image_size=)) or pick "
                         f"the dataset they belong to")
    if images.dtype == torch.uint8:
        if normalized:
            raise ValueError("normalized=True, but the images are uint8 pixel values; drop normalized=True")
        return images
    if not images.is_floating_point():
        raise ValueError(f"images of dtype {images.dtype}: give uint8 or float images")
    if not torch.isfinite(images).all():
        raise ValueError("images hold NaN or infinite values")
    if normalized:
        return info.to_uint8(images)
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"float images range over [{lo:.3g}, {hi:.3g}], not pixel values in [0, 1]; pass "
                         f"normalized=True if they are normalized with {info.name}'s mean and std")
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def _as_labels(labels: torch.Tensor, n: int, info: DatasetInfo) -> torch.Tensor:
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.dim() != 1 or len(labels) != n:
        raise ValueError(f"labels must be [N] = [{n}] class indices, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels of dtype {labels.dtype}: give integer class indices")
    labels = labels.long()
    if n and (int(labels.min()) < 0 or int(labels.max()) >= info.num_classes):
        raise ValueError(f"labels range over {int(labels.min())}..{int(labels.max())}, but {info.name} has classes "
                         f"0..{info.num_classes - 1}")
    return labels
