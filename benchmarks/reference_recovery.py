"""A reference recovery loop in the shape of the official SRe2L / CDA `recover` script
(papers.md sections 6.1 and 6.2), for speed and quality comparisons with `cda.recover.recover`.

As the official code: one batch holds one image per class of one IPC index, and IPC indices are
processed one after another, each with a fresh init and optimizer; torchvision's RandomResizedCrop
and RandomHorizontalFlip are applied to the whole 4-D batch (one crop box and one flip for all its
images); jitter is a `torch.roll`; BatchNorm forward hooks compute the mean and the biased variance
with `permute(1, 0, 2, 3).reshape(C, -1)`; everything runs in fp32 (TF32 convolutions on CUDA, cuDNN's default).
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import transforms


class BNFeatureHook:
    """The official hook: ||running_var - var||_2 + ||running_mean - mean||_2 of the BN input."""

    def __init__(self, module: nn.BatchNorm2d):
        self.hook = module.register_forward_hook(self.hook_fn)
        self.r_feature = None

    def hook_fn(self, module, input, output):
        nch = input[0].shape[1]
        mean = input[0].mean([0, 2, 3])
        var = input[0].permute(1, 0, 2, 3).contiguous().reshape([nch, -1]).var(1, unbiased=False)
        self.r_feature = torch.norm(module.running_var.data - var, 2) + torch.norm(module.running_mean.data - mean, 2)

    def close(self):
        self.hook.remove()


def min_crop(schedule: str, milestone: float, it: int, total: int, start: float = 1.0, end: float = 0.08) -> float:
    """The official curriculum's RandomResizedCrop lower bound (papers.md 6.2)."""
    if schedule == "none" or it >= milestone * total:
        return end
    frac = it / (milestone * total)
    if schedule == "step":
        return start
    if schedule == "linear":
        return end + (start - end) * (1 - frac)
    return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2


def reference_recover(model: nn.Module, info, ipc: int, iterations: int, lr: float = 0.25, r_bn: float = 0.01,
                      first_bn_multiplier: float = 10.0, jitter: int = 4, schedule: str = "none",
                      milestone: float = 1.0, seed: int = 0, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [ipc * classes, C, H, W] in IPC-major order (all classes of IPC 0 first), and labels."""
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    hooks = [BNFeatureHook(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    rescale = [first_bn_multiplier] + [1.0] * (len(hooks) - 1)
    lo, hi = info.pixel_bounds(device)
    size, n_cls = info.image_size, info.num_classes
    torch.manual_seed(seed)
    random.seed(seed)
    out_images, out_labels = [], []
    try:
        for _ipc_id in range(ipc):
            targets = torch.arange(n_cls, device=device)
            inputs = torch.randn((n_cls, info.channels, size, size), device=device, requires_grad=True)
            optimizer = torch.optim.Adam([inputs], lr=lr, betas=(0.5, 0.9), eps=1e-8)
            for it in range(iterations):
                for group in optimizer.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * it / iterations))
                aug = transforms.Compose([
                    transforms.RandomResizedCrop(size, scale=(min_crop(schedule, milestone, it, iterations), 1.0)),
                    transforms.RandomHorizontalFlip(),
                ])
                inputs_jit = aug(inputs)
                off1, off2 = random.randint(0, jitter), random.randint(0, jitter)
                inputs_jit = torch.roll(inputs_jit, shifts=(off1, off2), dims=(2, 3))
                outputs = model(inputs_jit)
                loss_ce = F.cross_entropy(outputs, targets)
                loss_r_bn = sum(h.r_feature * s for h, s in zip(hooks, rescale))
                loss = loss_ce + r_bn * loss_r_bn
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                inputs.data = torch.maximum(torch.minimum(inputs.data, hi), lo)  # the official per-channel clip
            out_images.append(info.to_uint8(inputs.detach()).cpu())
            out_labels.append(targets.cpu())
    finally:
        for h in hooks:
            h.close()
    return torch.cat(out_images), torch.cat(out_labels)
