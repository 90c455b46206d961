"""CUDD: synthesis in stages from real images picked by the teacher and a curriculum student, with
an adversarial term against that student and an L2 term to the initial image (cda.cudd)."""
from __future__ import annotations

from ..config import CuddConfig
from . import Inputs, Method, Synthesis, register


def _make(inputs: Inputs, cfg: CuddConfig):
    from ..cudd import distill_cudd

    return distill_cudd(inputs.teacher, inputs.train, inputs.info, cfg, inputs.device, inputs.progress,
                        progress_dir=inputs.folder, speeds=inputs.speeds)


def _synthesis(c: CuddConfig) -> Synthesis:
    """The stages together hold the IPC; a curriculum student trains on the images of every stage but
    the last, and runs in each recovery step (the adversarial term)."""
    return Synthesis(c.recover, c.student, c.student_epochs * sum(c.stages[:-1]))


METHOD = register(Method(name="cudd", label="CUDD", options=lambda run, ipc: run.cudd_for(ipc), make=_make,
                         description="staged synthesis from real images (run.cudd)", synthesis=_synthesis,
                         options_type=CuddConfig, color="C3"))
