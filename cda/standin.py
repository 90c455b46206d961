"""An ImageNet-shaped stand-in dataset made from real Fashion-MNIST images, to dry-run a paper
setting (1,000 classes at 224 px, Tiny-ImageNet's 200 at 64 px, ImageNet-21K's 10,450) anywhere.

Class c is garment c mod 10 drawn in colour pair c div 10: the garment's pixels are painted from a
background colour to a foreground colour by their Fashion-MNIST intensity. The colour pairs are
ordered pairs of distinct colours from a palette spread out in RGB (farthest-point picks from a
6-level grid), so shape and two colours identify a class, and both survive crops and flips.
Images are upsampled (bilinear) to the target size and written as JPEG into an ImageFolder tree
`train/<class>/*.JPEG`, `val/<class>/*.JPEG` that cda's folder datasets read (`data.root=DIR`).
Training images come from Fashion-MNIST's training split, validation images from its test split;
a garment's images are spread over its colour pairs, and reused only once they run out.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import DataConfig
from .data import FASHION_CLASSES, load_split

GARMENTS = 10
_SLUGS = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
assert len(_SLUGS) == len(FASHION_CLASSES) == GARMENTS


def palette(n: int) -> np.ndarray:
    """`n` RGB colours in [0, 1], spread out: farthest-point picks from a 6-level grid, from black."""
    levels = np.linspace(0, 1, 6)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    if n > len(grid):
        raise ValueError(f"a palette of {n} colours: at most {len(grid)}")
    chosen = [0]
    dist = np.linalg.norm(grid - grid[0], axis=1)
    while len(chosen) < n:
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(grid - grid[nxt], axis=1))
    return grid[chosen]


@dataclass(frozen=True)
class StandinClass:
    index: int
    garment: int
    foreground: tuple[float, float, float]
    background: tuple[float, float, float]

    def folder(self, digits: int) -> str:
        # zero-padded index first, so ImageFolder's sorted class order is the class index
        return f"{self.index:0{digits}d}_{_SLUGS[self.garment]}"


def standin_classes(num_classes: int) -> list[StandinClass]:
    """Class c: garment c mod 10 in colour pair c div 10 (ordered pairs of distinct palette colours)."""
    if num_classes < 2:
        raise ValueError(f"a stand-in needs at least 2 classes, not {num_classes}")
    pairs_needed = math.ceil(num_classes / GARMENTS)
    n_colours = 2
    while n_colours * (n_colours - 1) < pairs_needed:
        n_colours += 1
    colours = palette(n_colours)
    pairs = [(f, b) for f in range(n_colours) for b in range(n_colours) if f != b][:pairs_needed]
    return [StandinClass(c, c % GARMENTS, tuple(colours[pairs[c // GARMENTS][0]].tolist()),
                         tuple(colours[pairs[c // GARMENTS][1]].tolist())) for c in range(num_classes)]


def _upsample(gray: torch.Tensor, size: int) -> np.ndarray:
    """uint8 [N, 28, 28] -> uint8 [N, size, size], bilinear (one call for a whole garment)."""
    a = F.interpolate(gray[:, None].float(), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=size < gray.shape[-1])
    return a[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def _colour_table(cls: StandinClass) -> np.ndarray:
    """uint8 [256, 3]: the class's colour for each garment intensity (background at 0)."""
    t = np.arange(256)[:, None] / 255
    fg, bg = np.array(cls.foreground), np.array(cls.background)
    return np.round((bg + (fg - bg) * t) * 255).astype(np.uint8)


def make_standin(out: str | Path, classes: int = 1000, size: int = 224, train_per_class: int = 2,
                 val_per_class: int = 1, seed: int = 0, quality: int = 90, source: DataConfig | None = None,
                 progress: bool = True) -> dict:
    """Write the stand-in tree under `out` (train/ and val/) and a `standin.json` describing it.

    Deterministic for its arguments (byte-identical JPEGs). Refuses a folder that already holds a
    train/ or val/ tree, so nothing is overwritten by mistake.
    """
    from PIL import Image

    out = Path(out)
    for name, value in (("classes", classes), ("size", size), ("train_per_class", train_per_class),
                        ("val_per_class", val_per_class)):
        if value < 1:
            raise ValueError(f"standin {name}={value}: must be positive")
    if any((out / sub).exists() for sub in ("train", "val")):
        raise FileExistsError(f"{out} already holds a train/ or val/ tree; choose another --out or delete it")
    source = source or DataConfig()
    specs = standin_classes(classes)
    digits = max(4, len(str(classes - 1)))
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    nbytes = 0
    bar = tqdm(total=classes * (train_per_class + val_per_class), desc="standin", disable=not progress, leave=False)
    for sub, per_class, train in (("train", train_per_class, True), ("val", val_per_class, False)):
        # the whole Fashion-MNIST split: a stand-in spreads its images over the colour pairs
        split = load_split(replace(source, name="fashion_mnist", train_per_class=None, test_per_class=None),
                           train=train)
        images, labels = split.images[:, 0], split.labels.numpy()
        for g in range(GARMENTS):
            members = [c for c in specs if c.garment == g]
            pool = rng.permutation(np.flatnonzero(labels == g))
            need = len(members) * per_class
            picks = pool[np.arange(need) % len(pool)]  # every image once before any repeats
            chunk = max(1, 512 // per_class)  # classes upsampled together (bounded memory)
            for k, cls in enumerate(members):
                if k % chunk == 0:
                    gray = _upsample(images[torch.as_tensor(picks[k * per_class:(k + chunk) * per_class])], size)
                folder = out / sub / cls.folder(digits)
                folder.mkdir(parents=True, exist_ok=True)
                j = (k % chunk) * per_class
                for i, image in enumerate(_colour_table(cls)[gray[j:j + per_class]]):
                    path = folder / f"{sub}_{cls.index:0{digits}d}_{i:04d}.JPEG"
                    Image.fromarray(image).save(path, quality=quality)
                    nbytes += path.stat().st_size
                bar.update(per_class)
    bar.close()
    meta = {"classes": classes, "size": size, "train_per_class": train_per_class, "val_per_class": val_per_class,
            "seed": seed, "quality": quality, "colour_pairs": math.ceil(classes / GARMENTS),
            "colours": len({c.foreground for c in specs} | {c.background for c in specs}),
            "bytes": nbytes, "seconds": round(time.perf_counter() - start, 2)}
    (out / "standin.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta

