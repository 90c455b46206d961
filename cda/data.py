"""Datasets by name. Small ones load into memory as uint8 tensors; large ones stream from ImageFolder trees.

Both kinds of split answer the same questions: `len`, `labels`, `take(indices)` (uint8 images) and
`batches(...)` (uint8 images and labels, ready for on-device augmentation and normalization).
"""
from __future__ import annotations

import copy
import functools
import gc
import gzip
import os
import struct
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .config import DataConfig
from .contracts import DataError, open_image, tree_classes, tree_image_size, worker_error
from .datasets import DATASETS, FASHION_CLASSES, IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, dataset_info  # noqa: F401 (re-exported)
from .distilled import Distilled


class DatasetNotFoundError(FileNotFoundError):
    """The data is not where it was said to be."""


_ENV_VARS = {"fashion_mnist": "CDA_FASHION_MNIST", "cifar10": "CDA_CIFAR10", "cifar100": "CDA_CIFAR100",
             "tiny_imagenet": "CDA_TINY_IMAGENET", "imagenet1k": "CDA_IMAGENET", "imagenet21k": "CDA_IMAGENET21K",
             "imagefolder": "CDA_IMAGEFOLDER"}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = {True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                  False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def download_dir() -> Path:
    return Path(os.environ.get("CDA_DOWNLOAD_DIR", Path.home() / ".cache" / "cda" / "data"))


# ---------------------------------------------------------------------------------------------
# Splits

class TensorSplit:
    """A split held in memory: uint8 images [N, C, H, W] and int64 labels [N]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.info = images, labels.long(), info

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices) -> torch.Tensor:
        return self.images[torch.as_tensor(indices, dtype=torch.long)]

    def to(self, device) -> "TensorSplit":
        return TensorSplit(self.images.to(device), self.labels.to(device), self.info)

    def batches(self, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None,
                device="cpu", drop_last: bool = False, part: tuple[int, int] | None = None) -> Iterator:
        """(images, labels) batches; with `part=(rank, world)`, (images, labels, global batch size)
        triples holding only this rank's part of each batch (cda.distributed.part)."""
        order = rng.permutation(len(self)) if shuffle else np.arange(len(self))
        images, labels = self.images.to(device), self.labels.to(device)
        for idx, n in _batch_order(order, batch_size, drop_last, part):
            idx = torch.as_tensor(idx, device=images.device)
            yield (images[idx], labels[idx]) + ((n,) if part else ())


def _batch_order(order: np.ndarray, batch_size: int, drop_last: bool, part: tuple[int, int] | None):
    """(indices of this rank's part of each batch, the whole batch's size)."""
    from .distributed import part as part_of

    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    rank, world = part or (0, 1)
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield idx[part_of(len(idx), rank, world)], len(idx)


class FolderSplit:
    """An ImageFolder tree, decoded by DataLoader workers into uint8 tensors of the dataset's size.

    Training batches are already randomly resized-cropped and flipped (torchvision's standard
    recipe); evaluation batches are resized and center-cropped (DataConfig.test_crop_ratio: 0.875 as for ImageNet;
    1.0, the image as it is, at the dataset's size).
    """

    augmented_on_load = True

    def __init__(self, root: Path, info: DatasetInfo, train: bool, workers: int | None = None,
                 test_crop_ratio: float = 0.875):
        from torchvision import datasets

        self.root, self.info, self.train, self.test_crop_ratio = root, info, train, test_crop_ratio
        self.workers = min(8, os.cpu_count() or 1) if workers is None else workers
        # every unreadable image is a DataError naming its path, in the DataLoader workers too
        self.folder = datasets.ImageFolder(str(root), loader=functools.partial(open_image, channels=info.channels))
        self.labels = torch.as_tensor(self.folder.targets, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def _transform(self, train: bool):
        from torchvision.transforms import v2

        size = self.info.image_size
        if train:
            ops = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
        elif self.test_crop_ratio < 1:
            ops = [v2.Resize(int(round(size / self.test_crop_ratio)), antialias=True), v2.CenterCrop(size)]
        else:  # the plain view (Tiny-ImageNet's official test images)
            ops = [v2.Resize((size, size), antialias=True)]
        return v2.Compose([v2.PILToTensor(), *ops])

    def subset(self, indices, train: bool) -> "FolderSplit":
        """The images at `indices`, still read from disk; `train` sets the augmentation."""
        out = copy.copy(self)
        out.folder = copy.copy(self.folder)
        samples = [self.folder.samples[int(i)] for i in indices]
        out.folder.samples = out.folder.imgs = samples
        out.folder.targets = [t for _, t in samples]
        out.labels = torch.as_tensor(out.folder.targets, dtype=torch.long)
        out.train = train
        return out

    def take(self, indices) -> torch.Tensor:
        tf = self._transform(train=False)
        return torch.stack([tf(self.folder.loader(self.folder.samples[int(i)][0])) for i in indices])

    def batches(self, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None,
                device="cpu", drop_last: bool = False, part: tuple[int, int] | None = None):
        """As TensorSplit.batches."""
        from torch.utils.data import DataLoader

        self.folder.transform = self._transform(self.train)
        order = rng.permutation(len(self)) if shuffle else np.arange(len(self))
        parts = list(_batch_order(order, batch_size, drop_last, part))  # each rank decodes only its part
        loader = DataLoader(self.folder, batch_sampler=[idx.tolist() for idx, _ in parts], num_workers=self.workers,
                            pin_memory=str(device).startswith("cuda"), persistent_workers=False)
        batches, failure = iter(loader), None
        for _, n in parts:
            try:
                images, labels = next(batches)
            except DataError as err:  # from a worker, with the worker's traceback in the message
                failure = worker_error(err)
            if failure is not None:  # shut the workers down here, not in a later DataLoader's fork
                batches = None
                gc.collect()
                raise failure
            batch = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            yield batch + ((n,) if part else ())


Split = TensorSplit | FolderSplit


# ---------------------------------------------------------------------------------------------
# Loading

def _normalization(info: DatasetInfo, cfg: DataConfig) -> DatasetInfo:
    """normalize=False: pixels in [0, 1] go to the models as they are."""
    return info if cfg.normalize else replace(info, mean=(0.0,) * info.channels, std=(1.0,) * info.channels)


def info_for(cfg: DataConfig) -> DatasetInfo:
    """The dataset's info as `cfg` sets it (image size, normalization), without loading the data. An
    ImageFolder tree of unknown class count (name "imagefolder") is read when its root exists: its
    classes (cda.contracts.tree_classes) and, unless `cfg.image_size` is set, its image size
    (cda.contracts.tree_image_size: the first image of each class, headers only)."""
    info = _normalization(dataset_info(cfg.name), cfg)
    if cfg.image_size and not info.in_memory:
        info = replace(info, image_size=cfg.image_size)
    root = _given_root(cfg, cfg.name)
    if not info.num_classes and root is not None and (root / "train").is_dir():
        classes = tree_classes(root)
        info = replace(info, num_classes=len(classes), classes=classes)
        if not cfg.image_size:
            info = replace(info, image_size=tree_image_size(root / "train", classes))
    return info


def with_image_size(cfg: DataConfig) -> DataConfig:
    """`cfg` with the image size read from an "imagefolder" tree filled in, so that cache keys and
    results name the size the data was used at."""
    if cfg.name != "imagefolder" or cfg.image_size:
        return cfg
    info = info_for(cfg)
    return replace(cfg, image_size=info.image_size) if info.num_classes else cfg


SPLITS = ("train", "val", "test")


def load_split(cfg: DataConfig, train: bool | None = None, *, split: str | None = None) -> Split:
    """Load one split of `cfg.name`, optionally a stratified subset of it.

    Name it by `train` (True: "train", False: "test") or by `split`: "train" is the training set
    less the validation images, "val" the `cfg.validation` images per class held out of the
    training set (an error when there are none), "test" the test set. `train_per_class` subsets
    the training split after the validation images are taken out, `test_per_class` the test split.
    """
    name = _split_name(train, split)
    info = _normalization(dataset_info(cfg.name), cfg)
    loader = _LOADERS.get(cfg.name, _load_folder)
    out = loader(cfg, info, name != "test")
    if name == "val" and not cfg.validation:
        raise ValueError(f"no validation split for {cfg.name}: DataConfig.validation=0; set it to the number of "
                         f"training images per class to hold out (--set data.validation=500)")
    if name != "test" and cfg.validation:
        held = validation_indices(out.labels, cfg.validation, cfg.subset_seed)
        if name == "val":
            return _subset(out, held, train=False)
        out = _subset(out, np.setdiff1d(np.arange(len(out)), held), train=True)
    per_class = cfg.train_per_class if name == "train" else cfg.test_per_class
    if per_class is not None:
        idx = stratified_indices(out.labels, per_class, seed=cfg.subset_seed + (0 if name == "train" else 1))
        out = TensorSplit(out.take(idx), out.labels[torch.as_tensor(idx)], out.info)
    return out


def _split_name(train: bool | None, split: str | None) -> str:
    if split is None:
        if train is None:
            raise ValueError("load_split: say which split, train=True / False or split='train' / 'val' / 'test'")
        return "train" if train else "test"
    if split not in SPLITS:
        raise ValueError(f"load_split: unknown split {split!r}; choose one of {SPLITS}")
    if train is not None and (split == "test") == bool(train):
        raise ValueError(f"load_split: train={train} contradicts split={split!r}; give one of them")
    return split


def validation_indices(labels: torch.Tensor, per_class: int, subset_seed: int) -> np.ndarray:
    """The indices of the training images held out for validation: `per_class` per class, drawn from
    `subset_seed` on a stream of their own (not the one the train_per_class subset is drawn from).
    Every class must keep at least one training image."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    short = [(int(c), int(n)) for c, n in zip(classes, counts) if n <= per_class]
    if short:
        raise ValueError(f"DataConfig.validation={per_class} leaves no training images in class(es) "
                         f"{short[:5]} (class, images); hold out fewer images per class")
    return stratified_indices(labels, per_class, seed=[subset_seed, 2])  # streams 0, 1: train, test subsets


def _subset(split: Split, indices: np.ndarray, train: bool) -> Split:
    """The images at `indices` of a split: in memory a TensorSplit, a folder stays a folder (nothing is
    decoded); `train` sets a folder's augmentation (False: the evaluation view)."""
    if isinstance(split, FolderSplit):
        return split.subset(indices, train)
    idx = torch.as_tensor(indices, dtype=torch.long)
    return TensorSplit(split.images[idx], split.labels[idx], split.info)


def stratified_indices(labels: torch.Tensor, per_class: int, seed: int) -> np.ndarray:
    """Up to `per_class` random indices of each class (fewer where a class is smaller), sorted by class."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen.append(np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False)))
    return np.concatenate(chosen)


def _given_root(cfg: DataConfig, name: str) -> Path | None:
    """The folder the user named: DataConfig.root (--data-root), else the dataset's variable."""
    env = _ENV_VARS.get(name)
    given = cfg.root or (os.environ.get(env) if env else None)
    return Path(given).expanduser() if given else None


def _candidates(cfg: DataConfig, name: str, defaults: list[Path]) -> list[Path]:
    """Where to look: the folder the user named and nothing else (a missing one is an error, never a
    fallback to other data), or else the usual places."""
    root = _given_root(cfg, name)
    if root is None:
        return defaults
    if not root.is_dir():
        source = "DataConfig.root, --data-root" if cfg.root else f"${_ENV_VARS[name]}"
        raise DatasetNotFoundError(f"data root {root} (from {source}) does not exist or is not a folder: "
                                   f"check the path")
    return [root]


def _not_found(name: str, looked: list[Path], how: str) -> DatasetNotFoundError:
    where = "\n".join(f"  - {p}" for p in looked) or "  (nowhere: no path was given)"
    env = _ENV_VARS.get(name)
    hint = f" or set ${env}" if env else ""
    return DatasetNotFoundError(f"dataset {name!r} not found. Looked in:\n{where}\n"
                                f"Pass its folder (DataConfig.root / --data-root){hint}. {how}")


def _load_fashion_mnist(cfg: DataConfig, info: DatasetInfo, train: bool) -> TensorSplit:
    image_file, label_file = _FASHION_FILES[train]
    torchvision_raw = download_dir() / "FashionMNIST" / "raw"
    # A given folder may hold the files itself or torchvision's FashionMNIST/raw layout.
    given = _candidates(cfg, "fashion_mnist", [])
    looked = [q for p in given for q in (p, p / "FashionMNIST" / "raw")] or [DEBIAN_FASHION_MNIST, torchvision_raw]
    for folder in looked:
        if (folder / image_file).is_file() and (folder / label_file).is_file():
            return TensorSplit(_read_idx(folder / image_file).unsqueeze(1), _read_idx(folder / label_file).long(), info)
    if cfg.download and not given:
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(str(download_dir()), train=train, download=True)
        except Exception as err:  # no internet, most often
            raise _not_found("fashion_mnist", looked, f"The download failed too: {err}") from err
        return _load_fashion_mnist(cfg, info, train)
    raise _not_found("fashion_mnist", looked,
                     "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist`; with internet: download=True "
                     "(--download). The folder must hold the four idx .gz files.")


def _read_idx(path: Path) -> torch.Tensor:
    """Read an idx file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte idx file")
        shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
        array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if array.size != int(np.prod(shape)):
            raise ValueError(f"expected {int(np.prod(shape))} values, found {array.size}")
    except (OSError, EOFError, ValueError, struct.error) as err:
        raise DatasetNotFoundError(f"{path} is not a readable idx file ({err}); reinstall or re-download it") from err
    return torch.from_numpy(array.reshape(shape).copy())


def _load_digits(cfg: DataConfig, info: DatasetInfo, train: bool) -> TensorSplit:
    """sklearn's 8x8 digits (values 0..16), split 75/25 stratified with a fixed seed."""
    from sklearn.datasets import load_digits

    if cfg.root:
        raise DatasetNotFoundError(f"digits comes with scikit-learn and has no folder, but DataConfig.root "
                                   f"(--data-root) is {cfg.root}: drop it, or name the dataset in that folder")
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    test_idx = stratified_indices(torch.as_tensor(labels), per_class=45, seed=1234)
    mask = np.zeros(len(labels), dtype=bool)
    mask[test_idx] = True
    keep = ~mask if train else mask
    return TensorSplit(torch.from_numpy(images[keep]), torch.from_numpy(labels[keep]), info)


def _load_cifar(cfg: DataConfig, info: DatasetInfo, train: bool) -> TensorSplit:
    from torchvision import datasets

    cls = datasets.CIFAR10 if info.name == "cifar10" else datasets.CIFAR100
    looked = _candidates(cfg, info.name, [download_dir()])
    for root in looked:
        try:
            ds = cls(str(root), train=train, download=False)
        except RuntimeError:
            continue
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        return TensorSplit(images, torch.as_tensor(ds.targets), info)
    if cfg.download and not _given_root(cfg, info.name):
        try:
            cls(str(download_dir()), train=train, download=True)
        except Exception as err:
            raise _not_found(info.name, looked, f"The download failed too: {err}") from err
        return _load_cifar(cfg, info, train)
    raise _not_found(info.name, looked, "Use torchvision's layout (cifar-10-batches-py / cifar-100-python), "
                                        "or download=True where there is internet.")


def _load_folder(cfg: DataConfig, info: DatasetInfo, train: bool) -> FolderSplit:
    """Tiny-ImageNet, ImageNet-1K/21K or any ImageFolder tree with `train/` and `val/` class folders."""
    sub = "train" if train else "val"
    if cfg.image_size:
        info = replace(info, image_size=cfg.image_size)
    looked = _candidates(cfg, info.name, [])
    for root in looked:
        folder = root / sub
        if folder.is_dir() and any(p.is_dir() for p in folder.iterdir()):
            # every split indexes the train/ classes: val's folders must be the same names
            classes = tree_classes(root)
            if info.name == "imagefolder":
                info = replace(info, num_classes=len(classes), classes=classes)
                if not cfg.image_size:
                    info = replace(info, image_size=tree_image_size(root / "train", classes))
            split = FolderSplit(folder, info, train, cfg.workers, cfg.test_crop_ratio)
            if info.num_classes and len(split.folder.classes) != info.num_classes:
                raise DatasetNotFoundError(
                    f"{folder} has {len(split.folder.classes)} class folders, but {info.name} has "
                    f"{info.num_classes} classes: check the layout (one folder per class in train/ and val/)")
            return split
    raise _not_found(info.name, [p / sub for p in looked],
                     "Expected <root>/train/<class>/*.JPEG and <root>/val/<class>/*.JPEG "
                     "(Tiny-ImageNet's val/ must first be sorted into class folders).")


_LOADERS = {"fashion_mnist": _load_fashion_mnist, "digits": _load_digits,
            "cifar10": _load_cifar, "cifar100": _load_cifar}


def real_subset(split, ipc: int, seed: int = 0) -> Distilled:
    """IPC random real training images per class: the honest baseline for soft-label methods."""
    counts = torch.bincount(split.labels, minlength=split.info.num_classes)
    if int(counts.min()) < ipc:
        raise ValueError(f"IPC {ipc} exceeds the smallest class ({int(counts.min())} training images)")
    idx = stratified_indices(split.labels, ipc, seed)
    return Distilled(split.take(idx), split.labels[torch.as_tensor(idx)].clone(),
                     {"method": "random", "ipc": ipc, "seed": seed, "dataset": split.info.name})
