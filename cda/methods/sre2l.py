"""SRe2L: images recovered from noise by matching the teacher's BatchNorm statistics plus its
cross-entropy, under RandomResizedCrop views of a fixed scale range."""
from __future__ import annotations

from dataclasses import replace

from ..config import CurriculumConfig, RecoverConfig
from . import Inputs, Method, Synthesis, register


def recover_from_noise(inputs: Inputs, cfg: RecoverConfig):
    """SRe2L's and CDA's synthesis, with checkpoints in the artifact's folder and finished slots in
    the shared store."""
    from ..distributed import rank_and_world
    from ..recover import recover

    rank, world = rank_and_world()  # (0, 1) outside torchrun
    return recover(inputs.teacher, inputs.info, cfg, inputs.device, inputs.progress, inputs.snapshot_at,
                   desc=f"recover ipc{cfg.ipc}", progress_dir=inputs.folder, store_dir=inputs.store,
                   rank=rank, world_size=world, speed=inputs.speeds.recover)


def options(run, ipc: int) -> RecoverConfig:
    # No curriculum: the crop's lower bound stays at the curriculum's end value throughout.
    return replace(run.recover, ipc=ipc, curriculum=CurriculumConfig(end_scale=run.curriculum.end_scale))


METHOD = register(Method(name="sre2l", label="SRe2L", options=options, make=recover_from_noise, snapshots=True,
                         description="BN-statistics matching + CE from noise (run.recover)", synthesis=Synthesis,
                         from_noise=True, options_type=RecoverConfig, color="C1"))
