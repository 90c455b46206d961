"""Random real images: IPC training images per class drawn at random, relabeled like every other
set. The honest baseline for soft-label methods."""
from __future__ import annotations

from dataclasses import dataclass

from . import Inputs, Method, register


@dataclass(frozen=True)
class RandomRealOptions:
    ipc: int
    seed: int = 0


def _make(inputs: Inputs, o: RandomRealOptions):
    from ..recover import real_subset

    return real_subset(inputs.train, o.ipc, seed=o.seed)


METHOD = register(Method(
    name="random", label="Random real", cached=False,
    options=lambda run, ipc: RandomRealOptions(ipc, run.recover.seed), make=_make,
    description="IPC random real training images per class", options_type=RandomRealOptions, baseline=True,
    color="C0"))
