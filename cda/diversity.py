"""How diverse a distilled set is, measured in the teacher's feature space (CUDD's homogeneity claim).

Two measures, per class and then averaged over classes (a distilled set is class-conditional: a
set whose classes each hold one repeated image must score low, however far apart the classes are):

- `spread`: the mean pairwise cosine distance, 1 - cos(f_i, f_j) over pairs i != j of one class, of
  the teacher's penultimate features f (the input of its last linear layer). 0 when every image of a
  class looks the same to the teacher (its minimum); higher is more diverse, up to 2. It needs no
  real data, and at least 2 images per class. Mean pairwise distance in a network's feature space is
  the plainest diversity measure (the one issue 28 names first); cosine makes it independent of the
  features' scale, which differs from teacher to teacher.
- `coverage` (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models"):
  the fraction of real images of the class whose k-nearest-neighbour ball among the real images
  (Euclidean, in the same features) holds at least one distilled image. In [0, 1], higher: more of
  the real class manifold is covered. `density` (same paper) is its fidelity counterpart: how many
  real balls hold each distilled image, over k (about 1 for images like the real ones). Computed as
  the `prdc` package computes them (clovaai/prdc 0.2 `compute_prdc`, strict `<`; the test compares
  the two), in torch and per class, so that it runs on the GPU and needs no more than 1 image per class.

Why these: both are established and cheap, and both use the teacher that every method already has,
so they need no downloaded network (LPIPS and Inception features need pretrained weights that an
offline machine does not have) and they measure diversity where the student's soft labels come from.

Cost at the papers' scale (1,000 classes, IPC 50, 224 px, a ResNet-18 teacher, 512 features): one
forward pass over the 50,000 distilled images and over `real_per_class` x 1,000 real ones, in batches
of `batch_size` (about as much compute as one relabelling epoch); the features are kept on the CPU
([N, 512] float32: 100 MB per 50,000 images, 400 MB for ResNet-50's 2,048); the distances are per
class ([real_per_class, IPC] and [real_per_class, real_per_class] matrices), so memory never grows
with the number of classes squared.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import DatasetInfo, TensorSplit, _subset, stratified_indices
from .training import autocast, resolve_device


@torch.no_grad()
def penultimate_features(model: nn.Module, images, info: DatasetInfo, batch_size: int = 256,
                         device: str = "cpu", amp: bool = True) -> torch.Tensor:
    """The input of `model`'s last nn.Linear (its penultimate features) for uint8 `images` [N, C, H, W]
    or a split, in order: float32 [N, D] on the CPU."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer, so it has no penultimate features "
                         f"to measure diversity in; use a classifier with a linear head (convnet3, resnet18)")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    caught: list[torch.Tensor] = []
    handle = linears[-1].register_forward_pre_hook(lambda m, inputs: caught.append(inputs[0].flatten(1).float()))
    split = images if hasattr(images, "batches") else TensorSplit(torch.as_tensor(images),
                                                                   torch.zeros(len(images), dtype=torch.long), info)
    out = []
    try:
        for x, _ in split.batches(batch_size, device=dev):
            caught.clear()
            with autocast(dev, amp):
                model(info.normalize(x))
            out.append(caught[-1].cpu())
    finally:
        handle.remove()
    return torch.cat(out) if out else torch.zeros(0, 0)


def spread(features: torch.Tensor, labels: torch.Tensor) -> dict:
    """The mean pairwise cosine distance within each class of `features` [N, D] (any order), and its
    mean over classes: {"spread": float, "per_class": {class: float}}."""
    features, labels = _check(features, labels, "features")
    unit = torch.nn.functional.normalize(features.double(), dim=1)
    per_class = {}
    for c in labels.unique().tolist():
        u = unit[labels == c]
        n = len(u)
        if n < 2:
            raise ValueError(f"spread: class {c} has {n} image; pairwise distances need at least 2 per class "
                             f"(at IPC 1 use coverage)")
        # mean over i != j of u_i . u_j = (|sum u|^2 - n) / (n (n - 1)): O(n D), no n x n matrix
        mean_cos = (u.sum(0).square().sum().item() - n) / (n * (n - 1))
        per_class[int(c)] = 1.0 - mean_cos
    return {"spread": float(np.mean(list(per_class.values()))), "per_class": per_class}


def coverage(real: torch.Tensor, real_labels: torch.Tensor, fake: torch.Tensor, fake_labels: torch.Tensor,
             k: int = 5, device: str = "cpu") -> dict:
    """Naeem et al.'s coverage and density of the `fake` features by the `real` ones, per class and
    averaged over the classes of `fake`: {"coverage", "density", "per_class": {class: (coverage, density)}}."""
    real, real_labels = _check(real, real_labels, "real features")
    fake, fake_labels = _check(fake, fake_labels, "fake features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"coverage: real features are {real.shape[1]}-dimensional, fake ones {fake.shape[1]}: "
                         f"take both from the same model")
    if type(k) is not int or k < 1:
        raise ValueError(f"coverage: k={k!r} must be a positive number of neighbours")
    dev = resolve_device(device)
    per_class = {}
    for c in fake_labels.unique().tolist():
        r = real[real_labels == c].to(dev)
        f = fake[fake_labels == c].to(dev)
        if len(r) <= k:
            raise ValueError(f"coverage: class {c} has {len(r)} real images, but the k={k} nearest neighbours of "
                             f"each need at least {k + 1}; give more real images per class or a smaller k")
        # radius of each real image: the distance to its k-th nearest other real image
        radii = torch.cdist(r, r).kthvalue(k + 1, dim=1).values
        inside = torch.cdist(r, f) < radii[:, None]  # [real, fake]
        per_class[int(c)] = (inside.any(1).float().mean().item(), inside.sum(0).float().mean().item() / k)
    values = np.array(list(per_class.values()))
    return {"coverage": float(values[:, 0].mean()), "density": float(values[:, 1].mean()), "per_class": per_class}


def set_diversity(images: torch.Tensor, labels: torch.Tensor, teacher: nn.Module, info: DatasetInfo, *,
                  real=None, real_per_class: int = 50, k: int = 5, seed: int = 0, batch_size: int = 256,
                  device: str = "cpu") -> dict:
    """The diversity of a distilled set (uint8 `images` [N, C, H, W], `labels` [N]) in `teacher`'s
    features: `spread` (needs 2+ images per class) and, with a `real` split (the training split),
    `coverage` and `density` against `real_per_class` random real images of each class (drawn from
    `seed`). Returns those that apply, with `per_class` values under `spread_per_class` and
    `coverage_per_class`."""
    images, labels = torch.as_tensor(images), torch.as_tensor(labels).long()
    if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
        raise ValueError(f"set_diversity: give uint8 images [N, C, H, W] and N labels, got {images.dtype} "
                         f"{tuple(images.shape)} and {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= info.num_classes):
        raise ValueError(f"set_diversity: labels range over {int(labels.min())}..{int(labels.max())}, but "
                         f"{info.name} has classes 0..{info.num_classes - 1}")
    fake = penultimate_features(teacher, images, info, batch_size, device)
    out = {}
    counts = torch.bincount(labels)
    if len(labels) and bool((counts[counts > 0] >= 2).all()):
        s = spread(fake, labels)
        out.update(spread=s["spread"], spread_per_class=s["per_class"])
    if real is not None:
        idx = stratified_indices(real.labels, real_per_class, seed)
        subset = _subset(real, idx, train=False)
        feats = penultimate_features(teacher, subset, info, batch_size, device)
        cov = coverage(feats, subset.labels, fake, labels, k, device)
        out.update(coverage=cov["coverage"], density=cov["density"], coverage_per_class=cov["per_class"])
    if not out:
        raise ValueError("set_diversity: with 1 image per class only coverage applies; pass real=<training split>")
    return out


def _check(features, labels, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    features, labels = torch.as_tensor(features), torch.as_tensor(labels).long().cpu()
    if features.dim() != 2 or len(features) != len(labels) or not len(labels):
        raise ValueError(f"{what}: give [N, D] features and N labels (N > 0), got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    if not torch.isfinite(features).all():
        raise ValueError(f"{what} hold NaN or infinite values (a diverged teacher?)")
    return features.float(), labels
