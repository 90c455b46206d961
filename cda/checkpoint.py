"""Teacher and student checkpoints: weights plus the metadata needed to rebuild and check them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .cache import ArtifactError, load_torch, save_torch
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
