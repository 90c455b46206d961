"""Recover: synthesize images from noise by matching the teacher's BatchNorm statistics (SRe2L),
optionally under CDA's crop curriculum.

Images are optimized in *groups*: a group holds one image per class for a block of classes and one
IPC index (the official code's batch). Several groups can share a forward pass; the BatchNorm
statistics, the loss, the random initialization and the augmentation draws stay per group, so the
result is the same as optimizing each group alone. With `RecoverConfig.bn_groups` = k, the
BatchNorm statistics are instead matched over k consecutive groups at once (k images per class on
a small dataset), while the loss, the initialization and the views stay per group.

Under torchrun, each rank optimizes a disjoint share of the batches of groups (`rank`, `world_size`)
and the ranks then combine their images; as every group has its own seed, the images are
bit-identical to a single-process run with the same batching.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import ViewParams, apply_views, sample_views
from .cache import load_progress, save_progress
from .checkpoint import Resume
from .config import CurriculumConfig, RecoverConfig, config_hash, to_dict
from .data import DatasetInfo, real_subset  # noqa: F401 (real_subset: re-exported for old imports)
from .distilled import Distilled  # noqa: F401 (re-exported for old imports)
from .models import bn_layers
from .runtime import PLAIN, Speed
from .training import NonFiniteLossError, autocast, cosine, resolve_device


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
    return cur.end_scale + span * cosine(frac, 1)


class _GroupMoments(torch.autograd.Function):
    """Per-group channel mean and mean square [groups, C] (fp32) of x [n, C, H, W], groups of
    `group_size` consecutive rows. One pass forward and one fused pass backward: the autograd graph of
    mean(x) and mean(x * x) took about eight passes over each BN input and was most of recovery's time."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group_size: int):
        n, c, h, w = x.shape
        xg = x.view(n // group_size, group_size, c, h, w)  # a view in either memory layout
        count = group_size * h * w
        mean = torch.sum(xg, dim=(1, 3, 4), dtype=torch.float32) / count
        second = torch.linalg.vector_norm(xg, 2, dim=(1, 3, 4), dtype=torch.float32).square() / count
        ctx.save_for_backward(x)
        ctx.group_size = group_size
        return mean, second

    @staticmethod
    def backward(ctx, grad_mean: torch.Tensor, grad_second: torch.Tensor):
        (x,) = ctx.saved_tensors
        n, c, h, w = x.shape
        g = ctx.group_size
        count = g * h * w
        shape = (n // g, 1, c, 1, 1)
        a = (grad_mean / count).to(x.dtype).view(shape)
        b = (grad_second * (2 / count)).to(x.dtype).view(shape)
        return torch.addcmul(a, x.view(n // g, g, c, h, w), b).view(n, c, h, w), None


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
        x, g = inputs[0], self.group_size
        whole = len(x) - len(x) % g
        if whole == len(x):
            mean, second = _GroupMoments.apply(x, g)
        else:  # a last, smaller batch (bn_groups that do not divide the step's groups)
            parts = [_GroupMoments.apply(x[:whole], g)] if whole else []
            parts.append(_GroupMoments.apply(x[whole:], len(x) - whole))
            mean, second = (torch.cat(t) for t in zip(*parts))
        var = second - mean * mean  # biased; BN inputs are O(1), so the cancellation costs ~1e-7 in fp32
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


def _groups(num_classes: int, cfg: RecoverConfig) -> list[tuple[int, np.ndarray]]:
    """(ipc index, classes) of every group, IPC-major as the official loop."""
    blocks = [np.arange(s, min(s + cfg.classes_per_group, num_classes))
              for s in range(0, num_classes, cfg.classes_per_group)]
    return [(ipc_id, block) for ipc_id in range(cfg.ipc) for block in blocks]


def _steps(groups, per_step: int, bn_groups: int = 1) -> list[list]:
    """Batch consecutive groups of equal size, at most `per_step` (0: unlimited) at a time, rounded
    up to whole BatchNorm batches of `bn_groups`."""
    if per_step:
        per_step = -(-per_step // bn_groups) * bn_groups
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
TERMS = ("loss", "ce", "bn")  # recorded per iteration for every synthesis; extra terms follow


def step_name(step_groups) -> str:
    """A finished step's file name: the groups it optimized together (IPC slot and first class).
    The same groups in the same batch give the same images, whichever IPC or run asked for them.
    A step of many groups (every slot of IPC 50 in one batch) is named by its first and last group
    and a digest of them all: file names stop at 255 bytes."""
    parts = [f"i{i}c{int(b[0])}n{len(b)}" for i, b in step_groups]
    name = "_".join(parts)
    if len(name) > 120:
        name = f"{parts[0]}-to-{parts[-1]}-{len(parts)}groups-{hashlib.sha1(name.encode()).hexdigest()[:12]}"
    return f"step-{name}.pt"


def group_views(rngs: list[np.random.Generator], group_size: int, size: int, cfg: RecoverConfig,
                it: int) -> ViewParams:
    """One view per group, shared by its images (the official whole-batch transform), with the crop
    scale of iteration `it` under the curriculum."""
    scale = (crop_lower_bound(cfg.curriculum, it, cfg.iterations), 1.0) if cfg.crop else None
    views = [sample_views(r, 1, size, scale, cfg.flip, cfg.jitter) for r in rngs]
    return ViewParams(np.repeat(np.concatenate([v.boxes for v in views]), group_size, axis=0),
                      np.repeat(np.concatenate([v.flips for v in views]), group_size),
                      np.repeat(np.concatenate([v.shifts for v in views]), group_size, axis=0))


def shard_steps(groups, per_step: int, rank: int, world_size: int, bn_groups: int = 1) -> list[list]:
    """The batches of groups one rank optimizes: round-robin over the single-process batches, so
    every group sees the same batch (hence the same floating-point sums) as in a single process.
    Where there are fewer batches than ranks (groups_per_step=0 puts all groups in one), the groups
    are re-batched into at most `world_size` batches; the images then agree with a single process
    only up to float rounding (at most 1 gray level in the tests)."""
    steps = _steps(groups, per_step, bn_groups)
    if world_size > 1 and len(steps) < world_size:
        steps = _steps(groups, max(1, math.ceil(len(groups) / world_size)), bn_groups)
    from .distributed import shard
    return shard(steps, rank, world_size)


# An objective's extra loss terms: (view, init_view, teacher_logits, y, gsize) -> {name: term}.
ExtraTerms = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int], dict]


@dataclass
class Synthesized:
    """What `synthesize` returns: uint8 images of IPC slots [start, stop) in class-major order (all of
    class 0's slots first), per-iteration sums of every loss term over groups, and snapshots."""

    images: torch.Tensor
    sums: dict[str, torch.Tensor]
    snapshots: dict[int, torch.Tensor]
    seconds: float
    groups: int  # groups in the slot range (over every rank)

    def history(self) -> dict[str, list[float]]:
        """Each loss term's per-iteration mean over the groups (for convergence plots)."""
        return {t: (v / self.groups).tolist() for t, v in self.sums.items()}


def synthesize(teacher: nn.Module, info: DatasetInfo, cfg: RecoverConfig, slots: tuple[int, int],
               init: Callable[[list], torch.Tensor], extra: ExtraTerms | None = None,
               weights: dict[str, float] | None = None, device: str = "cpu", progress: bool = True,
               snapshot_at: tuple[int, ...] = (), desc: str = "recover", progress_dir: str | Path | None = None,
               store_dir: str | Path | None = None, key: str = "", checkpoint_every: int = 0,
               checkpoint_seconds: float = 300.0, rank: int = 0, world_size: int = 1,
               speed: Speed = PLAIN) -> Synthesized:
    """The one synthesis loop (SRe2L, CDA and every CUDD stage): optimize the groups of IPC slots
    `slots` = [start, stop) against the teacher's CE + r_bn * BatchNorm loss, plus the weighted
    `extra` terms, with Adam under a cosine lr, one view per group per iteration (the crop
    curriculum of `cfg`), clamped to the valid pixel range.

    `init(step_groups)` gives a step's normalized starting images (one row per class of each group).
    Checkpoints are bounded by the step in flight: with `progress_dir`, the live step (images,
    optimizer, random streams, its loss sums) is saved every `checkpoint_every` iterations (0: at
    the first 100-iteration mark after `checkpoint_seconds`, so that fast GPU steps are not slowed
    by writes; at ImageNet shape a checkpoint is about 180 MB), and each
    finished step is written once, to its own file in `store_dir` (default `progress_dir`), named by
    its groups; a step already there is loaded, not recomputed, so an interrupted run resumes, and a
    run at a larger IPC reuses the slots a smaller one made with the same batching. `key` (with
    the config) identifies the files; files of another key are refused.
    """
    dev = resolve_device(device)
    if speed.channels_last:  # a copy: the caller's teacher keeps its layout (and its exact logits)
        teacher = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
    teacher = teacher.to(dev).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    layout = torch.channels_last if speed.channels_last else torch.contiguous_format
    weights = weights or {}
    lo, hi = info.pixel_bounds(dev)
    size, total = info.image_size, cfg.iterations
    start_slot, stop_slot = slots
    width = stop_slot - start_slot
    groups = [(i, b) for i, b in _groups(info.num_classes, replace(cfg, ipc=stop_slot)) if i >= start_slot]
    steps = shard_steps(groups, cfg.groups_per_step, rank, world_size, cfg.bn_groups)
    n = width * info.num_classes
    images = torch.zeros(n, info.channels, size, size, dtype=torch.uint8)
    snapshots = {it: torch.zeros_like(images) for it in snapshot_at}
    sums: dict[str, torch.Tensor] = {}
    # `key` names what made the files; the slot range and batching are in each step's file name.
    file_key = config_hash(speed.merged(replace(cfg, ipc=1, groups_per_step=0)), info.name, sorted(snapshot_at), key)
    store = Path(store_dir or progress_dir) if (store_dir or progress_dir) is not None else None
    live = (Path(progress_dir) / (PROGRESS_FILE if world_size == 1 else f"recover_progress.rank{rank}of{world_size}.pt")
            if progress_dir is not None else None)
    resume = Resume(live, file_key)  # this rank's own file
    state = resume.saved() or {}
    hooks = BNStatsLoss(teacher, cfg.first_bn_multiplier)
    begin = saved_at = time.perf_counter()
    bar = tqdm(total=len(steps) * total, desc=desc, disable=not progress, leave=False)

    def add(step_sums: dict[str, torch.Tensor]):
        for t, v in step_sums.items():
            sums[t] = sums[t] + v.cpu() if t in sums else v.cpu().clone()

    try:
        for step_groups in steps:
            name = step_name(step_groups)
            done = store / name if store is not None else None
            if done is not None and done.is_file():
                blob = load_progress(done, file_key)
                _place(images, blob["images"], step_groups, info.num_classes, start_slot)
                for it, rows in blob["snapshots"].items():
                    _place(snapshots[int(it)], rows, step_groups, info.num_classes, start_slot)
                add(blob["sums"])
                bar.update(total)
                continue
            gsize = len(step_groups[0][1])
            hooks.group_size = gsize * cfg.bn_groups  # the BN batch; the CE and views stay per group
            y = torch.as_tensor(np.concatenate([b for _, b in step_groups]), device=dev)
            rngs = [np.random.default_rng(_group_seed(cfg.seed, i, int(b[0]))) for i, b in step_groups]
            x0 = init(step_groups)
            x = x0.clone()  # x0 stays as it was: the extra terms compare with it
            resumed = state.get("step") == name
            if resumed:
                x = state["x"]
                for r, saved in zip(rngs, json.loads(state["rngs"])):
                    r.bit_generator.state = saved
            x0 = x0.to(dev) if extra is not None else None
            x = x.to(dev).requires_grad_(True)
            optimizer = torch.optim.Adam([x], lr=cfg.lr, betas=cfg.betas, eps=1e-8)
            step_sums = {t: torch.zeros(total, device=dev) for t in (*TERMS, *weights)}
            step_snaps: dict[int, torch.Tensor] = {}
            first = 0
            if resumed:
                optimizer.load_state_dict(state["adam"])
                step_sums = {t: v.to(dev) for t, v in state["sums"].items()}
                step_snaps, first = dict(state["snapshots"]), state["iteration"]
                bar.update(first)
            for it in range(first, total):
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * cosine(it, total)
                params = group_views(rngs, gsize, size, cfg, it)
                view = apply_views(x, params).contiguous(memory_format=layout)
                with autocast(dev, cfg.amp, cpu=speed.amp_cpu):
                    logits = teacher(view)
                terms = {"ce": F.cross_entropy(logits.float(), y, reduction="sum") / gsize, "bn": hooks.take().sum()}
                loss = terms["ce"] + cfg.r_bn * terms["bn"]
                if extra is not None:
                    more = extra(view, apply_views(x0, params), logits, y, gsize)
                    for t, w in weights.items():
                        loss = loss + w * more[t]
                    terms.update(more)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    x.data = torch.maximum(torch.minimum(x, hi), lo)
                for t, v in {"loss": loss, **terms}.items():
                    step_sums[t][it] += v.detach()
                if it + 1 in snapshots:
                    step_snaps[it + 1] = info.to_uint8(x.detach()).cpu()
                bar.update()
                due = live is not None and it + 1 < total and (
                    (it + 1) % checkpoint_every == 0 if checkpoint_every else
                    (it + 1) % 100 == 0 and time.perf_counter() - saved_at > checkpoint_seconds)
                if (it + 1) % 100 == 0 or it + 1 == total or due:
                    value = loss.item()  # one sync per 100 iterations, and before saving a checkpoint
                    if not math.isfinite(value):
                        raise NonFiniteLossError(
                            f"non-finite {desc} loss at iteration {it + 1}; lower the lr (RecoverConfig.lr="
                            f"{cfg.lr}) or r_bn ({cfg.r_bn})" + (" or the extra terms' weights" if weights else "")
                            + (f". Progress up to the last checkpoint is kept in {live}" if live else ""))
                    bar.set_postfix(loss=f"{value / len(step_groups):.3f}")
                if due:  # never checkpoint a diverged state: the check above ran first
                    saved_at = time.perf_counter()
                    resume.save({
                        "step": name, "iteration": it + 1, "x": x.detach().cpu(), "adam": optimizer.state_dict(),
                        "rngs": json.dumps([r.bit_generator.state for r in rngs]),
                        "sums": {t: v.cpu() for t, v in step_sums.items()}, "snapshots": step_snaps})
            rows = info.to_uint8(x.detach()).cpu()
            _place(images, rows, step_groups, info.num_classes, start_slot)
            for it, snap in step_snaps.items():
                _place(snapshots[it], snap, step_groups, info.num_classes, start_slot)
            add(step_sums)
            if done is not None:  # written once; the live state of this step is then obsolete
                save_progress(done, file_key, {"images": rows, "sums": {t: v.cpu() for t, v in step_sums.items()},
                                               "snapshots": {str(k): v for k, v in step_snaps.items()}})
            state = {}
            resume.finish()
    finally:
        bar.close()
        hooks.remove()
    for t in (*TERMS, *weights):
        sums.setdefault(t, torch.zeros(total))
    if world_size > 1:  # each rank filled its own rows (zeros elsewhere): a sum assembles the set
        from .distributed import sum_disjoint

        images = sum_disjoint(images)
        snapshots = {k: sum_disjoint(v) for k, v in snapshots.items()}
        sums = {t: sum_disjoint(v) for t, v in sums.items()}
    return Synthesized(images, sums, snapshots, time.perf_counter() - begin, len(groups))


def recover(teacher: nn.Module, info: DatasetInfo, cfg: RecoverConfig, device: str = "cpu",
            progress: bool = True, snapshot_at: tuple[int, ...] = (), desc: str = "recover",
            progress_dir: str | Path | None = None, checkpoint_every: int = 0,
            rank: int = 0, world_size: int = 1, store_dir: str | Path | None = None,
            speed: Speed = PLAIN) -> Distilled:
    """Synthesize `cfg.ipc` images per class from Gaussian noise (SRe2L; CDA with a crop curriculum).
    Deterministic for `cfg.seed`. `speed`: the runtime's layout and CPU precision (cda.runtime).

    With `progress_dir`, the same call after an interruption continues from the last checkpoint and
    gives the same images as an uninterrupted run; `store_dir` (default `progress_dir`) keeps the
    finished steps, so a folder shared between IPCs makes each slot once (see `synthesize`).

    With `world_size` > 1 (torchrun; see cda.distributed), this process optimizes only its share of
    the groups, then all ranks exchange their images, so every rank returns the whole set.
    """
    if world_size > 1:
        from . import distributed

        if distributed.world_size() != world_size:
            raise RuntimeError(f"recover(world_size={world_size}) needs an initialized process group of that "
                               f"size (cda.distributed.init_from_env under torchrun)")

    def noise(step_groups):
        return torch.cat([_init_noise(cfg.seed, i, int(b[0]), len(b), info) for i, b in step_groups])

    out = synthesize(teacher, info, cfg, (0, cfg.ipc), noise, device=device, progress=progress,
                     snapshot_at=snapshot_at, desc=desc, progress_dir=progress_dir, store_dir=store_dir,
                     checkpoint_every=checkpoint_every, rank=rank, world_size=world_size, speed=speed)
    history = out.history()
    meta = {"recover": to_dict(cfg), "dataset": info.name, "seconds": out.seconds, "device": str(resolve_device(device))}
    if world_size > 1:
        meta["world_size"] = world_size
    labels = torch.arange(info.num_classes).repeat_interleave(cfg.ipc)
    return Distilled(out.images, labels, meta, history, out.snapshots)


def _init_noise(seed: int, ipc_id: int, first_class: int, n: int, info: DatasetInfo) -> torch.Tensor:
    """A group's Gaussian initialization, from its own generator (the same on every device)."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(_group_seed(seed, ipc_id, first_class))
                                            .generate_state(1)[0]))
    return torch.randn(n, info.channels, info.image_size, info.image_size, generator=gen)


def _place(out: torch.Tensor, values: torch.Tensor, step_groups, num_classes: int, start: int = 0) -> None:
    """Write a step's rows into the class-major output of slots [start, ...) (all of class 0 first)."""
    row = 0
    for ipc_id, block in step_groups:
        index = torch.as_tensor(block) * (len(out) // num_classes) + ipc_id - start
        out[index] = values[row:row + len(block)]
        row += len(block)
