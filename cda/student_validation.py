"""Validation during student training: the student is tested on the validation split every few epochs,
and the weights that scored best there are kept, so that both the best and the last student can be
tested at the end (EvalConfig.val_every, cda.student.evaluate).

The official FKD/CUDD students validate after epochs 1, 11, 21, ... and the last, and save the best
and the last checkpoint (MIV-XJTU/CUDD@0bf778c training/train_FKD.py:203-221); their validation
images are the test set. Here validation follows epochs `every`, 2 `every`, ... and the last, on
DataConfig.validation images held out of the training set. The tables keep the last student, as
the papers report.

Memory stays bounded at ImageNet scale: one copy of the best state dict, on the CPU (ResNet-50:
about 100 MB). The validation pass runs under a forked random state, so a validated run trains
exactly the student an unvalidated one does.
"""
from __future__ import annotations

import torch
from torch import nn

from .training import test_accuracy


class Validation:
    """Tests a student on `split` after every `every`-th epoch and after the last, and keeps the best."""

    def __init__(self, split, every: int, batch_size: int = 512, amp: bool = True):
        if type(every) is not int or every < 1:
            raise ValueError(f"Validation every={every!r}: give a positive number of epochs")
        self.split, self.every, self.batch_size, self.amp = split, every, batch_size, amp
        self.curve: list[tuple[int, float]] = []  # (epochs trained, validation top-1 %)
        self.best_epoch, self.best_top1 = 0, float("-inf")
        self.best_state: dict[str, torch.Tensor] | None = None

    def after_epoch(self, student: nn.Module, epoch: int, epochs: int, device: torch.device) -> None:
        """Called after `epoch` (1-based) of `epochs`: validate when due."""
        if epoch % self.every and epoch != epochs:
            return
        forked = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked):  # a DataLoader draws its seed from the global stream
            top1 = test_accuracy(student, self.split, device, self.batch_size, self.amp)["top1"]
        student.train()
        self.curve.append((epoch, top1))
        if top1 > self.best_top1:  # the earliest of equal scores, as the official `top1 > best_acc1`
            self.best_epoch, self.best_top1 = epoch, top1
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in student.state_dict().items()}

    def state(self) -> dict:
        """What a progress checkpoint keeps, so that a resumed run validates as an uninterrupted one."""
        return {"curve": [list(p) for p in self.curve], "best_epoch": self.best_epoch, "best_top1": self.best_top1,
                "best_state": self.best_state}

    def load(self, state: dict | None, path) -> None:
        """Resume from a progress checkpoint's `state()` (saved at `path`)."""
        if state is None:
            raise ValueError(f"{path} was saved by a run without validation; delete it to train this student afresh")
        self.curve = [(int(e), float(t)) for e, t in state["curve"]]
        self.best_epoch, self.best_top1, self.best_state = state["best_epoch"], state["best_top1"], state["best_state"]

    def report(self, student: nn.Module, test_split, device: torch.device, last: dict[str, float]) -> dict:
        """The best weights' test accuracy beside the last's (`last`, already measured). Loads the best
        weights into `student`."""
        if self.best_state is None:
            raise RuntimeError("Validation.report before any validation: train the student first")
        student.load_state_dict(self.best_state)
        best = test_accuracy(student, test_split, device, self.batch_size, self.amp)
        return {"last_top1": last["top1"], "last_top5": last["top5"], "best_top1": best["top1"],
                "best_top5": best["top5"], "best_epoch": self.best_epoch, "best_val_top1": self.best_top1,
                "val_curve": [list(p) for p in self.curve]}
