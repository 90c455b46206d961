"""The seed policy: one run seed drives every random part of a run, each part through its own stream
(RunConfig.seeded, RunConfig.for_seed)."""
from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

from .checks import _check

# The parts of a run that `RunConfig.seeded` draws from one seed, each with its own stream. Append
# new parts at the end: a part's stream is fixed by its position.
SEED_PARTS = ("student", "views", "synthesis", "cudd", "cudd_student", "cudd_views")
# What an evaluation seed varies (RunConfig.seed_scope): the student's initialization, or every part.
SEED_SCOPES = ("student", "all")


def derive_seed(seed: int, part: str) -> int:
    """The seed of one part of a run (SEED_PARTS) for a run seed: a 31-bit integer from numpy's
    SeedSequence with the part's spawn key, independent of every other part's."""
    import numpy as np

    _check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
           f"seed={seed!r}: give a non-negative integer seed")
    _check(part in SEED_PARTS, f"derive_seed: unknown part {part!r}; choose one of {SEED_PARTS}")
    sequence = np.random.SeedSequence(seed, spawn_key=(SEED_PARTS.index(part),))
    return int(sequence.generate_state(1)[0] >> 1)


def seeded_eval(cfg: Any, seed: int, student: str = "student", views: str = "views") -> Any:
    """A student recipe whose initialization and views (augmentation plan, batch order) come from `seed`."""
    return replace(cfg, seed=derive_seed(seed, student), aug=replace(cfg.aug, seed=derive_seed(seed, views)))


def seeded_options(options: Any, seed: int) -> Any:
    """A method's options (or a run's recover / cudd section) with their random parts drawn from `seed`:
    a RecoverConfig's noise ("synthesis"); a CuddConfig's initialization ("cudd") and, where set, its
    recovery ("synthesis") and curriculum student ("cudd_student", "cudd_views"); any other options
    with a `seed` field (the random-real subset) from "synthesis". Options without randomness are
    returned as they are. (A CuddConfig is known by its `init_seed`: this module sits below the schema.)"""
    if is_dataclass(options) and hasattr(options, "init_seed"):
        return replace(options, init_seed=derive_seed(seed, "cudd"),
                       recover=None if options.recover is None else seeded_options(options.recover, seed),
                       student=None if options.student is None else
                       seeded_eval(options.student, seed, "cudd_student", "cudd_views"))
    if is_dataclass(options) and "seed" in {f.name for f in fields(options)}:
        return replace(options, seed=derive_seed(seed, "synthesis"))
    return options
