"""Nearest to the class mean: per class, the IPC real training images closest (in pixel space) to
the mean image of their class. A simple selection baseline, and the example of how little it takes
to add a method: this file and its tests."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import Inputs, Method, register


@dataclass(frozen=True)
class NearestMeanOptions:
    ipc: int
    batch_size: int = 4096  # images read at a time (the training set never sits in memory as floats)


def _make(inputs: Inputs, o: NearestMeanOptions):
    from ..recover import Distilled

    split = inputs.train
    labels = split.labels
    chosen = []
    for c in range(split.info.num_classes):
        index = torch.nonzero(labels == c).flatten()
        if len(index) < o.ipc:
            raise ValueError(f"class {c} has {len(index)} training images, fewer than IPC {o.ipc}")
        parts = [split.take(index[s:s + o.batch_size].numpy()).float() for s in range(0, len(index), o.batch_size)]
        mean = sum(p.sum(0) for p in parts) / len(index)
        dist = torch.cat([(p - mean).flatten(1).pow(2).sum(1) for p in parts])
        chosen.append(index[dist.argsort(stable=True)[:o.ipc]])
    idx = torch.cat(chosen)
    return Distilled(split.take(idx.numpy()), labels[idx].clone(), {"ipc": o.ipc, "indices": idx.tolist()})


METHOD = register(Method(name="nearest_mean", label="Nearest to mean", options=lambda run, ipc: NearestMeanOptions(ipc),
                         make=_make, description="the real images closest to their class mean",
                         options_type=NearestMeanOptions, color="C4"))
