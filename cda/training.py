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
    if name.startswith("cuda"):
        # fp32 work may use TF32 tensor cores (cuDNN convolutions do by default; matmuls do not)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
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


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9):
    """AdamW or SGD, without weight decay on biases and norm parameters (as the official FKD code)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=False)


def cosine_lr(step: int, total: int, base: float, warmup: int = 0) -> float:
    """Linear warm-up from 1% of `base`, then cosine decay to 0 at `total`."""
    if step < warmup:
        return base * (0.01 + 0.99 * step / warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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
