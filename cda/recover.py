"""Recover: synthesize images from noise by matching the teacher's BatchNorm statistics (SRe2L),
optionally under CDA's crop curriculum.

Images are optimized in *groups*: a group holds one image per class for a block of classes and one
IPC index (the official code's batch). Several groups can share a forward pass; the BatchNorm
statistics, the loss, the random initialization and the augmentation draws stay per group, so the
result is the same as optimizing each group alone.

Under torchrun, each rank optimizes a disjoint share of the batches of groups (`rank`, `world_size`)
and the ranks then combine their images; as every group has its own seed, the images are
bit-identical to a single-process run with the same batching.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import ViewParams, apply_views, sample_views
from .cache import load_progress, load_torch, save_progress, save_torch, write_json
from .config import CurriculumConfig, RecoverConfig, config_hash, to_dict
from .data import DatasetInfo
from .models import bn_layers
from .training import NonFiniteLossError, autocast, resolve_device


def crop_lower_bound(cur: CurriculumConfig, it: int, total: int) -> float:
    """RandomResizedCrop's lower scale bound at iteration `it` of `total` (papers.md 6.2).

    Before the milestone the bound falls from `start_scale` to `end_scale` (step: stays at
    `start_scale`); from the milestone on it is `end_scale`. `reverse` mirrors the schedule in time.
    """
    if cur.reverse:
        it = total - 1 - it
    if cur.schedule == "none":
        return cur.end_scale
    horizon = cur.milestone * total
    if it >= horizon:
        return cur.end_scale
    frac = it / horizon
    span = cur.start_scale - cur.end_scale
    if cur.schedule == "step":
        return cur.start_scale
    if cur.schedule == "linear":
        return cur.end_scale + span * (1 - frac)
    return cur.end_scale + span * (1 + math.cos(math.pi * frac)) / 2  # cosine


class BNStatsLoss:
    """Forward hooks that measure, per group, how far a batch's BatchNorm input statistics are from
    the layer's running statistics: ||mu - mu_run||_2 + ||var - var_run||_2 (biased variance), summed
    over layers, the first layer weighted by `first_multiplier`."""

    def __init__(self, model: nn.Module, first_multiplier: float = 10.0):
        self.layers = bn_layers(model)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no BatchNorm2d layer: recovery matches BatchNorm "
                             f"statistics, so the teacher needs them (e.g. convnet3, resnet18)")
        self.weights = [first_multiplier] + [1.0] * (len(self.layers) - 1)
        self.group_size = 1
        self.terms: list[torch.Tensor] = []
        self.handles = [layer.register_forward_hook(self._hook) for layer in self.layers]

    def _hook(self, module: nn.BatchNorm2d, inputs, output):
        x = inputs[0].float()
        n, c = x.shape[:2]
        xg = x.reshape(n // self.group_size, self.group_size, c, -1)
        mean = xg.mean(dim=(1, 3))
        # E[x^2] - mean^2 in fp32: on the CPU var() over these strided dims was a fifth of recovery's time,
        # and this is twice as fast (BN inputs are O(1), so the cancellation costs ~1e-7).
        var = (xg * xg).mean(dim=(1, 3)) - mean * mean
        self.terms.append(torch.linalg.vector_norm(mean - module.running_mean, dim=1)
                          + torch.linalg.vector_norm(var - module.running_var, dim=1))

    def take(self) -> torch.Tensor:
        """The per-group loss [groups] of the last forward pass."""
        if len(self.terms) != len(self.layers):
            raise RuntimeError(f"expected {len(self.layers)} BatchNorm terms, got {len(self.terms)}")
        total = sum(w * t for w, t in zip(self.weights, self.terms))
        self.terms = []
        return total

    def remove(self):
        for h in self.handles:
            h.remove()


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
        meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").is_file() else {}
        return Distilled(blob["images"], blob["labels"], meta,
                         {k: v.tolist() for k, v in blob.get("history", {}).items()},
                         {int(k): v for k, v in blob.get("snapshots", {}).items()})


def _groups(num_classes: int, cfg: RecoverConfig) -> list[tuple[int, np.ndarray]]:
    """(ipc index, classes) of every group, IPC-major as the official loop."""
    blocks = [np.arange(s, min(s + cfg.classes_per_group, num_classes))
              for s in range(0, num_classes, cfg.classes_per_group)]
    return [(ipc_id, block) for ipc_id in range(cfg.ipc) for block in blocks]


def _steps(groups, per_step: int) -> list[list]:
    """Batch consecutive groups of equal size, at most `per_step` (0: unlimited) at a time."""
    steps: list[list] = []
    for g in groups:
        if steps and len(steps[-1][0][1]) == len(g[1]) and (per_step == 0 or len(steps[-1]) < per_step):
            steps[-1].append(g)
        else:
            steps.append([g])
    return steps


def _group_seed(seed: int, ipc_id: int, first_class: int) -> list[int]:
    return [seed, ipc_id, first_class]


PROGRESS_FILE = "recover_progress.pt"


def group_views(rngs: list[np.random.Generator], group_size: int, size: int, cfg: RecoverConfig,
                it: int) -> ViewParams:
    """One view per group, shared by its images (the official whole-batch transform), with the crop
    scale of iteration `it` under the curriculum."""
    scale = (crop_lower_bound(cfg.curriculum, it, cfg.iterations), 1.0) if cfg.crop else None
    views = [sample_views(r, 1, size, scale, cfg.flip, cfg.jitter) for r in rngs]
    return ViewParams(np.repeat(np.concatenate([v.boxes for v in views]), group_size, axis=0),
                      np.repeat(np.concatenate([v.flips for v in views]), group_size),
                      np.repeat(np.concatenate([v.shifts for v in views]), group_size, axis=0))


def shard_steps(groups, per_step: int, rank: int, world_size: int) -> list[list]:
    """The batches of groups one rank optimizes: round-robin over the single-process batches, so
    every group sees the same batch (hence the same floating-point sums) as in a single process.
    Where there are fewer batches than ranks (groups_per_step=0 puts all groups in one), the groups
    are re-batched into at most `world_size` batches; the images then agree with a single process
    only up to float rounding (at most 1 gray level in the tests)."""
    steps = _steps(groups, per_step)
    if world_size > 1 and len(steps) < world_size:
        steps = _steps(groups, max(1, math.ceil(len(groups) / world_size)))
    from .distributed import shard
    return shard(steps, rank, world_size)


def recover(teacher: nn.Module, info: DatasetInfo, cfg: RecoverConfig, device: str = "cpu",
            progress: bool = True, snapshot_at: tuple[int, ...] = (), desc: str = "recover",
            progress_dir: str | Path | None = None, checkpoint_every: int = 100,
            rank: int = 0, world_size: int = 1) -> Distilled:
    """Synthesize `cfg.ipc` images per class from Gaussian noise. Deterministic for `cfg.seed`.

    With `progress_dir`, the state (images, optimizer, random streams) is saved every
    `checkpoint_every` iterations and after each batch of groups; the same call after an
    interruption continues from there and gives the same images as an uninterrupted run.

    With `world_size` > 1 (torchrun; see cda.distributed), this process optimizes only its share of
    the groups, then all ranks exchange their images, so every rank returns the whole set.
    """
    if world_size > 1:
        from . import distributed

        if distributed.world_size() != world_size:
            raise RuntimeError(f"recover(world_size={world_size}) needs an initialized process group of that "
                               f"size (cda.distributed.init_from_env under torchrun)")
    dev = resolve_device(device)
    if cfg.channels_last:  # a copy: the caller's teacher keeps its layout (and its exact logits)
        teacher = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
    teacher = teacher.to(dev).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    lo, hi = info.pixel_bounds(dev)
    size, total = info.image_size, cfg.iterations
    steps = shard_steps(_groups(info.num_classes, cfg), cfg.groups_per_step, rank, world_size)
    n = cfg.ipc * info.num_classes
    state = {"step": 0, "iteration": 0, "x": None, "adam": None, "rngs": None,
             "images": torch.zeros(n, info.channels, size, size, dtype=torch.uint8),
             "labels": torch.zeros(n, dtype=torch.long), "loss_sum": torch.zeros(total),
             "ce_sum": torch.zeros(total), "seconds": 0.0,
             "snapshots": {str(it): torch.zeros(n, info.channels, size, size, dtype=torch.uint8)
                           for it in snapshot_at}}
    progress_file = PROGRESS_FILE if world_size == 1 else f"recover_progress.rank{rank}of{world_size}.pt"
    path = Path(progress_dir) / progress_file if progress_dir is not None else None
    key = config_hash(cfg, info.name, sorted(snapshot_at), *([rank, world_size] if world_size > 1 else []))
    if path is not None:
        state = load_progress(path, key) or state
    loss_sum, ce_sum = state["loss_sum"].to(dev), state["ce_sum"].to(dev)
    hooks = BNStatsLoss(teacher, cfg.first_bn_multiplier)
    start = time.perf_counter() - state["seconds"]

    def checkpoint(step: int, iteration: int, x=None, optimizer=None, rngs=None):
        if path is not None:
            state.update(step=step, iteration=iteration, x=None if x is None else x.detach().cpu(),
                         adam=None if optimizer is None else optimizer.state_dict(),
                         rngs=None if rngs is None else json.dumps([r.bit_generator.state for r in rngs]),
                         loss_sum=loss_sum.cpu(), ce_sum=ce_sum.cpu(), seconds=time.perf_counter() - start)
            save_progress(path, key, state)

    bar = tqdm(total=len(steps) * total, initial=state["step"] * total + state["iteration"], desc=desc,
               disable=not progress, leave=False)
    try:
        for s_index in range(state["step"], len(steps)):
            step_groups = steps[s_index]
            gsize = len(step_groups[0][1])
            hooks.group_size = gsize
            y = torch.as_tensor(np.concatenate([b for _, b in step_groups]), device=dev)
            rngs = [np.random.default_rng(_group_seed(cfg.seed, i, int(b[0]))) for i, b in step_groups]
            if state["x"] is None:
                x = torch.cat([_init_noise(cfg.seed, i, int(b[0]), gsize, info) for i, b in step_groups])
            else:  # resuming inside this step
                x = state["x"]
                for r, saved in zip(rngs, json.loads(state["rngs"])):
                    r.bit_generator.state = saved
            x = x.to(dev).requires_grad_(True)
            optimizer = torch.optim.Adam([x], lr=cfg.lr, betas=cfg.betas, eps=1e-8)
            if state["adam"] is not None:
                optimizer.load_state_dict(state["adam"])
            for it in range(state["iteration"], total):
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * it / total))
                params = group_views(rngs, gsize, size, cfg, it)
                with autocast(dev, cfg.amp, cpu=cfg.amp_cpu):
                    logits = teacher(apply_views(x, params).contiguous(memory_format=layout))
                ce = F.cross_entropy(logits.float(), y, reduction="sum") / gsize
                loss = ce + cfg.r_bn * hooks.take().sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    x.data = torch.maximum(torch.minimum(x, hi), lo)
                loss_sum[it] += loss.detach()
                ce_sum[it] += ce.detach()
                if str(it + 1) in state["snapshots"]:
                    _place(state["snapshots"][str(it + 1)], info.to_uint8(x.detach()).cpu(), step_groups,
                           info.num_classes)
                bar.update()
                checkpoint_due = checkpoint_every and (it + 1) % checkpoint_every == 0 and it + 1 < total
                if (it + 1) % 100 == 0 or it + 1 == total or (checkpoint_due and path is not None):
                    value = loss.item()  # one sync per 100 iterations, and before saving a checkpoint
                    if not math.isfinite(value):
                        raise NonFiniteLossError(
                            f"non-finite recovery loss at iteration {it + 1}; lower the lr (RecoverConfig.lr="
                            f"{cfg.lr}) or r_bn ({cfg.r_bn})" + (f". Progress up to the last checkpoint is kept "
                                                                  f"in {path}" if path else ""))
                    bar.set_postfix(loss=f"{value / len(step_groups):.3f}")
                if checkpoint_due:  # never checkpoint a diverged state: the check above ran first
                    checkpoint(s_index, it + 1, x, optimizer, rngs)
            _place(state["images"], info.to_uint8(x.detach()).cpu(), step_groups, info.num_classes)
            _place(state["labels"], y.cpu(), step_groups, info.num_classes)
            state["iteration"], state["adam"] = 0, None
            checkpoint(s_index + 1, 0)
    finally:
        bar.close()
        hooks.remove()
    if world_size > 1:  # each rank filled its own rows (zeros elsewhere): a sum assembles the set
        from .distributed import sum_disjoint

        for name in ("images", "labels"):
            state[name] = sum_disjoint(state[name])
        state["snapshots"] = {k: sum_disjoint(v) for k, v in state["snapshots"].items()}
        loss_sum, ce_sum = sum_disjoint(loss_sum), sum_disjoint(ce_sum)
    n_groups = len(_groups(info.num_classes, cfg))
    history = {"loss": (loss_sum / n_groups).cpu().tolist(), "ce": (ce_sum / n_groups).cpu().tolist()}
    meta = {"method": "cda" if cfg.curriculum.schedule != "none" else "sre2l", "recover": to_dict(cfg),
            "dataset": info.name, "seconds": time.perf_counter() - start, "device": str(dev)}
    if world_size > 1:
        meta["world_size"] = world_size
    return Distilled(state["images"], state["labels"], meta, history,
                     {int(k): v for k, v in state["snapshots"].items()})


def _init_noise(seed: int, ipc_id: int, first_class: int, n: int, info: DatasetInfo) -> torch.Tensor:
    """A group's Gaussian initialization, from its own generator (the same on every device)."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(_group_seed(seed, ipc_id, first_class))
                                            .generate_state(1)[0]))
    return torch.randn(n, info.channels, info.image_size, info.image_size, generator=gen)


def _place(out: torch.Tensor, values: torch.Tensor, step_groups, num_classes: int) -> None:
    """Write a step's rows into the class-major output (all of class 0's images first)."""
    row = 0
    for ipc_id, block in step_groups:
        index = torch.as_tensor(block) * (len(out) // num_classes) + ipc_id
        out[index] = values[row:row + len(block)]
        row += len(block)


def real_subset(split, ipc: int, seed: int = 0) -> Distilled:
    """IPC random real training images per class: the honest baseline for soft-label methods."""
    from .data import stratified_indices

    counts = torch.bincount(split.labels, minlength=split.info.num_classes)
    if int(counts.min()) < ipc:
        raise ValueError(f"IPC {ipc} exceeds the smallest class ({int(counts.min())} training images)")
    idx = stratified_indices(split.labels, ipc, seed)
    return Distilled(split.take(idx), split.labels[torch.as_tensor(idx)].clone(),
                     {"method": "random", "ipc": ipc, "seed": seed, "dataset": split.info.name})
