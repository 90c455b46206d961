"""Evaluate: train a student on a distilled set (soft or hard labels) and test it on the real test set."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import Resume
from .config import EvalConfig, config_hash
from .contracts import check_image_set, check_teacher
from .data import DatasetInfo
from .distilled import Distilled
from .distributed import broadcast_buffers, part, rank_and_world, wrap_ddp
from .models import create_model
from .relabel import StoredLabels, batch_inputs, epoch_plan, resident
from .runtime import PLAIN, Speed
from .student_validation import Validation
from .training import (
    autocast,
    check_finite,
    cosine,
    cosine_lr,
    make_optimizer,
    onecycle_lr,
    resolve_device,
    seeded,
    set_lr,
    test_accuracy,
)
from .weight_ema import WeightEMA


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                    t2_scale: bool = False, smoothing: float = 0.0) -> torch.Tensor:
    """KL(teacher || student) at temperature T, averaged over the batch (the official FKD loss). With
    `smoothing` s > 0 the teacher's distribution at T is mixed with the uniform one first:
    (1 - s) p + s / C (EvalConfig.label_smoothing)."""
    t = temperature
    target = F.softmax(teacher_logits.float() / t, dim=1)
    if smoothing:
        target = smoothed(target, smoothing)
    loss = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), target, reduction="batchmean")
    return loss * t * t if t2_scale else loss


def smoothed(probs: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label smoothing of a distribution over the last dimension: (1 - s) p + s / C."""
    return (1 - smoothing) * probs + smoothing / probs.shape[-1]


def mse_gt_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                ce_weight: float = 0.1) -> torch.Tensor:
    """CUDD's `--loss-type mse_gt`: MSE between the student's and the teacher's logits (mean over batch
    and classes, no temperature) plus ce_weight x CE with each image's own class, also under CutMix
    (MIV-XJTU/CUDD@0bf778c training/train_FKD.py:272-273; --ce-weight 0.1 at line 72)."""
    s = student_logits.float()
    return F.mse_loss(s, teacher_logits.float()) + ce_weight * F.cross_entropy(s, labels)


PROGRESS_FILE = "student_progress.pt"


def train_student(distilled: Distilled, info: DatasetInfo, cfg: EvalConfig, teacher: nn.Module | None = None,
                  stored: StoredLabels | None = None, device: str = "cpu", progress: bool = True,
                  desc: str = "student", progress_dir=None, checkpoint_every: int = 0,
                  init: nn.Module | None = None, validation: Validation | None = None,
                  speed: Speed = PLAIN) -> nn.Module:
    """Train a fresh `cfg.arch` (or continue training `init`, in place) on the distilled images,
    labelled as `cfg.labels` says.

    With `progress_dir`, the student, optimizer and random state are saved every `checkpoint_every`
    epochs (0: about 20 times per run); the same call after an interruption resumes from there and
    ends with the same weights as an uninterrupted run.

    With `validation` (cda.student_validation), the student is validated as it trains and the best
    weights are kept there (evaluate builds it from EvalConfig.val_every).

    Under torchrun the student is wrapped in DistributedDataParallel: every rank builds the same
    global batch (so mixing partners and labels are those of one process) and trains on its part.
    """
    dev = resolve_device(device)
    if cfg.labels == "online" and teacher is None:
        raise ValueError("EvalConfig.labels='online' needs the teacher")
    if cfg.labels == "stored":
        if stored is None:
            raise ValueError("EvalConfig.labels='stored' needs stored labels (cda relabel)")
        stored.check_fits(cfg.aug, len(distilled.images))
    check_image_set(distilled.images, distilled.labels, info, "the distilled set")
    with seeded(cfg.seed, dev):  # the caller's random streams are left as they were
        return _fit(distilled, info, cfg, teacher, stored, dev, progress, desc, progress_dir, checkpoint_every, init,
                    validation, speed)


def _fit(distilled: Distilled, info: DatasetInfo, cfg: EvalConfig, teacher: nn.Module | None,
         stored: StoredLabels | None, dev: torch.device, progress: bool, desc: str, progress_dir,
         checkpoint_every: int, init: nn.Module | None, validation: Validation | None = None,
         speed: Speed = PLAIN) -> nn.Module:
    """train_student's loop, under its seed."""
    student = init if init is not None else create_model(cfg.arch, info.num_classes, info.channels, info.image_size)
    student = student.to(dev).train()
    if speed.channels_last:
        student = student.to(memory_format=torch.channels_last)
    if teacher is not None:
        teacher = teacher.to(dev).eval()
        check_teacher(teacher, info, dev)
    rank, world = rank_and_world()
    forward = wrap_ddp(student, dev)
    forward = torch.compile(forward) if speed.compile else forward
    optimizer = make_optimizer(student, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    images, labels = resident(distilled.images, dev), distilled.labels.to(dev)
    epochs = cfg.aug.epochs
    steps = -(-len(images) // min(cfg.aug.batch_size, len(images)))  # optimizer steps per epoch (epoch_plan's)
    ema = WeightEMA(student, cfg.ema_decay) if cfg.ema_decay else None
    tested = ema.model if ema is not None else student  # what is validated and returned
    every = checkpoint_every or max(1, epochs // 20)
    path = Path(progress_dir) / PROGRESS_FILE if progress_dir is not None else None
    # hashing the images is only worth it when resuming is possible
    key = (config_hash(speed.merged(cfg), info.name, hashlib.sha256(distilled.images.cpu().numpy().tobytes()).hexdigest())
           if path is not None else "")
    resume = Resume(path, key, every, rank)
    bar = tqdm(total=epochs, desc=desc, disable=not progress, leave=False)
    last = {"loss": torch.zeros(())}

    def restore(saved: dict) -> int:
        student.load_state_dict(saved["student"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        if ema is not None:
            ema.load(saved["ema"])
        if validation is not None:
            validation.load(saved.get("validation"), path)
        bar.update(saved["epoch"])
        return saved["epoch"]

    def one_epoch(epoch: int) -> None:
        if cfg.warmup_epochs:  # official Tiny-ImageNet students: linear warm-up, then cosine per epoch
            set_lr(optimizer, cosine_lr(epoch, epochs, cfg.lr, cfg.warmup_epochs))
        elif cfg.schedule == "cosine":
            set_lr(optimizer, cfg.lr * cosine(epoch, epochs))  # per-epoch cosine
        batches = (stored.epoch(epoch) if cfg.labels == "stored"
                   else [(p, None) for p in epoch_plan(cfg.aug, len(images), info.image_size, epoch)])
        for i, (plan, target) in enumerate(batches):
            if cfg.schedule == "onecycle":  # per optimizer step
                set_lr(optimizer, onecycle_lr(epoch * steps + i, epochs * steps, cfg.lr))
            x = batch_inputs(images, plan, info, dev)
            n = len(x)
            mine = part(n, rank, world)  # all of it in one process
            x = x[mine]
            if cfg.labels == "online":  # the teacher is in eval mode: its part's labels are the batch's
                with torch.no_grad(), autocast(dev, cfg.amp):
                    target = teacher(x)
            elif target is not None:
                target = target[mine]
            if speed.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(dev, cfg.amp, cpu=speed.amp_cpu):
                out = forward(x)
            if cfg.labels == "hard":
                y = labels[torch.as_tensor(plan.indices, device=dev)]
                y2 = y[torch.as_tensor(plan.mix.perm, device=dev)] if plan.mix is not None else None
                loss = F.cross_entropy(out.float(), y[mine], label_smoothing=cfg.label_smoothing)
                if plan.mix is not None:
                    loss = plan.mix.lam * loss + (1 - plan.mix.lam) * F.cross_entropy(
                        out.float(), y2[mine], label_smoothing=cfg.label_smoothing)
            elif cfg.loss == "mse_gt":  # CE with each view's own class, not its CutMix partner's (official)
                y = labels[torch.as_tensor(plan.indices, device=dev)][mine]
                loss = mse_gt_loss(out, target.to(dev), y, cfg.ce_weight)
            else:
                loss = soft_label_loss(out, target.to(dev), cfg.temperature, cfg.t2_scale, cfg.label_smoothing)
            if world > 1:  # DDP averages gradients over ranks: weigh each part's mean by its size
                loss = loss * (len(out) * world / n)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(student)
            last["loss"] = loss
        bar.update()
        if validation is not None:
            validation.after_epoch(tested, epoch + 1, epochs, dev)
            if ema is not None:
                tested.eval()  # after_epoch sets train mode; the EMA copy's BatchNorm must not update itself
        if (epoch + 1) % 20 == 0 or epoch + 1 == epochs:
            check_finite(last["loss"], desc)
            bar.set_postfix(loss=f"{last['loss'].item():.4f}")

    def state(done: int) -> dict:
        check_finite(last["loss"], desc)  # never checkpoint a diverged student
        return {"epoch": done, "student": student.state_dict(), "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                **({"ema": ema.state()} if ema is not None else {}),
                **({"validation": validation.state()} if validation is not None else {})}

    resume.run(epochs, one_epoch, state, restore)
    bar.close()
    broadcast_buffers(tested)
    return tested.eval()


def evaluate(distilled: Distilled, test_split, cfg: EvalConfig, teacher: nn.Module | None = None,
             stored: StoredLabels | None = None, device: str = "cpu", progress: bool = True,
             desc: str = "student", progress_dir=None, val_split=None, speed: Speed = PLAIN) -> dict:
    """Train a student on `distilled` and return its top-1/top-5 (%) on the real test split.

    With EvalConfig.val_every, the student is validated on `val_split` (load_split(data, split="val"))
    as it trains, and the best-on-validation weights are tested too: `best_top1`, `best_top5`,
    `best_epoch`, `best_val_top1`, `val_curve` ([epoch, validation top-1] pairs) beside `last_top1`,
    `last_top5`; `top1`/`top5` stay the last weights' (the tables' number, as in the papers)."""
    start = time.perf_counter()
    validation = None
    if cfg.val_every:
        if val_split is None:
            raise ValueError(f"EvalConfig.val_every={cfg.val_every} validates the student as it trains: pass "
                             f"val_split=load_split(data, split='val') (DataConfig.validation > 0), or set val_every=0")
        validation = Validation(val_split, cfg.val_every, cfg.test_batch_size, cfg.amp)
    student = train_student(distilled, test_split.info, cfg, teacher, stored, device, progress, desc, progress_dir,
                            validation=validation, speed=speed)
    dev = resolve_device(device)
    metrics = test_accuracy(student, test_split, dev, cfg.test_batch_size, cfg.amp)
    if validation is not None:
        metrics.update(validation.report(student, test_split, dev, metrics))
    metrics["seconds"] = time.perf_counter() - start
    return metrics


@torch.no_grad()
def noisy_accuracy(model: nn.Module, split, sigma: float, device: str = "cpu", seed: int = 0,
                   batch_size: int = 512, amp: bool = True) -> dict[str, float]:
    """Top-1 and top-5 (%) on test images with Gaussian pixel noise of std `sigma` (pixels in [0, 1]),
    clipped back to [0, 1]. The noise is drawn from `seed`, so every model sees the same noisy images."""
    if sigma < 0:
        raise ValueError(f"noise sigma={sigma}: must not be negative")
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    correct1 = correct5 = total = 0
    k = min(5, split.info.num_classes)
    for images, labels in split.batches(batch_size, device="cpu"):
        x = images.float() / 255.0
        x = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)
        x = (x * 255).round().to(torch.uint8).to(dev)
        with autocast(dev, amp):
            logits = model(split.info.normalize(x))
        hits = logits.float().topk(k, dim=1).indices == labels.to(dev)[:, None]
        correct1 += hits[:, 0].sum().item()
        correct5 += hits.any(dim=1).sum().item()
        total += len(labels)
    return {"top1": 100.0 * correct1 / total, "top5": 100.0 * correct5 / total}
