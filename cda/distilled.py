"""A distilled set, the artifact every method makes: uint8 images and labels, plus how it was made,
saved as one tensor file and an ImageFolder tree of PNGs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .cache import load_torch, read_json, save_torch, write_json

if TYPE_CHECKING:
    from .datasets import DatasetInfo


@dataclass
class Distilled:
    """A distilled set: uint8 images [N, C, H, W] and labels [N], plus how it was made."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)  # per-iteration losses, for convergence plots
    snapshots: dict = field(default_factory=dict)  # iteration -> uint8 images

    def save(self, folder: str | Path, info: DatasetInfo) -> None:
        """One tensor file plus an ImageFolder tree of PNGs (so that other tools can read the set)."""
        from PIL import Image

        folder = Path(folder)
        save_torch({"images": self.images.cpu(), "labels": self.labels.cpu(),
                    "history": {k: torch.as_tensor(v) for k, v in self.history.items()},
                    "snapshots": {str(k): v.cpu() for k, v in self.snapshots.items()}}, folder / "distilled.pt")
        write_json(self.meta, folder / "meta.json")
        counts: dict[int, int] = {}
        for image, label in zip(self.images.cpu(), self.labels.tolist()):
            k = counts.get(label, 0)
            counts[label] = k + 1
            path = folder / "images" / f"{label:03d}" / f"{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            array = image.permute(1, 2, 0).numpy()
            Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)

    @staticmethod
    def load(folder: str | Path) -> "Distilled":
        folder = Path(folder)
        blob = load_torch(folder / "distilled.pt", what="distilled set")
        meta = read_json(folder / "meta.json", what="distilled set's metadata") if (folder / "meta.json").is_file() else {}
        return Distilled(blob["images"], blob["labels"], meta,
                         {k: v.tolist() for k, v in blob.get("history", {}).items()},
                         {int(k): v for k, v in blob.get("snapshots", {}).items()})
