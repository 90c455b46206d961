"""Where and how the work runs, apart from what it computes: the device, TF32, the CPU threads, and
each stage's memory layout, CPU precision and compilation (`Speeds`).

Nothing here changes a global setting until the caller enters `Runtime.applied()`, which restores
them on exit; so opening a workspace or a study, or resolving a device, leaves PyTorch as it was.

Why each field is (not) in any cache key:
- device: not in the key. The same config gives the same artifact on any device up to kernel
  rounding; the tests compare CPU and CUDA results within tolerances (tests/test_device_paths.py).
- tf32: not in the key. CUDA fp32 work has always run with TF32 on (the official code's setting
  for cuDNN convolutions); a run that turns it off computes the same artifact at higher precision.
- threads: not in the key: the thread count changes the order of float sums only.
- speeds (per stage: channels_last, amp_cpu, compile): in the key when not the default. They pick
  other kernels and another rounding (bf16 on the CPU most of all), so the artifact differs; a
  stage's non-default values are merged into its config's hashed dict (cda.cache.stamped), which
  gives the bytes these fields hashed to when they sat in the stage's config (the keys did not move).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

SPEED_FIELDS = ("channels_last", "amp_cpu", "compile")


@dataclass(frozen=True)
class Speed:
    """One stage's speed settings (cda.speed chooses them per machine under RunConfig.speed="auto")."""

    channels_last: bool = False  # channels_last tensors and model
    amp_cpu: bool = False  # bf16 autocast on the CPU too (pays where the CPU has AVX512-BF16 or AMX)
    compile: bool = False  # torch.compile the model (students only)

    def hashed(self) -> dict:
        """The non-default fields: what this stage adds to its config's cache key."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def merged(self, cfg) -> dict:
        """`cfg`'s hashed dict with these settings in it: the stage's cache-key payload."""
        from .config.io import _hashed

        return {**_hashed(cfg), **self.hashed()}


@dataclass(frozen=True)
class Speeds:
    """The speed settings of each stage of a run. CUDD's own recovery and curriculum students take
    the run's recovery and student settings unless set (as CUDD's configs take the run's)."""

    teacher: Speed = field(default_factory=Speed)  # squeeze: the teacher and the full-data model
    recover: Speed = field(default_factory=Speed)  # SRe2L / CDA recovery
    student: Speed = field(default_factory=Speed)  # every student's training
    cudd_recover: Speed | None = None
    cudd_student: Speed | None = None

    def __post_init__(self):
        from .config.checks import _check

        for name in ("teacher", "recover", "cudd_recover"):
            s = getattr(self, name)
            _check(s is None or not s.compile, f"Speeds.{name}.compile=True: only students are compiled; "
                                               f"set speeds.student.compile")

    def of(self, stage: str) -> Speed:
        """A stage's settings: "teacher", "recover", "student", "cudd_recover" or "cudd_student"."""
        own = getattr(self, stage)
        return own if own is not None else getattr(self, stage.removeprefix("cudd_"))


@dataclass(frozen=True)
class Runtime:
    device: str = "cpu"
    tf32: bool = True  # CUDA fp32 matmuls and convolutions on TF32 tensor cores
    threads: int | None = None  # torch's intra-op CPU threads (None: leave as they are)
    speeds: Speeds = field(default_factory=Speeds)

    @contextlib.contextmanager
    def applied(self) -> Iterator[Runtime]:
        """TF32 (on CUDA) and the thread count set for the block, and restored after it."""
        import torch

        cuda = self.device.startswith("cuda")
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_num_threads())
        try:
            if cuda:
                torch.backends.cuda.matmul.allow_tf32 = self.tf32
                torch.backends.cudnn.allow_tf32 = self.tf32
            if self.threads:
                torch.set_num_threads(self.threads)
            yield self
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
            if torch.get_num_threads() != saved[2]:
                torch.set_num_threads(saved[2])


PLAIN = Speed()  # the plain settings: the default of every stage function's `speed`
PLAIN_SPEEDS = Speeds()
