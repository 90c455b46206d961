"""torch.distributed helpers for `torchrun`: one process per device, each doing a disjoint share.

`torchrun --nproc_per_node=N -m cda recover ...` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; `init_from_env` starts the process group from them (nccl on CUDA, gloo on CPU) and does
nothing in a plain single-process run, so the same code serves both.
"""
from __future__ import annotations

import os
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: str = "cpu", backend: str | None = None) -> tuple[int, int, str]:
    """Join the process group described by torchrun's environment variables.

    Returns (rank, world size, device); on CUDA each process takes the GPU `cuda:LOCAL_RANK`.
    Without WORLD_SIZE > 1 (a plain run) nothing is initialized and (0, 1, device) comes back.
    """
    world = env_world_size()
    if world <= 1:
        return 0, 1, device
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world}, but this PyTorch build has no torch.distributed")
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={world} but ${name} is not set; launch with torchrun "
                                   f"(torchrun --nproc_per_node={world} -m cda ...)")
        dist.init_process_group(backend or ("nccl" if device.startswith("cuda") else "gloo"))
    return dist.get_rank(), dist.get_world_size(), device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Round-robin share of `items` for one rank: items rank, rank + world, ... (disjoint, covering)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    return list(items[rank::world_size])


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def part(n: int, rank: int, world_size: int) -> slice:
    """This rank's contiguous share of a batch of n (as torch.tensor_split cuts it): data-parallel
    training gives each rank a part of every global batch, so the batches, and the augmentation
    drawn for them, are those of a single-process run."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel in a torchrun run (gradients averaged over ranks), else the model.
    On CUDA, BatchNorm layers become SyncBatchNorm so that they see the global batch's statistics, as
    in one process; on the CPU (gloo) each rank normalizes with its own part's statistics."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics): under gloo each rank updated
    them from its own part of the last batch, and later steps (CUDD's filters) need one model."""
    if not is_distributed():
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, 0)


def sum_disjoint(t: torch.Tensor) -> torch.Tensor:
    """Combine tensors that each rank filled in disjoint places (zeros elsewhere): an all-reduce sum,
    which is exact for such tensors in any dtype. Every rank gets the whole tensor."""
    if not is_distributed():
        return t
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    buf = t.to(device).contiguous()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
