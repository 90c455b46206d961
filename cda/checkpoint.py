"""Teacher and student checkpoints (weights plus the metadata needed to rebuild and check them), and
the one way a long loop checkpoints its progress and resumes after an interruption (Resume)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .cache import ArtifactError, load_progress, load_torch, save_progress, save_torch
from .data import DatasetInfo
from .models import create_model

FORMAT = "cda-checkpoint-1"


class CheckpointError(ArtifactError):
    """A checkpoint is unreadable, foreign, or does not fit the dataset it is used with."""


def save_checkpoint(path: str | os.PathLike, model: nn.Module, arch: str, info: DatasetInfo,
                    metrics: dict[str, float], config: dict[str, Any]) -> None:
    meta = {"format": FORMAT, "arch": arch, "dataset": info.name, "num_classes": info.num_classes,
            "in_channels": info.channels, "image_size": info.image_size, "mean": list(info.mean),
            "std": list(info.std), "metrics": dict(metrics), "config": config}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"meta": meta, "state_dict": state}, path)


def load_checkpoint(path: str | os.PathLike, info: DatasetInfo | None = None,
                    device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a cda checkpoint (safely: weights_only), checking it against `info`."""
    path = Path(path)
    try:
        blob = load_torch(path, what="checkpoint")
    except ArtifactError as err:  # never torch's advice to load it unsafely
        raise CheckpointError(f"{err}. A cda checkpoint is made by `cda squeeze`.") from err
    if not isinstance(blob, dict) or blob.get("meta", {}).get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cda checkpoint (no '{FORMAT}' metadata). Squeeze a teacher with "
                              f"`cda squeeze`, or name torchvision weights with SqueezeConfig.pretrained.")
    meta = blob["meta"]
    if info is not None:
        check_compatible(meta, info, str(path))
    model = create_model(meta["arch"], meta["num_classes"], meta["in_channels"], meta["image_size"])
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {meta['arch']}: {err}") from err
    return model.to(device).eval(), meta


def check_compatible(meta: dict[str, Any], info: DatasetInfo, where: str) -> None:
    """The teacher must have the dataset's class count and input channels."""
    problems = []
    if meta["num_classes"] != info.num_classes:
        problems.append(f"{meta['num_classes']} classes, but {info.name} has {info.num_classes}")
    if meta["in_channels"] != info.channels:
        problems.append(f"{meta['in_channels']} input channels, but {info.name} images have {info.channels}")
    if problems:
        raise CheckpointError(f"teacher {where} (trained on {meta.get('dataset')}) does not fit {info.name}: "
                              + "; ".join(problems) + ". Squeeze a teacher on this dataset.")


# The resume tests end a run at a chosen checkpoint from inside the child: with this variable set to
# "N" (or "N:part", counting only files whose path holds `part`), the process exits hard (os._exit, no
# cleanup, as a kill) right after the N-th progress file is written. Never set outside tests.
EXIT_AFTER_CHECKPOINTS = "CDA_TEST_EXIT_AFTER_CHECKPOINTS"
EXIT_CODE = 86
_checkpoints_written = 0


def _exit_if_asked(path: Path) -> None:
    global _checkpoints_written
    spec = os.environ.get(EXIT_AFTER_CHECKPOINTS)
    if not spec:
        return
    n, _, part = spec.partition(":")
    if part and part not in path.as_posix():
        return
    _checkpoints_written += 1
    if _checkpoints_written >= int(n):
        os._exit(EXIT_CODE)


class Resume:
    """A loop's progress file: every long loop (teacher and student training, recovery, CUDD)
    checkpoints and resumes through one of these.

    `path` is the file (None: no checkpoints), `key` names the config that made it (a file of another
    config is refused), `every` how many steps apart it is saved. Only rank 0 writes under torchrun.
    Saves are atomic (cda.cache.save_progress); `save` also holds the resume tests' exit hook.
    """

    def __init__(self, path: str | os.PathLike | None, key: str, every: int = 1, rank: int = 0):
        self.path = Path(path) if path is not None else None
        self.key, self.every, self.rank = key, max(1, every), rank

    def saved(self) -> dict | None:
        """The state of an interrupted run of the same config, or None to start afresh."""
        return load_progress(self.path, self.key) if self.path is not None else None

    def due(self, done: int, total: int) -> bool:
        """Whether to save after `done` of `total` steps (never after the last: the result follows)."""
        return self.path is not None and self.rank == 0 and done % self.every == 0 and done < total

    def save(self, state: dict) -> None:
        save_progress(self.path, self.key, state)
        _exit_if_asked(self.path)

    def finish(self) -> None:
        """The loop is done: its progress file goes."""
        if self.path is not None and self.rank == 0:
            self.path.unlink(missing_ok=True)

    def run(self, total: int, step: Callable[[int], None], state: Callable[[int], dict],
            restore: Callable[[dict], int]) -> None:
        """Steps 0..total-1 of a loop, from where a saved run stopped: `restore(saved)` puts a saved
        state back and returns the first step to run; after step i, when due, `state(i + 1)` is saved;
        at the end the progress file is deleted."""
        saved = self.saved()
        first = restore(saved) if saved is not None else 0
        for i in range(first, total):
            step(i)
            if self.due(i + 1, total):
                self.save(state(i + 1))
        self.finish()

