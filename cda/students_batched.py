"""K students of one ConvNet shape trained at once, each as `train_student` would train it alone.

The K students become one wide network (`StackedConvNet`): every convolution has K x C channels in K
groups, so student k only ever sees its own channels; BatchNorm over K x C channels keeps per-student
batch and running statistics by construction; the classifier is a batched matrix product. AdamW and
SGD act elementwise (and all K take the same steps), so one optimizer over the stacked parameters is
K optimizers. Why this rather than `torch.func.vmap` over stacked parameters: vmap lowers a batched
convolution to the same grouped convolution, but needs hand-written care for BatchNorm's running
statistics and a functional optimizer; the wide network is ordinary autograd and `torch.optim`.

Per student k (its EvalConfig differs from the others' only in `seed` and `aug.seed`):
- initialization: the ConvNet `create_model` builds after `seed_everything(cfg.seed)`, as in train_student;
- views: `epoch_plan(cfg.aug, ...)`, the crops, flips, order and CutMix/MixUp that train_student draws;
- labels: the teacher's logits on its views, from one teacher forward over the K students' batches;
- loss: the per-student KL of `soft_label_loss`; the sum over students is minimized, so each
  student's gradient is its own.

Supported: ConvNets with BatchNorm (`convnet{D}[_w{W}]`), online soft labels with the KL loss, AdamW or
SGD, the per-epoch cosine (with or without warm-up), every AugConfig, bf16 autocast on CUDA (`amp`).
Refused with a one-line error: anything else (stored or hard labels, the mse_gt loss, validation during
training, one-cycle, EMA, label smoothing, other architectures, amp_cpu, channels_last, compile, torchrun).
The studies, `cda run` and `cda tune` use it through RunConfig.students_at_once
(Workspace.evaluations_at_once). Speed (benchmarks/students_batched.py, results/bench/students_batched-cpu.*):
on this 2-core CPU with nothing else running (load 1.6-1.9), 5 convnet3 students at once trained 0.67x as
many students per second as train_student one at a time (7.3 s against 4.9 s). The grouped convolutions
run no faster than K separate ones here, so the CPU presets keep students_at_once=1. The 1.6x measured
earlier was under a load of 4-7, which penalizes the K separate calls more. Where it should pay: GPUs,
whose kernels for one small student leave most of the device idle (not measured: no GPU was lent).
Memory grows K-fold: K students of batch B hold the activations of one network at batch K x B.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import ViewParams, apply_mix, apply_views
from .config import EvalConfig
from .contracts import check_image_set, check_teacher
from .data import DatasetInfo
from .distilled import Distilled
from .distributed import rank_and_world
from .models import _CONVNET, ConvNet, create_model
from .relabel import BatchPlan, epoch_plan, resident
from .runtime import PLAIN, Speed
from .training import NonFiniteLossError, autocast, cosine_lr, resolve_device, seed_everything, set_lr


class BatchedStudentsError(ValueError):
    """The students cannot be trained at once (another recipe, shape or option than supported)."""


def check_batchable(cfgs: Sequence[EvalConfig], speed: Speed = PLAIN) -> None:
    """The recipes can share one pass: the same EvalConfig but for `seed` and `aug.seed`, with options
    this module supports."""
    if not cfgs:
        raise BatchedStudentsError("train_students needs at least one EvalConfig")
    base = recipe(cfgs[0])
    for i, cfg in enumerate(cfgs[1:], 1):
        if recipe(cfg) != base:
            differ = [f for f in base.__dataclass_fields__ if getattr(recipe(cfg), f) != getattr(base, f)]
            raise BatchedStudentsError(f"student {i}'s EvalConfig differs from student 0's in {', '.join(differ)}: "
                                       f"students trained at once may differ only in seed and aug.seed; train "
                                       f"the others in another call")
    cfg = cfgs[0]
    refused = [(cfg.labels != "online", f"labels={cfg.labels!r} (only 'online')"),
               (cfg.loss != "kl", f"loss={cfg.loss!r} (only 'kl')"),
               (cfg.val_every != 0, f"val_every={cfg.val_every} (only 0: no validation during training)"),
               (cfg.schedule != "cosine", f"schedule={cfg.schedule!r} (only 'cosine')"),
               (cfg.ema_decay != 0, f"ema_decay={cfg.ema_decay} (only 0)"),
               (cfg.label_smoothing != 0, f"label_smoothing={cfg.label_smoothing} (only 0)"),
               *((value, f"speed {knob}=True") for knob, value in speed.hashed().items())]
    for bad, what in refused:
        if bad:
            what = what if what.startswith("speed") else f"EvalConfig.{what}"
            raise BatchedStudentsError(f"{what} is not supported by train_students; train these students "
                                       f"one at a time with cda.student.train_student")


def recipe(cfg: EvalConfig) -> EvalConfig:
    """The recipe without its seeds: students whose recipes are equal can train at once."""
    return replace(cfg, seed=0, aug=replace(cfg.aug, seed=0))


def batchable(cfg: EvalConfig, speed: Speed = PLAIN) -> bool:
    """Whether a student of `cfg` can train with others: a BatchNorm ConvNet and options check_batchable takes."""
    m = _CONVNET.match(cfg.arch)
    if m is None or m.group(3) not in (None, "bn"):
        return False
    try:
        check_batchable([cfg], speed)
    except BatchedStudentsError:
        return False
    return True


class StackedConvNet(nn.Module):
    """K ConvNets of one shape as one network over inputs [B, K x C, H, W] with logits [K, B, classes].

    Built from K BatchNorm ConvNets, whose weights it copies; `unstack()` copies the trained weights and
    running statistics back into them and returns them."""

    def __init__(self, students: Sequence[ConvNet]):
        super().__init__()
        self.k = len(students)
        self._students = tuple(students)  # a tuple: not registered, so their parameters are not ours
        layers = [_blocks(s) for s in students]
        shapes = {tuple(tuple(p.shape) for p in s.parameters()) for s in students}
        if len(shapes) != 1:
            raise BatchedStudentsError("the students to stack have different shapes; stack one architecture only")
        self.depth = len(layers[0])
        bn0 = layers[0][0][1]
        self.momentum, self.eps = bn0.momentum, bn0.eps

        def stack(get):
            return nn.Parameter(torch.stack([get(s).detach().clone() for s in range(self.k)]))

        self.conv = nn.ParameterList([stack(lambda s, i=i: layers[s][i][0].weight) for i in range(self.depth)])
        self.bn_weight = nn.ParameterList([stack(lambda s, i=i: layers[s][i][1].weight) for i in range(self.depth)])
        self.bn_bias = nn.ParameterList([stack(lambda s, i=i: layers[s][i][1].bias) for i in range(self.depth)])
        for i in range(self.depth):
            self.register_buffer(f"running_mean{i}", torch.stack([layers[s][i][1].running_mean for s in range(self.k)]))
            self.register_buffer(f"running_var{i}", torch.stack([layers[s][i][1].running_var for s in range(self.k)]))
        self.steps = int(bn0.num_batches_tracked)
        self.fc_weight = nn.Parameter(torch.stack([s.classifier.weight.detach().clone() for s in students]))
        self.fc_bias = nn.Parameter(torch.stack([s.classifier.bias.detach().clone() for s in students]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = len(x)
        for i in range(self.depth):
            w = self.conv[i]
            x = F.conv2d(x, w.reshape(-1, *w.shape[2:]), padding=1, groups=self.k)
            x = F.batch_norm(x, getattr(self, f"running_mean{i}").view(-1), getattr(self, f"running_var{i}").view(-1),
                             self.bn_weight[i].reshape(-1), self.bn_bias[i].reshape(-1), self.training,
                             self.momentum, self.eps)
            x = F.avg_pool2d(F.relu(x), 2)
        if self.training:
            self.steps += 1
        features = x.reshape(b, self.k, -1).transpose(0, 1)  # student k's channels, flattened as ConvNet does
        return torch.baddbmm(self.fc_bias[:, None], features, self.fc_weight.transpose(1, 2))

    def decay_groups(self, weight_decay: float) -> list[dict]:
        """make_optimizer's groups: weight decay on the convolution and classifier weights only."""
        decay = [*self.conv, self.fc_weight]
        no_decay = [*self.bn_weight, *self.bn_bias, self.fc_bias]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    @torch.no_grad()
    def unstack(self) -> list[ConvNet]:
        """The K students with the trained weights and BatchNorm statistics, in eval mode."""
        for k, student in enumerate(self._students):
            for i, (conv, bn) in enumerate(_blocks(student)):
                conv.weight.copy_(self.conv[i][k])
                bn.weight.copy_(self.bn_weight[i][k])
                bn.bias.copy_(self.bn_bias[i][k])
                bn.running_mean.copy_(getattr(self, f"running_mean{i}")[k])
                bn.running_var.copy_(getattr(self, f"running_var{i}")[k])
                bn.num_batches_tracked.fill_(self.steps)
            student.classifier.weight.copy_(self.fc_weight[k])
            student.classifier.bias.copy_(self.fc_bias[k])
        return [s.eval() for s in self._students]


def _blocks(student: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The (conv, BatchNorm) pairs of a BatchNorm ConvNet; refuses any other model."""
    if not isinstance(student, ConvNet):
        raise BatchedStudentsError(f"train_students stacks cda's ConvNets only, not {type(student).__name__}; "
                                   f"train this architecture one student at a time with train_student")
    mods = list(student.features)
    convs = [m for m in mods if isinstance(m, nn.Conv2d)]
    bns = [m for m in mods if isinstance(m, nn.BatchNorm2d)]
    if len(bns) != len(convs) or any(c.bias is not None for c in convs):
        raise BatchedStudentsError("train_students needs ConvNets with BatchNorm (convnet{D}[_w{W}], not _in or "
                                   "_none); train the others one student at a time with train_student")
    return list(zip(convs, bns))


def batch_views(images: Sequence[torch.Tensor], plans: Sequence[BatchPlan], info: DatasetInfo,
                device: torch.device) -> torch.Tensor:
    """The K students' batches [K, B, C, H, W], as `relabel.batch_inputs` makes each: one grid_sample for
    all crops and flips, then each student's own CutMix/MixUp."""
    x = torch.cat([imgs[torch.as_tensor(p.indices, device=imgs.device)].to(device, non_blocking=True)
                   for imgs, p in zip(images, plans)])
    views = ViewParams(*(np.concatenate([getattr(p.views, f) for p in plans]) for f in ("boxes", "flips", "shifts")))
    x = apply_views(info.normalize(x), views).unflatten(0, (len(plans), -1))
    return torch.stack([apply_mix(x[k], p.mix) for k, p in enumerate(plans)])


def train_students(sets: Distilled | Sequence[Distilled], info: DatasetInfo, cfgs: Sequence[EvalConfig],
                   teacher: nn.Module, device: str = "cpu", progress: bool = True,
                   desc: str = "students", speed: Speed = PLAIN) -> list[nn.Module]:
    """Train len(cfgs) students at once, student k on `sets[k]` (or all on one set) with `cfgs[k]`, and
    return them in eval mode: the students `train_student(sets[k], info, cfgs[k], teacher)` returns, up to
    float rounding (the grouped convolutions and the batched teacher round differently)."""
    check_batchable(cfgs, speed)
    k = len(cfgs)
    sets = [sets] * k if isinstance(sets, Distilled) else list(sets)
    if len(sets) != k:
        raise BatchedStudentsError(f"train_students got {len(sets)} image sets for {k} EvalConfigs; give one set "
                                   f"per student, or one set for all")
    if rank_and_world()[1] > 1:
        raise BatchedStudentsError("train_students runs in one process; under torchrun use train_student")
    for i, d in enumerate(sets):
        check_image_set(d.images, d.labels, info, f"student {i}'s image set")
    if len({len(d.images) for d in sets}) != 1:
        sizes = sorted({len(d.images) for d in sets})
        raise BatchedStudentsError(f"train_students needs sets of one size (got {sizes} "
                                   f"images): students trained at once take the same number of batches")
    cfg = cfgs[0]
    dev = resolve_device(device)
    students = []
    for c in cfgs:  # each student's initialization, as train_student draws it
        seed_everything(c.seed)
        students.append(create_model(c.arch, info.num_classes, info.channels, info.image_size))
    wide = StackedConvNet(students).to(dev).train()
    teacher = teacher.to(dev).eval()
    check_teacher(teacher, info, dev)
    groups = wide.decay_groups(cfg.weight_decay)
    optimizer = (torch.optim.AdamW(groups, lr=cfg.lr) if cfg.optimizer == "adamw"
                 else torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=False))
    images = [resident(d.images, dev) for d in sets]
    n, size, epochs, t = len(images[0]), info.image_size, cfg.aug.epochs, cfg.temperature
    losses = torch.zeros(k)
    for epoch in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        if cfg.warmup_epochs:
            set_lr(optimizer, cosine_lr(epoch, epochs, cfg.lr, cfg.warmup_epochs))
        else:
            set_lr(optimizer, cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs)))
        plans = [epoch_plan(c.aug, n, size, epoch) for c in cfgs]
        for batch in zip(*plans):
            x = batch_views(images, batch, info, dev)  # [K, B, C, H, W]
            kk, b = x.shape[:2]
            with torch.no_grad(), autocast(dev, cfg.amp):
                target = teacher(x.reshape(kk * b, *x.shape[2:])).reshape(kk, b, -1)
            with autocast(dev, cfg.amp):
                out = wide(x.transpose(0, 1).reshape(b, -1, *x.shape[3:]))
            # soft_label_loss per student: KL(teacher || student) at T, summed over the batch / B
            kl = F.kl_div(F.log_softmax(out.float() / t, dim=2), F.softmax(target.float() / t, dim=2),
                          reduction="none")
            losses = kl.sum(dim=(1, 2)) / b * (t * t if cfg.t2_scale else 1.0)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
        if (epoch + 1) % 20 == 0 or epoch + 1 == epochs:
            _check_finite(losses, cfgs, desc)
    return wide.unstack()


def _check_finite(losses: torch.Tensor, cfgs: Sequence[EvalConfig], where: str) -> None:
    bad = [i for i, ok in enumerate(torch.isfinite(losses.detach()).tolist()) if not ok]
    if bad:
        raise NonFiniteLossError(f"non-finite loss in {where} for student(s) {bad} (seeds "
                                 f"{[cfgs[i].seed for i in bad]}); lower the learning rate")
