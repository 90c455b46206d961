"""Read what the official SRe2L, CDA and CUDD code writes, so that cda can train and test on it.

Supported (layouts read from the official code: VILA-Lab/SRe2L @8d00cba, MIV-XJTU/CUDD @0bf778c):

- **Distilled image trees** (`load_image_folder`). The official recovery scripts (SRe2L
  `SRe2L/recover/data_synthesis.py`, CDA `CDA/recover_cda_*.py`, CUDD `distill/utils.py`) save each
  image as `<root>/new{class:03d}/class{class:03d}_id{ipc:03d}.jpg` (ImageNet-21K: `{class:05d}`),
  RGB JPEG. Any ImageFolder tree `<root>/<class>/<image>` reads too, including cda's own
  `images/{label:03d}/{k:03d}.png` (`Distilled.save`).
- **FKD soft labels** (`FKDLabels`), as written by the official `relabel/generate_soft_label.py`
  (SRe2L; CUDD ships the same file): `<root>/epoch_{e}/batch_{b}.tar` (`.pth` is accepted too), each a
  torch-saved list `[coords [B,4], flip_status [B], mix_index [B] | None, mix_lam | None,
  mix_bbox | None, soft_label [B,C]]` (papers.md 6.3). cda trains students on them
  (`EvalConfig(labels="stored")`, `train_student(..., stored=FKDLabels(...))`).

Not supported: CUDD's Hugging Face archives (zips of pickles whose layout was not inspected; unpack
them to an image tree first), the files of other successors, and FKD labels of multi-crop or
gradient-accumulation variants that change the per-batch list.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .augment import MixParams, ViewParams
from .cache import ArtifactError, _why_unreadable
from .config import AugConfig
from .contracts import IMAGE_EXTENSIONS, DataError, open_image
from .relabel import BatchPlan

_GRAY_MODES = ("1", "L", "LA", "La", "I", "F")
_CLASS_FOLDER = re.compile(r"^(?:new)?(\d+)$")  # official `new007`, cda's `007`
_OFFICIAL_FILE = re.compile(r"^class(\d+)_id(\d+)\.")


class LayoutError(ValueError):
    """A folder is not in the layout it was read as."""


def load_image_folder(path: str | Path, channels: int | None = None, image_size: int | None = None,
                      progress: bool = True, classes: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a distilled image tree into uint8 images [N, C, H, W] and int64 labels [N].

    The images come in torchvision ImageFolder's order (class folders sorted by name, then file names
    sorted), the order that official FKD label files index. Labels: where every class folder is
    named by a number (`new007`, `007`), that number; otherwise the folder's position in sorted
    order, as ImageFolder. Official file names `class{c}_id{i}` must agree with their folder.

    `classes`: the dataset's class names (e.g. `info_for(DataConfig(...)).classes`): folders named
    by a class name then take that class's index, and a folder named for no class is an error
    (otherwise a missing or misspelt folder would shift every later label).

    `channels`: 1 (grayscale) or 3 (RGB); None keeps what the first image has. `image_size`: resize
    every image to this square size (bilinear); None requires all images to have one size. A file
    that does not decode is an error naming it; 16-bit images are scaled to 8 bits.
    Only files directly inside the class folders are read. The images are held in one preallocated
    uint8 tensor (ImageNet-1K at IPC 50 and 224 px: 7.5 GB), the form cda trains from.
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder; expected <root>/<class folder>/<image files>")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    samples: list[tuple[Path, int]] = []
    numbered = bool(folders) and all(_CLASS_FOLDER.match(f.name) for f in folders)
    if classes is not None and not numbered:
        unknown = sorted(f.name for f in folders if f.name not in classes)
        if unknown:
            raise DataError(f"{root}: class folder(s) {', '.join(unknown[:5])} name no class of the data "
                            f"({', '.join(list(classes)[:5])}{', ...' if len(classes) > 5 else ''}): rename them")
    for position, folder in enumerate(folders):
        label = (int(_CLASS_FOLDER.match(folder.name)[1]) if numbered
                 else list(classes).index(folder.name) if classes is not None else position)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise LayoutError(f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                              f"remove it or add its images")
        for f in files:
            official = _OFFICIAL_FILE.match(f.name)
            if numbered and official and int(official[1]) != label:
                raise LayoutError(f"{f} is named for class {int(official[1])} but lies in {folder.name} "
                                  f"(class {label}); the tree is mixed up")
            samples.append((f, label))
    if not samples:
        raise LayoutError(f"{root} has no class folders with images; expected <root>/<class>/<image>, e.g. the "
                          f"official <root>/new000/class000_id000.jpg")

    def read(f: Path):
        im = open_image(f, wanted)  # a broken file is an error naming it
        if image_size is not None and im.size != (image_size, image_size):
            im = im.resize((image_size, image_size), Image.BILINEAR)
        array = np.array(im, dtype=np.uint8)
        return array[:, :, None] if array.ndim == 2 else array

    if channels not in (None, 1, 3):
        raise ValueError(f"channels={channels}: use 1 (grayscale), 3 (RGB) or None (as the first image)")
    wanted = channels
    if wanted is None:
        try:
            with Image.open(samples[0][0]) as im:
                wanted = 1 if im.mode in _GRAY_MODES or im.mode.startswith("I;16") else 3
        except Exception:
            wanted = 3  # open_image names the broken file below
    first = read(samples[0][0])
    h, w, c = first.shape
    images = torch.empty((len(samples), c, h, w), dtype=torch.uint8)
    for i, (f, _) in enumerate(tqdm(samples, desc="images", disable=not progress, leave=False)):
        array = first if i == 0 else read(f)
        if array.shape != first.shape:
            raise LayoutError(f"{f} is {array.shape[1]}x{array.shape[0]} with {array.shape[2]} channels, but "
                              f"{samples[0][0]} is {w}x{h} with {c}; pass image_size= (and channels=) to convert")
        images[i] = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return images, torch.as_tensor([label for _, label in samples], dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# FKD soft labels

@dataclass
class FKDBatch:
    """One official batch file: per image a crop box (top, left, height, width as fractions of the
    image) and a flip; the batch's mix (partner permutation, lam, CutMix box as (y1, y2, x1, x2) pixel
    slices, or None); and the teacher's logits on the mixed views."""

    coords: torch.Tensor
    flips: torch.Tensor
    mix_index: torch.Tensor | None
    mix_lam: float | None
    mix_box: tuple[int, int, int, int] | None
    logits: torch.Tensor

    def plan(self, indices: np.ndarray) -> BatchPlan:
        """As a cda BatchPlan over the images `indices` (the official sampler's batch)."""
        n = len(indices)
        views = ViewParams(self.coords.float().numpy(), self.flips.numpy().astype(bool), np.zeros((n, 2), np.int64))
        mix = None
        if self.mix_index is not None:
            mix = MixParams(self.mix_index.numpy().astype(np.int64), float(self.mix_lam), self.mix_box)
        return BatchPlan(np.asarray(indices, dtype=np.int64), views, mix)


def _safe_load(path: Path):
    """torch.load without running pickled code; the official lists hold numpy integers (the CutMix box)."""
    if not hasattr(torch.serialization, "safe_globals"):
        raise ArtifactError(f"reading {path} safely needs PyTorch >= 2.6 (torch.serialization.safe_globals)")
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed = [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype,
               *{type(np.dtype(t)) for t in (np.int64, np.int32, np.float64, np.float32)}]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ArtifactError(f"FKD label file {path} cannot be read: {_why_unreadable(err)}. Regenerate the "
                            f"label folder, or point --labels at an intact one") from err


class FKDLabels:
    """A folder of official FKD soft labels, read one epoch at a time (at paper scale the folder is
    ~30 GB: ImageNet-1K, IPC 50, 300 epochs; one epoch is ~100 MB).

    The batch files do not store which images they hold: the official loader rebuilds it from a
    `torch.utils.data.RandomSampler` with a generator seeded `seed` (`--fkd-seed`, 42) over the
    ImageFolder, kept across epochs, in batches of the generation batch size. `order(e)` repeats that
    with this PyTorch's RandomSampler (the official README asks for PyTorch >= 2.0), so the images
    must be read in ImageFolder order (`load_image_folder` does).

    `epoch(e)` gives cda's (BatchPlan, logits) pairs and `check_fits` the official constraints (same
    batch size, no more epochs than stored), so `train_student(..., stored=labels)` trains on them.
    Crops are applied by cda's bilinear `grid_sample`, not PIL's `resized_crop` (views match up to
    interpolation at the crop borders). For CutMix the stored `lam` is the one drawn, not the box's
    area share; FKD training uses only the logits, so it does not matter there.
    """

    def __init__(self, folder: str | Path, num_images: int | None = None, seed: int = 42):
        self.folder, self.seed = Path(folder), seed
        if not self.folder.is_dir():
            raise ArtifactError(f"FKD label folder {self.folder} does not exist")
        epochs = _numbered(self.folder, r"epoch_(\d+)", dirs=True)
        if not epochs:
            raise ArtifactError(f"{self.folder} holds no epoch_<e>/ folders: not an FKD label folder "
                                f"(expected <folder>/epoch_0/batch_0.tar, ...)")
        if sorted(epochs) != list(range(len(epochs))):
            raise ArtifactError(f"{self.folder}: epoch folders {sorted(epochs)[:10]}... are not 0..{len(epochs) - 1}")
        self.epochs = len(epochs)
        self._files = {0: self._batch_files(0)}
        first, last = self.read_batch(0, 0), self.read_batch(0, len(self._files[0]) - 1)
        self.batch_size = len(first.logits)
        self.num_classes = first.logits.shape[1]
        self.num_images = self.batch_size * (len(self._files[0]) - 1) + len(last.logits)
        self.logits_dtype = first.logits.dtype
        self.mix = "none" if first.mix_index is None else "mixup" if first.mix_box is None else "cutmix"
        if num_images is not None and num_images != self.num_images:
            raise ArtifactError(f"FKD labels in {self.folder} are for {self.num_images} images "
                                f"({len(self._files[0])} batches of {self.batch_size}), not {num_images}")
        self._states = [self._fresh_generator().get_state()]  # the sampler's generator at each epoch's start

    def __repr__(self) -> str:
        return (f"FKDLabels({str(self.folder)!r}: {self.epochs} epochs, {self.num_images} images in batches of "
                f"{self.batch_size}, {self.num_classes} classes, {self.mix}, {self.logits_dtype})")

    def _fresh_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def _batch_files(self, e: int) -> list[Path]:
        folder = self.folder / f"epoch_{e}"
        files = _numbered(folder, r"batch_(\d+)\.(?:tar|pth)")
        if sorted(files) != list(range(len(files))) or not files:
            raise ArtifactError(f"{folder}: batch files {sorted(files)[:10]}... are not batch_0..batch_<n-1> "
                                f"(.tar or .pth)")
        return [files[b] for b in range(len(files))]

    def read_batch(self, e: int, b: int) -> FKDBatch:
        """Batch `b` of epoch `e`, checked."""
        if e not in self._files:
            files = self._batch_files(e)
            if len(files) != len(self._files[0]):
                raise ArtifactError(f"{self.folder}/epoch_{e} has {len(files)} batch files, epoch_0 has "
                                    f"{len(self._files[0])}")
            self._files[e] = files
        path = self._files[e][b]
        blob = _safe_load(path)
        if not isinstance(blob, (list, tuple)) or len(blob) != 6:
            raise ArtifactError(f"{path} is not an official FKD batch: expected the list [coords, flip_status, "
                                f"mix_index, mix_lam, mix_bbox, soft_label], got {type(blob).__name__}"
                                + (f" of {len(blob)}" if isinstance(blob, (list, tuple)) else ""))
        coords, flips, index, lam, bbox, logits = blob
        problems = []
        if not (torch.is_tensor(logits) and logits.dim() == 2):
            problems.append("soft_label is not a [B, C] tensor")
        n = len(logits) if torch.is_tensor(logits) else -1
        if not (torch.is_tensor(coords) and tuple(coords.shape) == (n, 4)):
            problems.append(f"coords are not [{n}, 4]")
        elif not (coords.min() >= 0 and coords.max() <= 1 and (coords[:, 2:] > 0).all()):
            problems.append("coords are not fractions (top, left, height, width) of the image")
        if not (torch.is_tensor(flips) and tuple(flips.shape) == (n,)):
            problems.append(f"flip_status is not [{n}]")
        if index is not None and not (torch.is_tensor(index) and
                                      torch.equal(index.long().sort().values, torch.arange(n))):
            problems.append("mix_index is not a permutation of the batch")
        if (index is None) != (lam is None) or (bbox is not None and index is None):
            problems.append("mix_index, mix_lam and mix_bbox do not agree on whether the batch is mixed")
        if lam is not None and not 0 <= float(lam) <= 1:
            problems.append(f"mix_lam={lam} is outside [0, 1]")
        box = None
        if bbox is not None:
            if len(bbox) != 4:
                problems.append("mix_bbox is not [x1, y1, x2, y2]")
            else:
                # rand_bbox's (bbx1, bby1, bbx2, bby2) slice dims 2 (rows) and 3 (columns):
                # images[:, :, bbx1:bbx2, bby1:bby2]. As cda's (y1, y2, x1, x2):
                r1, c1, r2, c2 = (int(v) for v in bbox)
                box = (r1, r2, c1, c2)
        if problems:
            raise ArtifactError(f"{path} is not a valid FKD batch: " + "; ".join(problems))
        return FKDBatch(coords, flips.bool(), None if index is None else index.long(),
                        None if lam is None else float(lam), box, logits)

    def order(self, e: int) -> list[np.ndarray]:
        """The image indices of each batch of epoch `e`, as the official loader draws them."""
        from torch.utils.data import BatchSampler, RandomSampler

        if not 0 <= e < self.epochs:
            raise ArtifactError(f"FKD labels in {self.folder} cover epochs 0..{self.epochs - 1}; "
                                f"epoch {e} was asked for")
        g = self._fresh_generator()
        while len(self._states) <= e:
            g.set_state(self._states[-1])
            list(RandomSampler(range(self.num_images), generator=g))
            self._states.append(g.get_state())
        g.set_state(self._states[e])
        sampler = RandomSampler(range(self.num_images), generator=g)
        return [np.asarray(b, dtype=np.int64) for b in BatchSampler(sampler, self.batch_size, drop_last=False)]

    def epoch(self, e: int) -> list[tuple[BatchPlan, torch.Tensor]]:
        """The batches (plan, logits) of epoch `e`, for cda's stored-label training."""
        out = []
        for b, indices in enumerate(self.order(e)):
            batch = self.read_batch(e, b)
            self._check_size(e, b, batch, len(indices))
            out.append((batch.plan(indices), batch.logits))
        return out

    def _check_size(self, e: int, b: int, batch: FKDBatch, n: int) -> None:
        if tuple(batch.logits.shape) != (n, self.num_classes):
            raise ArtifactError(f"{self._files[e][b]} holds {tuple(batch.logits.shape)} logits; the sampler's batch "
                                f"{b} has {n} images of {self.num_classes} classes")

    def check_fits(self, aug: AugConfig, n_images: int) -> None:
        """The official constraints: the generation batch size, and no more epochs than stored."""
        if aug.batch_size != self.batch_size or aug.epochs > self.epochs:
            raise ArtifactError(f"FKD labels in {self.folder} hold {self.epochs} epochs of batches of "
                                f"{self.batch_size}; the student asks for {aug.epochs} epochs of {aug.batch_size}: set "
                                f"AugConfig(batch_size={self.batch_size}, epochs<={self.epochs})")
        if n_images != self.num_images:
            raise ArtifactError(f"FKD labels in {self.folder} are for {self.num_images} images, not {n_images}")

    def validate(self, progress: bool = True) -> None:
        """Read and check every batch file of every epoch (a full pass over the folder)."""
        for e in tqdm(range(self.epochs), desc="FKD labels", disable=not progress, leave=False):
            self.epoch(e)


def _numbered(folder: Path, pattern: str, dirs: bool = False) -> dict[int, Path]:
    regex = re.compile(f"^{pattern}$")
    found = {}
    for p in folder.iterdir() if folder.is_dir() else []:
        m = regex.match(p.name)
        if m and p.is_dir() == dirs:
            found[int(m[1])] = p
    return found
