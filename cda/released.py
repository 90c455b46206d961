"""Released distilled sets and teachers made outside cda, for `cda evaluate --images DIR [--labels FKD_DIR]
[--teacher CKPT --arch NAME]`.

Teachers (`load_teacher`), told apart by their contents:

- a cda checkpoint (`cda squeeze`; its architecture is in it);
- a torchvision state dict, or a timm checkpoint (`{"state_dict": ...}`, as the ImageNet-21K-P
  ResNets of CDA's README), with the architecture named (`--arch resnet18`, `--arch timm/resnet18`);
- the official Tiny-ImageNet checkpoint (zeyuanyin/tiny-imagenet `classification/train.py`:
  `{"model": ..., "args": Namespace(model="resnet18", ...), ...}`, keys perhaps prefixed `module.`),
  whose architecture is its `args.model` with the small-image stem (`resnet18_modified`), as the
  official scripts build it.

Every mismatch is one line naming the file and the fix: a teacher whose class count or weights do not
fit, an image tree whose classes are not the dataset's, FKD labels made at another batch size, for
fewer epochs or for another number of images.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from .checkpoint import FORMAT, CheckpointError, load_checkpoint
from .config import EvalConfig
from .data import DatasetInfo
from .models import create_model
from .official_formats import FKDLabels, LayoutError, load_image_folder
from .recover import Distilled

_WRAPPERS = ("state_dict", "model", "state_dict_ema", "model_ema")


def _read(path: Path):
    if not path.is_file():
        raise CheckpointError(f"teacher checkpoint {path} does not exist: pass the file's path to --teacher")
    try:  # weights only; the official Tiny checkpoints also pickle their argparse Namespace
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"teacher checkpoint {path} cannot be read as weights ({type(err).__name__}): "
                              f"pass a cda, torchvision, timm or official Tiny-ImageNet checkpoint") from err


def _state_dict(blob, path: Path) -> dict[str, torch.Tensor]:
    """The weights inside a checkpoint, whatever it wraps them in, without DataParallel's `module.`."""
    state = blob
    if isinstance(blob, dict) and not all(torch.is_tensor(v) for v in blob.values()):
        state = next((blob[k] for k in _WRAPPERS if isinstance(blob.get(k), dict)), None)
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict (expected tensors by name, or one under "
                              f"{'/'.join(_WRAPPERS)}): pass a model checkpoint to --teacher")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _classes(state: dict[str, torch.Tensor]) -> int:
    """The class count: the rows of the last 2-D weight (the classifier)."""
    last = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    return int(last[-1].shape[0]) if last else -1


def foreign_arch(blob) -> str | None:
    """The architecture an official Tiny-ImageNet checkpoint was trained as (None if it does not say)."""
    args = blob.get("args") if isinstance(blob, dict) else None
    model = getattr(args, "model", None)
    return f"{model}_modified" if isinstance(model, str) else None


def load_teacher(path: str | Path, info: DatasetInfo, arch: str | None = None,
                 device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A teacher from any supported checkpoint (see the module's docstring), checked against `info`."""
    path = Path(path)
    blob = _read(path)
    if isinstance(blob, dict) and isinstance(blob.get("meta"), dict) and blob["meta"].get("format") == FORMAT:
        model, meta = load_checkpoint(path, info, device)
        if arch and arch != meta["arch"]:
            raise CheckpointError(f"{path} is a cda checkpoint of {meta['arch']}, not --arch {arch}: "
                                  f"drop --arch or pass the checkpoint of {arch}")
        return model, meta
    state = _state_dict(blob, path)
    arch = arch or foreign_arch(blob)
    if not arch:
        raise CheckpointError(f"{path} does not say its architecture: name it with --arch (e.g. resnet18, "
                              f"resnet18_modified, timm/resnet18)")
    classes = _classes(state)
    if classes != info.num_classes:
        raise CheckpointError(f"teacher {path} has {classes} classes, but {info.name} has {info.num_classes}: "
                              f"pass the teacher of this dataset, or the --preset/--set data.name of the teacher's")
    try:
        model = create_model(arch, classes, info.channels, info.image_size)
    except Exception as err:
        raise CheckpointError(f"--arch {arch} for {path}: {err}") from err
    mine = model.state_dict()
    missing = [k for k in mine if k not in state]
    extra = [k for k in state if k not in mine and not k.endswith("num_batches_tracked")]
    shapes = [k for k in mine if k in state and state[k].shape != mine[k].shape]
    if missing or extra or shapes:
        first = (f"{shapes[0]} is {tuple(state[shapes[0]].shape)}, {arch} wants {tuple(mine[shapes[0]].shape)}"
                 if shapes else f"e.g. {(missing or extra)[0]!r} {'missing' if missing else 'unexpected'}")
        raise CheckpointError(f"teacher {path} does not match --arch {arch} ({len(missing)} weights missing, "
                              f"{len(extra)} unexpected, {len(shapes)} of another shape; {first}): pass the "
                              f"architecture it was trained as (official Tiny-ImageNet ResNets: resnet18_modified)")
    model.load_state_dict(state, strict=False)  # every weight matched above; old checkpoints lack BN counters
    meta = {"arch": arch, "num_classes": classes, "dataset": info.name, "source": str(path)}
    return model.to(device).eval(), meta


def load_released_set(images: str | Path, info: DatasetInfo, progress: bool = True) -> Distilled:
    """An official image tree (or any ImageFolder of a distilled set), at the dataset's channels and size,
    whose classes must be the dataset's (a released set has every class)."""
    root = Path(images)
    x, y = load_image_folder(root, channels=info.channels, image_size=info.image_size, progress=progress)
    found = sorted(set(y.tolist()))
    if found != list(range(info.num_classes)):
        raise LayoutError(f"{root} holds {len(found)} classes (labels {found[0]}..{found[-1]}), but the teacher and "
                          f"{info.name} have {info.num_classes} (0..{info.num_classes - 1}): point --images at the "
                          f"whole set, or pick the --preset (or --set data.name=...) of the set's dataset")
    return Distilled(x, y, meta={"method": "released", "source": str(root.resolve())})


def load_fkd_labels(folder: str | Path, distilled: Distilled, e: EvalConfig, info: DatasetInfo) -> FKDLabels:
    """Official FKD labels for `distilled`, made at the batch size the student trains at and for at
    least its epochs (FKD replays each stored batch as it was made)."""
    labels = FKDLabels(folder, seed=e.aug.seed)
    n = len(distilled.images)
    where = Path(folder)
    if labels.num_images != n:
        raise LayoutError(f"FKD labels {where} are for {labels.num_images} images, the image tree has {n}: "
                          f"pass the label folder made for this tree")
    if labels.num_classes != info.num_classes:
        raise LayoutError(f"FKD labels {where} hold {labels.num_classes} classes, {info.name} has "
                          f"{info.num_classes}: pass the label folder of this dataset")
    if labels.batch_size != e.aug.batch_size or labels.epochs < e.aug.epochs:
        raise LayoutError(f"FKD labels {where} were made at batch {labels.batch_size} for {labels.epochs} epochs; "
                          f"the student trains at batch {e.aug.batch_size} for {e.aug.epochs}: pass --set "
                          f"eval.aug.batch_size={labels.batch_size} --set eval.aug.epochs={min(labels.epochs, e.aug.epochs)}"
                          f", or relabel at the student's batch and epochs")
    return labels


def released_inputs(images: str | Path, info: DatasetInfo, e: EvalConfig, labels: str | Path | None = None,
                    teacher: str | Path | None = None, arch: str | None = None, device: str = "cpu",
                    progress: bool = True) -> tuple[Distilled, EvalConfig, nn.Module | None, FKDLabels | None]:
    """What `evaluate` needs for a released set: the set, the student recipe (stored labels where a
    label folder is given, the teacher online otherwise), the teacher and the labels."""
    if labels is None and teacher is None and e.labels != "hard":
        raise ValueError("a released set needs its soft labels: --labels FKD_DIR (the official label folder) or "
                         "--teacher CKPT (labels online), or --set eval.labels=hard")
    model = None
    if teacher is not None:  # checked first: a tree that does not fit the teacher's classes is named as such
        model, _ = load_teacher(teacher, info, arch, device)
    d = load_released_set(images, info, progress)
    stored = None
    if labels is not None:
        e = replace(e, labels="stored")
        stored = load_fkd_labels(labels, d, e, info)
    elif model is not None:
        e = replace(e, labels="online")
    return d, e, model, stored


# ---------------------------------------------------------------------------------------------
# For notebooks/evaluate_released_sets.ipynb: a miniature release to run on anywhere, the evaluation,
# and the paper's number for the set beside it.

def write_official_tree(root: str | Path, images: torch.Tensor, labels: torch.Tensor) -> Path:
    """uint8 images [N, C, H, W] as the official recovery scripts save them:
    `<root>/new{c:03d}/class{c:03d}_id{i:03d}.png` (the official scripts write JPEG; PNG is lossless)."""
    from PIL import Image

    root = Path(root)
    counts: dict[int, int] = {}
    for image, label in zip(images.cpu(), labels.tolist()):
        i = counts.get(label, 0)
        counts[label] = i + 1
        folder = root / f"new{label:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        array = image.permute(1, 2, 0).numpy()
        Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(folder / f"class{label:03d}_id{i:03d}.png")
    return root


def miniature_release(folder: str | Path, preset_name: str = "smoke", ipc: int = 2, cache_dir: str | None = None,
                      log=print) -> tuple[Path, Path]:
    """A released set in miniature, so the notebook runs anywhere: `ipc` real training images per class of
    the preset's dataset, written as an official image tree, and the preset's teacher (trained once, then
    cached) as its checkpoint. Returns (image tree, teacher checkpoint)."""
    from .config import preset
    from .pipeline import Workspace
    from .recover import real_subset

    cfg = preset(preset_name, **({"cache_dir": cache_dir} if cache_dir else {}))
    ws = Workspace(cfg, progress=False, log=log)
    ws.teacher()
    checkpoint = ws.cache.folder("teacher", cfg.data, cfg.squeeze) / "teacher.pt"
    d = real_subset(ws.train, ipc, seed=0)
    return write_official_tree(Path(folder) / "syn_data", d.images, d.labels), checkpoint


def evaluate_released(images: str | Path, labels: str | Path | None = None, teacher: str | Path | None = None,
                      arch: str | None = None, preset_name: str = "smoke", method: str | None = None,
                      overrides: dict | None = None, progress: bool = True) -> dict:
    """`cda evaluate --images ...` from Python: train a student of the preset's (or `method`'s) recipe on a
    released set and test it on the preset's test set; top-1/top-5 (%) and seconds."""
    from .config import preset
    from .data import info_for, load_split
    from .student import evaluate

    cfg = preset(preset_name, **(overrides or {}))
    info = info_for(cfg.data)
    e = cfg.eval_for(method) if method else cfg.eval
    d, e, model, stored = released_inputs(images, info, e, labels, teacher, arch, cfg.device, progress)
    metrics = evaluate(d, load_split(cfg.data, train=False), e, model, stored, cfg.device, progress,
                       speed=cfg.speeds.student)
    return {"dataset": info.name, "student": e.arch, "labels": e.labels, "images": len(d.images), **metrics}


def paper_number(table: str, dataset: str, ipc: int, method: str, student: str,
                 folder: str | Path | None = None) -> dict:
    """The paper's reported top-1 for one cell, with its table and source (results/paper/<table>.csv)."""
    from .paths import paper_file, read_paper

    path = paper_file(table, folder)
    df = read_paper(table, folder)
    row = df[(df.dataset == dataset) & (df.ipc == ipc) & (df.method == method) & (df.student == student)]
    if row.empty:
        raise KeyError(f"{path} has no row for {dataset}, IPC {ipc}, {method}, {student}")
    r = row.iloc[0]
    return {"paper": r.paper, "table": r.table, "source": r.source, "dataset": dataset, "ipc": ipc,
            "method": method, "student": student, "top1": float(r.top1)}
