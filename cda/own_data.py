"""Distill your own ImageFolder tree with SRe2L, CDA or CUDD, evaluate the set against random real
images of the same size, and export it for other tools (notebooks/distill_your_data.ipynb).

    s = own_data.open("path/to/tree", method="cda", ipc=10, preset="cpu")
    s.config; s.teacher(); s.distill(); s.labels(); s.students(); s.finish(); s.tables(); s.figures()
    s.export()   # the set as an ImageFolder tree of PNGs plus one tensor file

The tree holds `train/<class>/*` and `val/<class>/*` images (any format PIL reads). It runs as a
study (the same steps and cache as the paper notebooks), outside the papers' registry.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from . import plots
from .cache import write_json
from .config import DataConfig
from .contracts import tree_classes, tree_image_size
from .results import accuracy_table, timing_table
from .studies import Context, OpenStudy, Study
from .studies._core import grid_figure, keep_grid


def _compute(ctx: Context, method: str = "cda", ipc: int = 10) -> list[dict]:
    rows = ctx.cells("random", ipc) + ctx.cells(method, ipc) + ctx.reference_rows()
    keep_grid(ctx, ["random", method], ipc)
    return rows


def _draw(df: pd.DataFrame, images: dict) -> dict:
    figs = {"accuracy": plots.bar_top1(df[df.ipc.notna()], "method", "Student top-1 on your test images")}
    if images:
        figs["distilled_images"] = grid_figure(images)
    return figs


def _tables(df: pd.DataFrame, root) -> list:
    return [("Top-1 (%) on the val/ images", accuracy_table(df)), ("Wall time per step (s)", timing_table(df))]


OWN_DATA = Study("distill_your_data", "Your data: a distilled set against random real images",
                 _compute, _draw, _tables)


class OwnDataStudy(OpenStudy):
    """A study of one distilled set of your data; `export()` writes it out for other tools."""

    def export(self, folder: str | os.PathLike | None = None) -> Path:
        """Write the distilled set to `folder` (default: beside the results): `images/<class
        index>/<k>.png` (an ImageFolder tree), `distilled.pt` (uint8 images [N, C, H, W] and int64
        labels [N]) and `classes.json` (class index -> the class folder's name)."""
        method, ipc = self.params.get("method", "cda"), self.params.get("ipc", 10)
        folder = Path(folder or self.csv.with_name(f"{self.tag}-{method}-ipc{ipc}"))
        d = self.ws.distilled(method, ipc)
        d.save(folder, self.ws.info)
        write_json(dict(enumerate(self.ws.info.classes)), folder / "classes.json")
        self.log(f"exported {len(d.labels)} images of {len(self.ws.info.classes)} classes to {folder}:\n"
                 f"  images/<class index>/<k>.png  an ImageFolder tree (torchvision.datasets.ImageFolder reads it)\n"
                 f"  distilled.pt                  torch.load(path, weights_only=True): 'images' (uint8) and 'labels'\n"
                 f"  classes.json                  class index -> class name\n"
                 f"  meta.json                     how the set was made")
        return folder


def open(data_root: str | os.PathLike | None = None, method: str = "cda", ipc: int = 10, preset: str = "cpu",
         device: str = "cpu", image_size: int | None = None, root: str | os.PathLike | None = None,
         overrides: dict | None = None, progress: bool = True, log: Callable[[str], None] = print) -> OwnDataStudy:
    """Your ImageFolder tree as a study (None: a small Fashion-MNIST tree, made once in a temp folder).
    The tree is checked first (cda.contracts: the same class folders in train/ and val/, at least
    two, none empty). `image_size`: the side the images are resized to (None: the tree's own, read
    from the first image of each class; see cda.contracts.tree_image_size)."""
    from . import methods

    choices = [m for m in methods.list_methods() if m != "random"]  # random real images are the baseline
    if method not in choices:
        raise ValueError(f"method {method!r}: choose one of {choices}")
    demo = data_root is None
    data_root = Path(demo_folder() if demo else data_root).resolve()
    for sub in ("train", "val"):
        if not (data_root / sub).is_dir():
            raise FileNotFoundError(f"{data_root / sub} is not a folder: the tree needs train/<class>/* and "
                                    f"val/<class>/* images")
    classes = tree_classes(data_root)
    size = image_size or tree_image_size(data_root / "train", classes)
    changes = {"data.name": "imagefolder", "data.root": str(data_root), "data.image_size": size,
               "device": device, "ipcs": [ipc], "methods": ["random", method], **(overrides or {})}
    return OwnDataStudy(OWN_DATA, preset, changes, root, {"method": method, "ipc": ipc}, progress, log)


def demo_folder(folder: str | os.PathLike | None = None, train_per_class: int = 100, val_per_class: int = 50) -> Path:
    """A small ImageFolder tree of real Fashion-MNIST images (`train/` and `val/`, a folder per class),
    made once (default: in the temp folder), so that the notebook runs anywhere."""
    from PIL import Image

    from .data import load_split

    folder = Path(folder or Path(tempfile.gettempdir()) / f"cda-fashion-mnist-tree-{train_per_class}-{val_per_class}")
    done = folder / "done.json"
    if done.is_file():
        return folder
    data = DataConfig(train_per_class=train_per_class, test_per_class=val_per_class)
    for sub, train in (("train", True), ("val", False)):
        split = load_split(data, train=train)
        names = [c.replace("/", "-") for c in split.info.classes]
        counts = [0] * len(names)
        for image, label in zip(split.images, split.labels.tolist()):
            path = folder / sub / names[label] / f"{counts[label]:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(path)
            counts[label] += 1
    done.write_text(json.dumps({"train_per_class": train_per_class, "val_per_class": val_per_class}) + "\n")
    return folder
