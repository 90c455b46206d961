"""Frozen, validated configuration shared by the command line, the notebooks and the tests.

The schema (`schema`), the named presets (`presets`), the seed policy (`seeds`) and configs as data
(`io`: dicts, overrides, hashes); every public name is re-exported here, so `from cda.config import X`
is the one import. Nothing here imports torch or any module of cda above it (tests/test_layers.py).
"""
from .checks import CROP_SCHEDULES, LABEL_MODES, MIX_KINDS, OPTIMIZERS, ConfigError, added, get_field, with_field
from .io import _hashed as _hashed
from .io import apply_overrides, config_hash, from_dict, parse_override, to_dict
from .presets import PRESETS, SMALL_BATCH, preset
from .schema import (
    SPEEDS,
    AugConfig,
    CuddConfig,
    CurriculumConfig,
    DataConfig,
    EvalConfig,
    RecoverConfig,
    RelabelConfig,
    RunConfig,
    SqueezeConfig,
    full_data_recipe,
)
from .seeds import SEED_PARTS, SEED_SCOPES, derive_seed, seeded_eval, seeded_options

__all__ = ["CROP_SCHEDULES", "LABEL_MODES", "MIX_KINDS", "OPTIMIZERS", "ConfigError", "added", "get_field",
           "with_field", "apply_overrides", "config_hash", "from_dict", "parse_override", "to_dict", "PRESETS",
           "SMALL_BATCH", "preset", "SPEEDS", "AugConfig", "CuddConfig", "CurriculumConfig", "DataConfig",
           "EvalConfig", "RecoverConfig", "RelabelConfig", "RunConfig", "SqueezeConfig", "SEED_PARTS",
           "SEED_SCOPES", "derive_seed", "seeded_eval", "seeded_options", "full_data_recipe"]
