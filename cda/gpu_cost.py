"""Estimated cost of each method of a run on one H100 or H200: disk, peak device memory (cda.plan) and
GPU-hours from a cost model, printed by `cda plan` for the GPU presets. Estimates until a GPU measures
them (cda.plan.measure_rate).

GPU-hours = FLOPs / (peak x UTILIZATION). FLOPs per image are counted by torch's FlopCounterMode in one
forward of each model on the meta device (ResNet-18 at 224 px: 3.6 GFLOP); a step costs

- recovery: 2 forwards of the teacher per image-iteration (its weights are frozen: a forward and a
  backward to the images only); CUDD adds the same for its curriculum student;
- a student: 3 forwards per image-epoch (forward, backward to activations and to weights), plus the
  teacher's forward where it labels online; relabeling: 1 teacher forward per image-epoch;
- the teacher's own training (where it is not downloaded): 3 forwards per training image-epoch.

Peaks are NVIDIA's dense tensor-core figures for the H100 SXM5 (the H200 is the same GPU with more and
faster memory): TF32 for the fp32 steps (CUDA runs fp32 matmuls and convolutions as TF32 here), BF16
for the autocast ones. UTILIZATION is the one measured-elsewhere figure found: CDA's README time for
ImageNet-1K IPC 50 (29 h on one RTX 4090) implies about 10% of that GPU's fp32 peak
(../shared/research/successors.md 4.3); no published utilization on an A100, H100 or H200 was found.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from . import methods
from .config import RunConfig
from .plan import GB, Shape, dataset_shape, make_plan

PEAK_FLOPS = {"tf32": 494.7e12, "bf16": 989.4e12}  # H100 SXM5 = H200, dense
PEAK_SOURCE = ("NVIDIA H100 SXM5 dense tensor-core peaks, TF32 494.7 and BF16 989.4 TFLOPS (as tabulated at "
               "glennklockwood.com/garden/processors/h100; the H200 has the same compute)")
UTILIZATION = 0.10
UTILIZATION_SOURCE = ("10% of peak: CDA's README time (ImageNet-1K IPC 50, 29 h on one RTX 4090) implies about 7 "
                      "TFLOP/s, roughly 10% of that GPU's fp32 peak (successors.md 4.3); no published utilization "
                      "on A100/H100/H200 was found")
# training images of the datasets whose teacher cda trains (ImageNet-1K's is downloaded)
TRAIN_IMAGES = {"tiny_imagenet": 100_000, "cifar10": 50_000, "cifar100": 50_000}

_FLOPS: dict[tuple, float] = {}


def forward_flops(arch: str, shape: Shape) -> float:
    """FLOPs of one forward of `arch` on one image (counted on the meta device: no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    from .models import create_model

    key = (arch, shape)
    if key not in _FLOPS:
        with torch.device("meta"):
            model = create_model(arch, shape.num_classes, shape.channels, shape.image_size).eval()
            x = torch.empty(1, shape.channels, shape.image_size, shape.image_size)
            with FlopCounterMode(display=False) as counter:
                model(x)
        _FLOPS[key] = float(counter.get_total_flops())
    return _FLOPS[key]


def _hours(flops: float, bf16: bool) -> float:
    return flops / (PEAK_FLOPS["bf16" if bf16 else "tf32"] * UTILIZATION) / 3600


def method_hours(cfg: RunConfig, method: str, shape: Shape) -> dict[str, float]:
    """GPU-hours of one method over the run's IPCs, students and seeds, by stage."""
    C = shape.num_classes
    teacher = forward_flops(cfg.squeeze.arch, shape)
    e = cfg.eval_for(method)
    out = {"recovery": 0.0, "relabel": 0.0, "students": 0.0}
    for ipc in cfg.ipcs:
        n = ipc * C
        syn = methods.synthesis(method, methods.options_for(cfg, method, ipc))  # None: real images picked
        if syn is not None:
            s, r = syn.student, syn.recover
            per = 2 * teacher + (2 * forward_flops(s.arch, shape) if s else 0)
            out["recovery"] += _hours(n * r.iterations * per, r.amp)
            if s:  # students trained during synthesis (CUDD's curriculum students, on the earlier stages)
                ep = C * syn.student_image_epochs_per_class
                out["students"] += _hours(ep * (3 * forward_flops(s.arch, shape) + teacher), s.amp)
        if e.labels == "stored":
            out["relabel"] += _hours(n * cfg.relabel_for(e).stored_epochs * teacher, cfg.relabel.amp)
        for arch in cfg.students or (e.arch,):
            per = 3 * forward_flops(arch, shape) + (teacher if e.labels == "online" else 0)
            out["students"] += _hours(n * e.aug.epochs * per * len(cfg.eval_seeds), e.amp)
    out["total"] = sum(out.values())
    return out


def teacher_hours(cfg: RunConfig, shape: Shape) -> float | None:
    """GPU-hours of the teacher's training (0 if downloaded; None where the training set's size is unknown)."""
    s = cfg.squeeze
    if s.pretrained:
        return 0.0
    images = TRAIN_IMAGES.get(cfg.data.name)
    return None if images is None else _hours(images * s.epochs * 3 * forward_flops(s.arch, shape), True)


def method_plan(cfg: RunConfig, method: str, shape: Shape):
    """cda.plan's plan of one method alone, with its own student recipe; peak memory over its students."""
    e = cfg.eval_for(method)
    plans = [make_plan(replace(cfg, methods=(method,), eval=replace(e, arch=arch)), shape)
             for arch in cfg.students or (e.arch,)]
    return max(plans, key=lambda p: p.peak_memory), plans[0].disk_total


def _h(hours: float) -> str:
    return f"{hours:.2f} h" if hours < 1 else f"{hours:,.1f} h"


def render(cfg: RunConfig, shape: Shape | None = None) -> str:
    """The per-method table `cda plan` prints for a GPU preset."""
    shape = shape or dataset_shape(cfg)
    lines = ["", "Per method on one H100 or H200 (ESTIMATES until a GPU measures them; cda.gpu_cost):",
             f"  {'method':8} {'disk':>10} {'peak memory':>12} {'recovery':>10} {'relabel':>9} {'students':>10} "
             f"{'total':>10}"]
    for method in cfg.methods:
        peak, disk = method_plan(cfg, method, shape)
        h = method_hours(cfg, method, shape)
        lines.append(f"  {method:8} {disk / GB:>7.1f} GB {peak.peak_memory / GB:>9.1f} GB {_h(h['recovery']):>10} "
                     f"{_h(h['relabel']):>9} {_h(h['students']):>10} {_h(h['total']):>10}")
    t = teacher_hours(cfg, shape)
    teacher = ("downloaded (0 h)" if t == 0 else "not estimated (training set size unknown here)" if t is None
               else f"{_h(t)}, shared by every method")
    lines.append(f"  teacher: {teacher}")
    lines.append(f"  disk: that method's own run (its sets, labels, teacher); students: {list(cfg.students or (cfg.eval.arch,))} "
                 f"x {len(cfg.eval_seeds)} seed(s) at IPCs {list(cfg.ipcs)}")
    lines.append(f"  model: FLOPs from torch's FlopCounterMode / (peak x {UTILIZATION:.0%}); peaks: {PEAK_SOURCE}; "
                 f"utilization: {UTILIZATION_SOURCE}")
    return "\n".join(lines)
