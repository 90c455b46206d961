"""Distillation methods as one table: each entry says how its set is made and which options it takes.

A method is registered once (`register`); the run config's `methods`, the pipeline, the plan, the
tuning, the result tables, the studies and the figures read this table and nothing else about it (no
code tests a method's name), so adding a method (RDED, EDC, ...) is one new module in this package
plus its tests. Entries are listed in the order they are registered, which is the order of the rows
of every table.
"""
from __future__ import annotations

import importlib
import pkgutil
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # the registry itself needs no torch: each method imports what it runs
    from torch import nn

from ..runtime import Speeds


@dataclass
class Inputs:
    """What a method may use to make its set."""

    teacher: "nn.Module | None"
    train: Any  # cda.data split of the training set
    device: str = "cpu"
    progress: bool = True
    folder: Path | None = None  # the artifact's folder in the making: checkpoints, resume
    store: Path | None = None  # finished steps shared between IPCs (slot reuse)
    snapshot_at: tuple[int, ...] = ()
    speeds: Speeds = field(default_factory=Speeds)  # the runtime's per-stage speed settings (cda.runtime)

    @property
    def info(self):
        return self.train.info


@dataclass(frozen=True)
class Synthesis:
    """The work of synthesizing one set, as the plan and the GPU-cost estimate count it
    (cda.plan, cda.gpu_cost): images x `recover.iterations` image-iterations of the teacher, and,
    where students are trained and run during synthesis (CUDD's curriculum students), their
    recipe and their image-epochs per class in all."""

    recover: Any  # cda.config.RecoverConfig
    student: Any = None  # cda.config.EvalConfig, or None
    student_image_epochs_per_class: int = 0


@dataclass(frozen=True)
class Method:
    """One distillation method.

    `options(run, ipc)` is the frozen config that makes the set at one IPC, built from the run's
    config sections; it is hashed into the cache key. `make(inputs, options)` returns a
    `cda.recover.Distilled`. `cached`: whether the set is stored in the cache (random real images
    are cheaper to draw again than to load). `snapshots`: whether `make` can record images at
    given iterations. `synthesis(options)`: the work of one set (None: real images are picked, no
    synthesis). `from_noise`: the options are a RecoverConfig and the set is recovered from noise
    slot by slot, so finished slots are shared between IPCs (the cache's slots/). `options_type`:
    the class of its options (tuning moves a method's options with the grid of that class).
    `baseline`: the reference the others are measured against (IOR, the protocol's tuning).
    `color`: its colour in every figure (a matplotlib colour; "": the next free one).
    """

    name: str
    label: str
    options: Callable[[Any, int], Any]
    make: Callable[[Inputs, Any], Any]
    cached: bool = True
    snapshots: bool = False
    description: str = ""
    synthesis: Callable[[Any], Synthesis] | None = None
    from_noise: bool = False
    options_type: type | None = None
    baseline: bool = False
    color: str = ""


def clear_progress(folder: Path) -> None:
    """Remove what making a set leaves in its folder besides the set: recovery's live checkpoints
    and finished steps, CUDD's stage files and in-flight stage folders (all in the set by now)."""
    for path in [*folder.glob("recover_progress*.pt"), *folder.glob("step-*.pt"), *folder.glob("stage*")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


REGISTRY: dict[str, Method] = {}
# Every module of this package is imported on first use (each registers itself): these first, in
# the order of the tables' rows, then any other, by name. A new method is a new file here.
_FIRST = ("random_real", "sre2l", "cda", "cudd")
_loaded = False


def register(method: Method) -> Method:
    if method.name in REGISTRY and REGISTRY[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is registered already")
    REGISTRY[method.name] = method
    return method


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
        for module in [*_FIRST, *(m for m in found if m not in _FIRST)]:
            importlib.import_module(f"{__name__}.{module}")


def list_methods() -> list[str]:
    """The names of every registered method, in table order."""
    _load()
    return list(REGISTRY)


def get(name: str) -> Method:
    _load()
    if name not in REGISTRY:
        raise KeyError(f"unknown method {name!r}; choose one of {list(REGISTRY)} (or register one: "
                       f"see cda/methods/__init__.py)")
    return REGISTRY[name]


def color(name: str) -> str:
    """A method's colour in the figures; "" for a name nobody registered (the caller picks one)."""
    _load()
    return REGISTRY[name].color if name in REGISTRY else ""


def baseline() -> str:
    """The name of the baseline method (random real images)."""
    _load()
    return next(m.name for m in REGISTRY.values() if m.baseline)


def synthesis(name: str, options: Any) -> Synthesis | None:
    """The synthesis work of a method's set made with `options`; None for real images picked."""
    m = get(name)
    return None if m.synthesis is None else m.synthesis(options)


def label(name: str) -> str:
    """The display name of a method; the reference rows ("full", "teacher") have theirs here too, and
    a name nobody registered stands for itself."""
    _load()
    fixed = {"full": "Full data", "teacher": "Teacher"}
    return fixed.get(name) or (REGISTRY[name].label if name in REGISTRY else str(name))


def options_for(run, method: str, ipc: int) -> Any:
    """The frozen config that makes a method's set at one IPC, from the run's config sections."""
    return get(method).options(run, ipc)


def recover_for(run, method: str, ipc: int):
    """The recovery config of a method that synthesizes from noise (SRe2L, CDA) at one IPC."""
    from ..config import ConfigError, RecoverConfig

    cfg = options_for(run, method, ipc)
    if not isinstance(cfg, RecoverConfig):
        raise ConfigError(f"method {method!r} is not recovered from noise (its config is a {type(cfg).__name__}); "
                          f"use options_for")
    return cfg


def check_run(run) -> None:
    """Refuse a run config that names a method nobody registered (RunConfig.methods, method_eval)."""
    from ..config import ConfigError

    known = list_methods()
    for where, names in (("methods", run.methods), ("method_eval", [e[0] for e in run.method_eval])):
        unknown = [m for m in names if m not in known]
        if unknown:
            raise ConfigError(f"RunConfig.{where}: unknown {unknown}; choose from {known}")
