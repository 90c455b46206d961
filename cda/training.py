"""Pieces shared by every training loop: device, optimizer, schedule, autocast and testing."""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the step stops and keeps what it finished."""


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for, but PyTorch sees no CUDA device here "
                           f"(torch {torch.__version__}); use device='cpu'")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ValueError(f"device {name!r}: use 'cpu', 'cuda' or 'cuda:N'")
    # TF32 is the caller's to turn on, for a block: cda.runtime.Runtime.applied()
    return torch.device(name)


def autocast(device: torch.device, enabled: bool, cpu: bool = False):
    """bf16 autocast on CUDA (and on the CPU with `cpu`); full precision elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu and device.type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu"):
    """torch's global RNG (CPU, and the CUDA device's) seeded with `seed` inside the block and put back
    as it was after it; yields a numpy generator from the same seed. The block's results are those
    of seed_everything(seed); the caller's random streams are left untouched."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield seed_everything(seed)


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9):
    """AdamW or SGD, without weight decay on biases and norm parameters (as the official FKD code)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=False)


def cosine(step: float, total: float) -> float:
    """The one cosine of every schedule here (learning rates, the crop curriculum): 1 at step 0,
    falling to 0 at `total`. (Scaling by 0.5 is exact, so base * cosine(s, t) equals the inline
    base * 0.5 * (1 + cos(pi * s / t)) it replaced, bit for bit.)"""
    return 0.5 * (1 + math.cos(math.pi * step / total))


def cosine_lr(step: int, total: int, base: float, warmup: int = 0) -> float:
    """Linear warm-up from 1% of `base`, then cosine decay to 0 at `total`."""
    if step < warmup:
        return base * (0.01 + 0.99 * step / warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return base * cosine(min(1.0, progress), 1)


def onecycle_lr(step: int, total: int, base: float, pct_start: float = 0.3, div_factor: float = 25.0,
                final_div_factor: float = 1e4) -> float:
    """The learning rate of torch's OneCycleLR (two phases, cosine annealing, its default factors) at
    optimizer step `step` of `total`: from base / div_factor up to `base` over the first pct_start of
    the steps, then down to base / (div_factor * final_div_factor) at the last step. Only the
    learning rate cycles (torch's cycle_momentum=False): AdamW's betas stay as they are."""
    start, end = base / div_factor, base / (div_factor * final_div_factor)
    up = float(pct_start * total) - 1  # OneCycleLR's phase boundaries, in steps
    last = total - 1
    if step <= up and up > 0:
        return end_of(start, base, step / up)
    return end_of(base, end, (step - up) / (last - up))


def end_of(start: float, end: float, fraction: float) -> float:
    """Cosine annealing from `start` (fraction 0) to `end` (fraction 1), as OneCycleLR's _annealing_cos."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def check_finite(loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss).item():
        raise NonFiniteLossError(f"non-finite loss ({loss.item()}) in {where}; lower the learning rate")


@torch.no_grad()
def test_accuracy(model: nn.Module, split, device: torch.device, batch_size: int = 512,
                  amp: bool = True) -> dict[str, float]:
    """Top-1 and top-5 accuracy (%) of `model` on a split."""
    model.eval()
    correct1 = correct5 = total = 0
    k = min(5, split.info.num_classes)
    for images, labels in split.batches(batch_size, device=device):
        with autocast(device, amp):
            logits = model(split.info.normalize(images))
        top = logits.float().topk(k, dim=1).indices
        hits = top == labels[:, None]
        correct1 += hits[:, 0].sum()
        correct5 += hits.any(dim=1).sum()
        total += len(labels)
    return {"top1": 100.0 * float(correct1) / total, "top5": 100.0 * float(correct5) / total}
