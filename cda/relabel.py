"""Relabel: the teacher's soft labels on the augmented views a student sees.

The views of every epoch come from an *epoch plan*, drawn from a generator seeded with
(AugConfig.seed, epoch): per batch, the image indices, each image's crop box and flip, and the batch's
MixUp/CutMix parameters. The online mode runs the teacher on the plan's views during training; the
stored mode (FKD-style) runs it once ahead of time and keeps, per epoch, the plan and the logits in
fp16. Both give a student the same labels for the same seed.

With `RelabelConfig.topk > 0` the stored mode is *compact* (cda.labels_compact): per view only the
top-k logits, quantized, and a fill value for the other classes (topk = C: all logits, quantized);
the plan is regenerated from the AugConfig instead of stored. With `RelabelConfig.label_epochs = n`
only n epochs are labelled, and training epoch e reuses epoch e mod n.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import labels_compact
from .augment import MixParams, ViewParams, apply_mix, apply_views, sample_mix, sample_views
from .cache import ArtifactError, load_torch, read_json, save_torch, write_json
from .config import AugConfig, RelabelConfig, from_dict, to_dict
from .data import DatasetInfo
from .training import autocast, resolve_device


@dataclass
class BatchPlan:
    indices: np.ndarray  # [B] into the distilled set
    views: ViewParams
    mix: MixParams | None


def epoch_plan(aug: AugConfig, n: int, size: int, epoch: int) -> list[BatchPlan]:
    """The batches of one epoch over a distilled set of `n` images of `size` pixels."""
    rng = np.random.default_rng([aug.seed, epoch])
    order = rng.permutation(n)
    batch = min(aug.batch_size, n)
    plans = []
    for start in range(0, n, batch):
        idx = order[start:start + batch]
        views = sample_views(rng, len(idx), size, aug.crop_scale, aug.flip)
        plans.append(BatchPlan(idx, views, sample_mix(rng, len(idx), size, aug.mix, aug.mix_alpha, aug.mix_prob)))
    return plans


# A distilled set larger than this stays in host memory and streams to the device batch by batch.
RESIDENT_BYTES = 2 << 30


def resident(images: torch.Tensor, device: torch.device, limit: int = RESIDENT_BYTES) -> torch.Tensor:
    """The uint8 images where batches are gathered from: on the device when they fit in `limit`
    bytes, else in (pinned, on CUDA) host memory, so that ImageNet-scale sets never move whole."""
    if images.device == device or images.nbytes <= limit:
        return images.to(device)
    return images.pin_memory() if device.type == "cuda" else images


def batch_inputs(images: torch.Tensor, plan: BatchPlan, info: DatasetInfo,
                 device: torch.device | None = None) -> torch.Tensor:
    """The normalized, cropped, flipped and mixed batch of a plan, from uint8 images (on the device,
    or on the host, when only the batch moves to `device`)."""
    x = images[torch.as_tensor(plan.indices, device=images.device)]
    x = info.normalize(x.to(device or images.device, non_blocking=True))
    return apply_mix(apply_views(x, plan.views), plan.mix)


# ---------------------------------------------------------------------------------------------
# Stored labels: one file per epoch with the plan and the logits.

def _pack(plans: list[BatchPlan], logits: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    mixed = [p.mix is not None for p in plans]
    return {
        "indices": torch.as_tensor(np.concatenate([p.indices for p in plans])),
        "boxes": torch.as_tensor(np.concatenate([p.views.boxes for p in plans])),
        "flips": torch.as_tensor(np.concatenate([p.views.flips for p in plans])),
        "batch_sizes": torch.as_tensor([len(p.indices) for p in plans]),
        "mixed": torch.as_tensor(mixed),
        "mix_perm": torch.as_tensor(np.concatenate([p.mix.perm if p.mix else np.arange(len(p.indices))
                                                    for p in plans])),
        "mix_lam": torch.as_tensor([p.mix.lam if p.mix else 1.0 for p in plans], dtype=torch.float64),
        "mix_box": torch.as_tensor([list(p.mix.box) if p.mix and p.mix.box else [-1, -1, -1, -1] for p in plans]),
        "logits": torch.cat(logits),
    }


def _unpack(blob: dict[str, torch.Tensor]) -> list[tuple[BatchPlan, torch.Tensor]]:
    out, start = [], 0
    for b, size in enumerate(blob["batch_sizes"].tolist()):
        sl = slice(start, start + size)
        mix = None
        if bool(blob["mixed"][b]):
            box = tuple(int(v) for v in blob["mix_box"][b])
            mix = MixParams(blob["mix_perm"][sl].numpy(), float(blob["mix_lam"][b]), None if box[0] < 0 else box)
        views = ViewParams(blob["boxes"][sl].numpy(), blob["flips"][sl].numpy(), np.zeros((size, 2), np.int64))
        out.append((BatchPlan(blob["indices"][sl].numpy(), views, mix), blob["logits"][sl]))
        start += size
    return out


class StoredLabels:
    """A folder of FKD-style labels: `meta.json` and `epoch_XXXX.pt` files."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise ArtifactError(f"{self.folder} holds no stored labels (no meta.json); run `cda relabel` first")
        self.meta = read_json(meta_path, what="stored labels' metadata")
        self.cfg: RelabelConfig = from_dict(RelabelConfig, self.meta["relabel"])

    def epoch(self, e: int) -> list[tuple[BatchPlan, torch.Tensor]]:
        """The batches (plan, logits) of training epoch `e`."""
        if e >= self.cfg.aug.epochs:
            raise ArtifactError(f"labels in {self.folder} cover {self.cfg.aug.epochs} epochs; epoch {e} was asked for")
        e %= self.cfg.stored_epochs
        path = self.folder / f"epoch_{e:04d}.pt"
        blob = load_torch(path, what="soft-label file")
        if self.cfg.topk == 0:
            return _unpack(blob)
        return _unpack_compact(blob, self.cfg, self.meta, e, path)

    def check_fits(self, aug: AugConfig, n_images: int) -> None:
        """Training must use the batches the labels were made for."""
        mine = self.cfg.aug
        if (mine.batch_size, mine.seed, mine.crop_scale, mine.flip, mine.mix) != \
                (aug.batch_size, aug.seed, aug.crop_scale, aug.flip, aug.mix) or aug.epochs > mine.epochs:
            raise ArtifactError(f"stored labels in {self.folder} were made for {to_dict(mine)}, which does not fit "
                                f"the student's {to_dict(aug)} (same batch size, seed and augmentation, and no "
                                f"more epochs); relabel with the student's AugConfig")
        if self.meta["num_images"] != n_images:
            raise ArtifactError(f"labels in {self.folder} are for {self.meta['num_images']} images, not {n_images}")

    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("epoch_*.pt"))

    def bytes_per_view(self) -> float:
        """Measured bytes on disk per image and training epoch (container overhead included)."""
        return self.nbytes() / (self.meta["num_images"] * self.cfg.aug.epochs)


def _pack_compact(plans: list[BatchPlan], logits: list[torch.Tensor], cfg: RelabelConfig) -> dict:
    z = torch.cat(logits)
    blob = labels_compact.compress(z, cfg.topk, cfg.quant, cfg.fill_temperature)
    return {"rows": labels_compact.to_rows(blob, z.shape[1], cfg.topk, cfg.quant),
            "plan_digest": labels_compact.plan_digest(plans)}


def _unpack_compact(blob: dict, cfg: RelabelConfig, meta: dict, e: int, path: Path) -> list[tuple[BatchPlan, torch.Tensor]]:
    plans = epoch_plan(cfg.aug, meta["num_images"], meta["image_size"], e)
    if labels_compact.plan_digest(plans) != blob["plan_digest"]:
        raise ArtifactError(f"{path}: the regenerated augmentation plan differs from the one the labels were made "
                            f"for (another numpy version?); relabel, or use full labels (RelabelConfig.topk=0)")
    c = meta["num_classes"]
    logits = labels_compact.decompress(labels_compact.from_rows(blob["rows"], c, cfg.topk, cfg.quant), c).half()
    out, start = [], 0
    for plan in plans:
        out.append((plan, logits[start:start + len(plan.indices)]))
        start += len(plan.indices)
    return out


@torch.no_grad()
def relabel(teacher: nn.Module, images: torch.Tensor, info: DatasetInfo, cfg: RelabelConfig, folder: str | Path,
            device: str = "cpu", progress: bool = True, rank: int = 0, world_size: int = 1) -> StoredLabels:
    """Run the teacher over every planned batch of every epoch and store plans and logits.

    Epoch files already present (from an interrupted run with the same config) are kept.
    With `world_size` > 1 (torchrun), this process writes epochs rank, rank + world_size, ... into
    the shared folder and waits for the others; epochs are independent, so the files are the same
    as a single process writes.
    """
    dev = resolve_device(device)
    folder = Path(folder)
    teacher = teacher.to(dev).eval()
    images = resident(images, dev)
    dtype = getattr(torch, cfg.dtype)
    meta = {"relabel": to_dict(cfg), "num_images": len(images), "num_classes": info.num_classes,
            "dataset": info.name}
    if cfg.topk:
        if cfg.topk > info.num_classes:
            raise ValueError(f"RelabelConfig.topk={cfg.topk}: {info.name} has only {info.num_classes} classes "
                             f"(topk={info.num_classes} keeps all, quantized; topk=0 stores full logits and plans)")
        meta["image_size"] = info.image_size  # to regenerate the plans
    if (folder / "meta.json").is_file():
        old = read_json(folder / "meta.json", what="stored labels' metadata")
        old["relabel"] = to_dict(from_dict(RelabelConfig, old["relabel"]))  # fields added since: defaults
        if old != meta:
            raise ArtifactError(f"{folder} holds labels made with another config; use a new folder or delete it")
    write_json(meta, folder / "meta.json")
    start = time.perf_counter()
    for e in tqdm(range(rank, cfg.stored_epochs, world_size), desc="relabel", disable=not progress, leave=False):
        path = folder / f"epoch_{e:04d}.pt"
        if path.is_file():
            continue
        plans = epoch_plan(cfg.aug, len(images), info.image_size, e)
        logits = []
        for plan in plans:
            with autocast(dev, cfg.amp):
                logits.append(teacher(batch_inputs(images, plan, info, dev)).to(dtype).cpu())
        save_torch(_pack_compact(plans, logits, cfg) if cfg.topk else _pack(plans, logits), path)
    if world_size > 1:
        from .distributed import barrier

        barrier()  # every rank's epochs are on disk before anyone reads them
    labels = StoredLabels(folder)
    labels.meta["seconds"] = time.perf_counter() - start
    return labels
