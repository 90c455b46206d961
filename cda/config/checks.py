"""What every config module shares: the error type, the field checks, `added` fields, dotted-field
access. Imports nothing of cda."""
from __future__ import annotations

from dataclasses import field, fields, replace
from typing import Any

CROP_SCHEDULES = ("none", "step", "linear", "cosine")
MIX_KINDS = ("none", "mixup", "cutmix")
LABEL_MODES = ("online", "stored", "hard")
OPTIMIZERS = ("adamw", "sgd")


class ConfigError(ValueError):
    """A configuration field has a value that cannot work."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_scale(name: str, scale: tuple[float, float]) -> None:
    lo, hi = scale
    _check(0 < lo <= 1 and 0 < hi <= 1, f"{name}={scale}: crop scales must lie in (0, 1]")
    _check(lo <= hi, f"{name}={scale}: the lower scale must not exceed the upper one")


def added(default: Any) -> Any:
    """A field added after artifacts were cached under the old configs. While it holds `default`
    (which must reproduce the old behaviour) it is left out of the config hash, so those artifacts
    keep their keys; any other value is hashed as usual."""
    return field(default=default, metadata={"hash_default": False})


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(value > 0, f"{type(obj).__name__}.{name}={value}: must be positive")


def _check_seeds(obj: Any, *names: str) -> None:
    """Seed fields (an int, or a tuple of them, which must then differ): non-negative integers."""
    for name in names:
        value = getattr(obj, name)
        seeds = value if isinstance(value, tuple) else (value,)
        _check(all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in seeds),
               f"{type(obj).__name__}.{name}={value}: seeds must be non-negative integers")
        _check_distinct(obj, name)


def _check_distinct(obj: Any, name: str) -> None:
    """A list field whose repeated values would only repeat the same work and count it twice."""
    value = getattr(obj, name)
    if isinstance(value, tuple):
        repeated = sorted({v for v in value if value.count(v) > 1}, key=str)
        _check(not repeated, f"{type(obj).__name__}.{name}={value}: {repeated} given more than once; "
                             f"give each value once")


def with_field(cfg: Any, knob: str, value: Any) -> Any:
    """A copy of `cfg` with the dotted field `knob` set to `value` (validated)."""
    head, _, rest = knob.partition(".")
    names = {f.name for f in fields(cfg)}
    if head not in names:
        raise ConfigError(f"tuning knob {knob!r}: {type(cfg).__name__} has no field {head!r}; it has {sorted(names)}")
    return replace(cfg, **{head: with_field(getattr(cfg, head), rest, value) if rest else value})


def get_field(cfg: Any, knob: str) -> Any:
    """The value of the dotted field `knob` of `cfg`."""
    for part in knob.split("."):
        cfg = getattr(cfg, part)
    return cfg

