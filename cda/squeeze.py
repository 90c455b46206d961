"""Squeeze: train a teacher on the full training set with hard labels, and checkpoint it."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import apply_views, sample_views
from .checkpoint import Resume, save_checkpoint
from .config import DataConfig, SqueezeConfig, config_hash, to_dict
from .data import TensorSplit, load_split
from .distributed import broadcast_buffers, part, rank_and_world, wrap_ddp
from .models import create_model
from .runtime import PLAIN, Speed
from .training import (
    autocast,
    check_finite,
    cosine_lr,
    make_optimizer,
    resolve_device,
    seed_everything,
    seeded,
    set_lr,
    test_accuracy,
)

PROGRESS_FILE = "squeeze_progress.pt"


def train_classifier(model, train, cfg: SqueezeConfig, device: torch.device, progress: bool = True,
                     desc: str = "squeeze", progress_dir=None, speed: Speed = PLAIN):
    """Plain supervised training: random resized crops and flips on the device, SGD or AdamW, cosine LR.

    With `progress_dir`, the state is saved after every epoch and an interrupted run resumes from it
    (cda.checkpoint.Resume; the file goes when the training ends). `speed`: the runtime's layout and
    CPU precision for this stage (cda.runtime).
    """
    rng = seed_everything(cfg.seed)
    model.to(device).train()
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    info = train.info
    rank, world = rank_and_world()
    forward = wrap_ddp(model, device)  # under torchrun: each rank trains on its part of every batch
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    path = Path(progress_dir) / PROGRESS_FILE if progress_dir is not None else None
    resume = Resume(path, config_hash(speed.merged(cfg), info.name, len(train)), every=1, rank=rank)
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    at = {"step": 0, "loss": None}  # the global step, and the last batch's loss

    def restore(saved: dict) -> int:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = json.loads(saved["rng"])
        torch.set_rng_state(saved["torch_rng"])
        at["step"] = saved["epoch"] * steps_per_epoch
        bar.update(at["step"])
        return saved["epoch"]

    def one_epoch(epoch: int) -> None:
        for images, labels, n in train.batches(cfg.batch_size, shuffle=True, rng=rng, device=device,
                                               part=(rank, world)):
            x = info.normalize(images)
            if isinstance(train, TensorSplit):  # folder splits arrive augmented by their loader
                # Drawn for the whole batch, so that every rank's random stream stays the same.
                views = sample_views(rng, n, info.image_size, cfg.crop_scale, cfg.flip)
                x = apply_views(x, views.part(part(n, rank, world)))
            if speed.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            set_lr(optimizer, cosine_lr(at["step"], total, cfg.lr, warmup))
            with autocast(device, True, cpu=speed.amp_cpu):
                loss = F.cross_entropy(forward(x).float(), labels, label_smoothing=cfg.label_smoothing)
            if world > 1:  # DDP averages gradients over ranks: weigh each part's mean by its size
                loss = loss * (len(x) * world / n)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            at["step"] += 1
            at["loss"] = loss
            bar.update()
            if at["step"] % 50 == 0 or at["step"] == total:
                check_finite(loss, desc)
                bar.set_postfix(loss=f"{loss.item():.3f}")

    def state(done: int) -> dict:
        check_finite(at["loss"], desc)  # never checkpoint a diverged model
        return {"epoch": done, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(), "rng": json.dumps(rng.bit_generator.state)}

    resume.run(cfg.epochs, one_epoch, state, restore)
    bar.close()
    broadcast_buffers(model)
    return model.eval()


def squeeze(data: DataConfig, cfg: SqueezeConfig, device: str = "cpu", out_path=None, progress: bool = True,
            progress_dir=None, speed: Speed = PLAIN):
    """Train (or fetch pretrained) a teacher, test it, and optionally save a checkpoint.

    Returns (model, meta) where meta holds the test accuracy and the wall time.
    """
    dev = resolve_device(device)
    train, test = load_split(data, train=True), load_split(data, train=False)
    info = train.info
    start = time.perf_counter()
    with seeded(cfg.seed, dev):  # the initial weights too come from the config's seed; the caller's RNG stays
        model = create_model(cfg.arch, info.num_classes, info.channels, info.image_size, pretrained=cfg.pretrained)
        if not cfg.pretrained:
            train_classifier(model, train, cfg, dev, progress, progress_dir=progress_dir, speed=speed)
    model.to(dev).eval()
    metrics = test_accuracy(model, test, dev)
    metrics["train_seconds"] = time.perf_counter() - start
    if out_path is not None:
        save_checkpoint(out_path, model, cfg.arch, info, metrics, {"data": to_dict(data), "squeeze": to_dict(cfg)})
    return model, {"arch": cfg.arch, "dataset": info.name, "metrics": metrics}
