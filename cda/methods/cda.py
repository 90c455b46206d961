"""CDA: SRe2L's synthesis under a crop curriculum (the lower scale bound falls during recovery)."""
from __future__ import annotations

from dataclasses import replace

from ..config import RecoverConfig
from . import Method, Synthesis, register
from .sre2l import recover_from_noise


def options(run, ipc: int) -> RecoverConfig:
    return replace(run.recover, ipc=ipc, curriculum=run.curriculum)


METHOD = register(Method(name="cda", label="CDA", options=options, make=recover_from_noise, snapshots=True,
                         description="SRe2L with the crop curriculum run.curriculum", synthesis=Synthesis,
                         from_noise=True, options_type=RecoverConfig, color="C2"))
