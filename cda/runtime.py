"""Where and how the work runs, apart from what it computes: the device, TF32 and the CPU threads.

Nothing here changes a global setting until the caller enters `Runtime.applied()`, which restores
them on exit; so opening a workspace or a study, or resolving a device, leaves PyTorch as it was.

Why each field is (not) in any cache key:
- device: not in the key. The same config gives the same artifact on any device up to kernel
  rounding; the tests compare CPU and CUDA results within tolerances (tests/test_device_paths.py).
- tf32: not in the key. CUDA fp32 work has always run with TF32 on (the official code's setting
  for cuDNN convolutions); a run that turns it off computes the same artifact at higher precision.
- threads: not in the key: the thread count changes the order of float sums only.
The per-stage speed settings (channels_last, bf16 autocast on the CPU, torch.compile) still sit in
the stages' configs, where a non-default value is hashed: they change the float results (other
kernels, other rounding) and so stay in the key of what they compute.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Runtime:
    device: str = "cpu"
    tf32: bool = True  # CUDA fp32 matmuls and convolutions on TF32 tensor cores
    threads: int | None = None  # torch's intra-op CPU threads (None: leave as they are)

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
