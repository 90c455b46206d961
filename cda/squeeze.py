"""Squeeze: train a teacher on the full training set with hard labels, and checkpoint it."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import sample_views, apply_views
from .checkpoint import save_checkpoint
from .config import DataConfig, SqueezeConfig, to_dict
from .data import TensorSplit, load_split
from .models import create_model
from .training import (autocast, check_finite, cosine_lr, make_optimizer, resolve_device, set_lr,
                       seed_everything, test_accuracy)


def train_classifier(model, train, cfg: SqueezeConfig, device: torch.device, progress: bool = True,
                     desc: str = "squeeze"):
    """Plain supervised training: random resized crops and flips on the device, SGD or AdamW, cosine LR."""
    rng = seed_everything(cfg.seed)
    model.to(device).train()
    info = train.info
    optimizer = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    step = 0
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    for _ in range(cfg.epochs):
        for images, labels in train.batches(cfg.batch_size, shuffle=True, rng=rng, device=device):
            x = info.normalize(images)
            if isinstance(train, TensorSplit):  # folder splits arrive augmented by their loader
                x = apply_views(x, sample_views(rng, len(x), info.image_size, cfg.crop_scale, cfg.flip))
            set_lr(optimizer, cosine_lr(step, total, cfg.lr, warmup))
            with autocast(device, True):
                loss = F.cross_entropy(model(x), labels, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update()
            if step % 50 == 0 or step == total:
                check_finite(loss, desc)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def squeeze(data: DataConfig, cfg: SqueezeConfig, device: str = "cpu", out_path=None, progress: bool = True):
    """Train (or fetch pretrained) a teacher, test it, and optionally save a checkpoint.

    Returns (model, meta) where meta holds the test accuracy and the wall time.
    """
    dev = resolve_device(device)
    train, test = load_split(data, train=True), load_split(data, train=False)
    info = train.info
    start = time.perf_counter()
    model = create_model(cfg.arch, info.num_classes, info.channels, info.image_size, pretrained=cfg.pretrained)
    if not cfg.pretrained:
        train_classifier(model, train, cfg, dev, progress)
    model.to(dev).eval()
    metrics = test_accuracy(model, test, dev)
    metrics["train_seconds"] = time.perf_counter() - start
    if out_path is not None:
        save_checkpoint(out_path, model, cfg.arch, info, metrics, {"data": to_dict(data), "squeeze": to_dict(cfg)})
    return model, {"arch": cfg.arch, "dataset": info.name, "metrics": metrics}
