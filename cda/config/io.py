"""Configs as data: to and from JSON-ready dicts (with type coercion), dotted overrides, and the
stable hash that names every cached artifact."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from .checks import ConfigError


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a (nested) config dataclass from `to_dict` output, rejecting unknown keys."""
    if hasattr(cls, "_upgrade"):  # fields that moved elsewhere since configs were saved
        data = cls._upgrade(data)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    data = {_renamed(cls).get(k, k): v for k, v in data.items()}  # configs saved under a field's old name
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{cls.__name__}.{name}")
    return cls(**kwargs)


def _renamed(cls: type) -> dict[str, str]:
    """{old name: field} of the fields of `cls` renamed since configs were saved (metadata "was")."""
    return {f.metadata["was"]: f.name for f in fields(cls) if "was" in f.metadata}


def _current_key(cls: type, key: str) -> str:
    """A dotted override key with any renamed field replaced by its current name ('cda.milestone' ->
    'curriculum.milestone')."""
    out = []
    for part in key.split("."):
        if is_dataclass(cls):
            part = _renamed(cls).get(part, part)
            hint = typing.get_type_hints(cls).get(part)
            cls = next((a for a in (hint, *typing.get_args(hint)) if is_dataclass(a)), None)
        out.append(part)
    return ".".join(out)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(hint, value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args and (len(args) == 2 and args[1] is Ellipsis) else None
        items = list(value)
        if inner is None and args and len(args) != len(items):
            raise ConfigError(f"{where}: expected {len(args)} values, got {items!r}")
        return tuple(_coerce(inner or args[i], v, where) for i, v in enumerate(items))
    if origin in (typing.Union, getattr(types, "UnionType", None)):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} does not fit {hint}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def apply_overrides(cfg: Any, overrides: dict[str, Any] | None) -> Any:
    """Replace dotted fields: {"recover.lr": 0.1, "ipcs": [1, 10]}. Values are validated."""
    if not overrides:
        return cfg
    data = to_dict(cfg)
    for key, value in overrides.items():
        key = _current_key(type(cfg), key)
        key = getattr(type(cfg), "_moved", {}).get(key, key)  # 'recover.channels_last' -> 'speeds.recover...'
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if node.get(part) is None and key.startswith("speeds."):  # an unset CUDD stage: the run's, then own
                node[part] = dict(node[part.removeprefix("cudd_")])
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a config section")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"override {key!r}: no field {parts[-1]!r}; known: {sorted(node)}")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


def parse_override(text: str) -> tuple[str, Any]:
    """'recover.lr=0.1' -> ('recover.lr', 0.1); values are read as YAML scalars or lists."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. recover.lr=0.1")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)


def _hashed(cfg: Any) -> Any:
    """to_dict, without the `added` fields that hold their defaults."""
    if not is_dataclass(cfg):
        return json.loads(json.dumps(cfg))
    out = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata.get("hash_default", True) or value != f.default:
            out[f.name] = _hashed(value)
    return out


def config_hash(*parts: Any) -> str:
    """A short stable hash of one or more configs (or plain JSON values)."""
    payload = json.dumps([_hashed(p) if is_dataclass(p) else p for p in parts], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]

