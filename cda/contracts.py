"""What data must be before cda uses it, checked where it comes in (ImageFolder trees, image files,
image sets handed to students): each broken input is a `DataError` whose one-line message names the
file or folder, what is wrong, and the fix.

- A tree's splits (`train/`, `val/`, `test/`) have the same class folders, at least two, none empty.
- Every image decodes; 16-bit images are scaled to 8 bits (not clipped); other modes that cda
  cannot convert (32-bit float, 32-bit integer) are refused with their path.
- A tree's image size is read from the first image of each train/ class (file headers only, so it
  costs one small read per class even at ImageNet-1K scale): the shorter side; where the classes'
  first images differ, the smallest of them (larger images are scaled down to it, never up).
- An image set's shape and channels match the data and the teacher it is used with.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

# torchvision's ImageFolder extensions: the files a class folder's images are.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")
_EIGHT_BIT = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


class DataError(ValueError):
    """Data that cannot be used as given; the message is one line naming the file or folder and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).splitlines()))


def _few(names: Sequence[str], k: int = 5) -> str:
    shown = ", ".join(str(n) for n in list(names)[:k])
    return shown + (f" (+{len(names) - k} more)" if len(names) > k else "")


# ---------------------------------------------------------------------------------------------
# Trees

def first_image(folder: Path) -> Path | None:
    """The first image file under `folder` (sorted, recursively, as ImageFolder finds them), or None."""
    for dirpath, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                return Path(dirpath) / name
    return None


def split_classes(folder: Path) -> tuple[str, ...]:
    """The class folder names of one split (sorted, as ImageFolder indexes them): at least two,
    each holding at least one image."""
    names = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if len(names) < 2:
        raise DataError(f"{folder} holds {len(names)} class folder(s){' (' + _few(names) + ')' if names else ''}: "
                        f"a classifier needs at least two; put each class's images in a folder of its own")
    empty = [n for n in names if first_image(folder / n) is None]
    if empty:
        raise DataError(f"class folder(s) {_few([str(folder / n) for n in empty])} hold no images "
                        f"({' '.join(IMAGE_EXTENSIONS)}): add their images or remove the folders")
    return tuple(names)


def tree_classes(root: str | os.PathLike, splits: Sequence[str] = SPLIT_FOLDERS) -> tuple[str, ...]:
    """The class names of an ImageFolder tree <root>/<split>/<class>/<images>: the same in every
    split present (train/ is required), else one line lists the differences."""
    root = Path(root)
    if not (root / "train").is_dir():
        raise DataError(f"{root / 'train'} is not a folder: the tree needs train/<class>/<images> "
                        f"(and val/<class>/<images>)")
    classes = {s: split_classes(root / s) for s in splits if (root / s).is_dir()}
    train = classes["train"]
    for split, names in classes.items():
        missing, extra = sorted(set(train) - set(names)), sorted(set(names) - set(train))
        if missing or extra:
            diff = "; ".join(f"{what} in {split}/: {_few(n)}" for what, n in (("missing", missing), ("extra", extra)) if n)
            raise DataError(f"{root}: {split}/ and train/ have different class folders ({diff}); give every split "
                            f"the same class folder names, or its images get the wrong labels")
    return train


def tree_image_size(folder: str | os.PathLike, classes: Sequence[str]) -> int:
    """The side a split's images are used at: the shorter side of the first image of each class
    (headers only), the smallest where they differ."""
    from PIL import Image

    folder, sides = Path(folder), []
    for c in classes:
        path = first_image(folder / c)
        if path is None:
            raise DataError(f"class folder {folder / c} holds no images: add its images or remove the folder")
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except Exception as err:
            raise _unreadable(path, err) from err
    return min(sides)


# ---------------------------------------------------------------------------------------------
# Image files

def open_image(path: str | os.PathLike, channels: int):
    """The image at `path` as an 8-bit PIL image, "L" (channels 1) or "RGB" (3). 16-bit images are
    scaled to 8 bits; a file that does not decode, or a mode cda cannot convert, is a DataError."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return to_8bit(im, path).convert("L" if channels == 1 else "RGB")
    except DataError:
        raise
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise _unreadable(Path(path), err) from err


def to_8bit(im, path):
    """8-bit modes as they are; 16-bit grayscale (PNG's "I;16", or "I" from a PNG) scaled by
    255/65535 and rounded; anything else a DataError naming the mode."""
    from PIL import Image

    if im.mode in _EIGHT_BIT:
        return im
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PNG"):
        a = np.asarray(im).astype(np.float64)
        return Image.fromarray(np.round(a * (255.0 / 65535.0)).clip(0, 255).astype(np.uint8), "L")
    raise DataError(f"{path} has pixel mode {im.mode!r}, which cda does not convert (it reads 8-bit images and "
                    f"16-bit grayscale): save it as 8-bit RGB or grayscale PNG or JPEG")


def _unreadable(path: Path, err: Exception) -> DataError:
    text = " ".join(str(err).split())
    if "truncated" in text:
        why = "is truncated"
    elif type(err).__name__ == "UnidentifiedImageError" or "cannot identify" in text:
        why = "is not an image PIL can read"
        text = ""
    else:
        why = "cannot be decoded"
    detail = f" ({type(err).__name__}: {text})" if text else ""
    return DataError(f"{path} {why}{detail}: replace it with an intact image or remove it")


def worker_error(err: Exception) -> Exception:
    """A DataLoader worker's re-raised error as one line: torch puts the worker's traceback in the
    message; a DataError's own message is its last line."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    if isinstance(err, DataError) and lines:
        return DataError(lines[-1].split("DataError: ", 1)[-1])
    return err


# ---------------------------------------------------------------------------------------------
# Image sets

def check_image_set(images: torch.Tensor, labels: torch.Tensor, info, where: str = "the image set") -> None:
    """`images` [N, C, H, W] with `labels` [N] fit `info` (a cda.data.DatasetInfo): at least one image,
    the data's channels and size, class indices within its classes."""
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise DataError(f"{where}: images must be [N, C, H, W], got shape {shape}")
    n, c, h, w = shape
    if n == 0:
        raise DataError(f"{where} holds no images: give at least one image (and its label)")
    want = (info.channels, info.image_size, info.image_size)
    if (c, h, w) != want:
        differ = " and ".join(what for what, a, b in (("channels", c, want[0]), ("size", (h, w), want[1:]))
                              if a != b)
        raise DataError(f"{where} holds {c}x{h}x{w} images (CxHxW), but {info.name} here is "
                        f"{'x'.join(map(str, want))}: the {differ} differ. Use the dataset and preset the set was "
                        f"made for (--preset, --dataset, --set data.image_size=), or convert the images "
                        f"(cda.load_image_folder(path, channels=, image_size=))")
    if tuple(labels.shape) != (n,):
        raise DataError(f"{where}: labels must be [N] = [{n}] class indices, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise DataError(f"{where}: labels of dtype {labels.dtype}: give integer class indices")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= info.num_classes:
        raise DataError(f"{where}: labels range over {lo}..{hi}, but {info.name} has classes 0..{info.num_classes - 1}: "
                        f"use the dataset the set was made for")


@torch.no_grad()
def check_teacher(teacher: torch.nn.Module, info, device) -> None:
    """The teacher takes the data's images and gives one logit per class (one image through it)."""
    x = torch.zeros(1, info.channels, info.image_size, info.image_size, device=device)
    try:
        with torch.no_grad():  # a shape check: no graph to keep
            out = teacher(x)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"the teacher does not take {info.name}'s {info.channels}x{info.image_size}x{info.image_size} "
                        f"images ({first}): use a teacher squeezed on this data at this size") from err
    if out.dim() != 2 or out.shape[1] != info.num_classes:
        raise DataError(f"the teacher gives {tuple(out.shape[1:])} outputs per image, but {info.name} has "
                        f"{info.num_classes} classes: use a teacher squeezed on this data")
