"""The papers' own settings (results/paper/official_settings.csv) held against the presets.

One row per (preset, method, field): the official value and where it was read (a script's file and
line at a commit, a paper's table, a maintainer's reply), cda's value, and where they differ, why
(`departure`). `field` is a dotted path into the configs a run builds for that method:

- `data.*`, `squeeze.*`, `ipcs`, `students`: the run's own sections;
- `recover.*`: the method's recovery config (SRe2L, CDA: `cda.methods.options_for`; CUDD: `cudd_for(ipc).recover`);
- `eval.*`: the method's student recipe (`RunConfig.eval_for`), `relabel.*` its stored labels;
- `cudd.*`: CUDD's config at the preset's largest IPC (`cudd_for`);
- `code:*`: behaviour that is code, not a field (gradient accumulation, padded crops): never equal
  to a config value, so such a row always names its departure or states the match in `cda`.

`problems()` lists every row whose official value differs from the preset without a departure, whose
`cda` column is stale, or whose departure names a difference that is not there.
"""
from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from .config import RunConfig, get_field, preset
from .methods import recover_for
from .paths import paper_file

COLUMNS = ["preset", "method", "field", "official", "source", "cda", "departure"]
PRESETS = ("paper", "tiny_imagenet", "imagenet21k", "cifar10", "cifar100")
METHODS = ("random", "sre2l", "cda", "cudd")


def read(folder: str | os.PathLike | None = None) -> pd.DataFrame:
    path = paper_file("official_settings", folder)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {COLUMNS}")
    return df


def sections(cfg: RunConfig, method: str) -> dict[str, Any]:
    """The configs a run builds for one method, by the first part of a row's field."""
    ipc = max(cfg.ipcs)
    out: dict[str, Any] = {"data": cfg.data, "squeeze": cfg.squeeze, "ipcs": cfg.ipcs,
                           "students": cfg.students or (cfg.eval.arch,),
                           "eval": cfg.eval_for(method), "relabel": cfg.relabel_for(cfg.eval_for(method))}
    if method in ("sre2l", "cda"):
        out["recover"] = recover_for(cfg, method, ipc)
    if method == "cudd":
        out["cudd"] = cfg.cudd_for(ipc)
        out["recover"] = out["cudd"].recover
    return out


def value(cfg: RunConfig, method: str, field: str) -> Any:
    """cda's value of a row's field for `method` under `cfg`."""
    head, _, rest = field.partition(".")
    parts = sections(cfg, method)
    if head not in parts:
        raise KeyError(f"field {field!r}: no section {head!r} for method {method!r}; known: {sorted(parts)}")
    return get_field(parts[head], rest) if rest else parts[head]


def parse(text: str) -> Any:
    """A CSV value as data: YAML scalars and lists (`[0.08, 1.0]`, `true`, `resnet18`)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _plain(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return [_plain(v) for v in x]
    return x


def same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def show(x: Any) -> str:
    """A config value as the CSV writes it."""
    import yaml

    return yaml.safe_dump(_plain(x), default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def problems(df: pd.DataFrame | None = None, build=preset) -> list[str]:
    """Every row that does not hold: `build(name)` makes a preset's RunConfig (tests pass a patched one)."""
    df = read() if df is None else df
    out, configs = [], {}
    for r in df.itertuples():
        where = f"{r.preset}/{r.method}/{r.field}"
        if r.field.startswith("code:"):
            if not r.departure and r.official != r.cda:
                out.append(f"{where}: code behaviour {r.cda!r} differs from the official {r.official!r} "
                           f"and no departure says why")
            continue
        if r.preset not in configs:
            configs[r.preset] = build(r.preset)
        try:
            mine = value(configs[r.preset], r.method, r.field)
        except (KeyError, AttributeError) as err:
            out.append(f"{where}: cannot be read from the preset ({err})")
            continue
        if not same(parse(r.cda), mine):
            out.append(f"{where}: the csv's cda value {r.cda!r} is stale; the preset holds {show(mine)}")
        if r.official == "":
            if not r.departure:
                out.append(f"{where}: no official value and no departure saying so")
        elif same(parse(r.official), mine):
            if r.departure:
                out.append(f"{where}: equals the official {r.official!r} but names a departure: drop it")
        elif not r.departure:
            out.append(f"{where}: the preset holds {show(mine)}, the official value is {r.official!r} "
                       f"({r.source}), and no departure says why")
    return out


def departures_markdown(df: pd.DataFrame | None = None) -> str:
    """The README's table of departures: one line per (field, official, cda, why), with the presets and
    methods it applies to."""
    df = read() if df is None else df
    dep = df[df.departure != ""]
    rows = []
    for (field, official, mine, why), g in dep.groupby(["field", "official", "cda", "departure"], sort=False):
        where = "; ".join(f"{p}: {', '.join(dict.fromkeys(h.method))}" for p, h in g.groupby("preset", sort=False))
        rows.append(f"| {where} | `{field}` | {official or '(none found)'} | {mine} | {why} |")
    head = "| presets: methods | field | official | cda | why |\n|---|---|---|---|---|\n"
    return head + "\n".join(rows)
