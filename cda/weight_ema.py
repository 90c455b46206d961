"""An exponential moving average of a student's weights (EvalConfig.ema_decay): the averaged copy is
the student that is validated and tested.

After every optimizer step t (1, 2, ...), every floating-point entry of the state dict moves as
    ema = d_t * ema + (1 - d_t) * live,   d_t = min(decay, (1 + t) / (10 + t)),
starting from the initial weights. The cap d_t is TensorFlow's ExponentialMovingAverage(num_updates):
small sets take few steps per epoch (digits at IPC 1: one), and without it a decay of 0.999 would keep
about half the random initialization after 700 steps.

BatchNorm's running mean and variance are averaged like the weights (as timm's ModelEmaV2), not
copied from the live student: the averaged weights sit where the live ones were over the last
~1 / (1 - d) steps, and statistics averaged over the same steps describe their activations better
than the last step's alone. Integer buffers (num_batches_tracked) are copied.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, step: int) -> float:
    """The decay used after optimizer step `step` (1-based)."""
    return min(decay, (1 + step) / (10 + step))


class WeightEMA:
    """The averaged copy of `model` (its `model` attribute, in eval mode), updated by `update()`."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"WeightEMA decay={decay}: must lie in (0, 1)")
        self.decay, self.steps = decay, 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold in `model`'s current weights and buffers (after one optimizer step)."""
        self.steps += 1
        d = ema_decay_at(self.decay, self.steps)
        live = model.state_dict()
        for name, avg in self.model.state_dict().items():
            new = live[name].detach()
            if avg.is_floating_point():
                avg.mul_(d).add_(new.to(avg.dtype), alpha=1 - d)
            else:
                avg.copy_(new)

    def state(self) -> dict:
        """What a progress checkpoint keeps."""
        return {"steps": self.steps, "model": self.model.state_dict()}

    def load(self, state: dict) -> None:
        self.steps = state["steps"]
        self.model.load_state_dict(state["model"])
