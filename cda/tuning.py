"""Tuning on the validation split, never on the test set (`cda tune`).

Three stages, one knob at a time around the preset's values:

1. the student protocol (EvalConfig: temperature, epochs, lr, batch size, crop scale, mixing), chosen
   on the random-real + soft-label baseline, since it must serve every method without favouring
   one; SRe2L and CDA sets are evaluated at every point too, to show how the CDA - SRe2L difference
   moves with each knob;
2. recovery (RecoverConfig: lr, r_bn, iterations, jitter, BatchNorm batch composition) for SRe2L
   and CDA under the tuned protocol, with the same grid for both. The recovery settings are shared
   by the two methods (as in the papers), so the winner of a knob is the value with the best mean
   over both; each method's own best is recorded beside it;
   1b. on request only (`--stages fast`; TuneConfig.fast is empty by default, so the committed tuning
   keeps its meaning): what makes students converge in fewer epochs, around the tuned protocol at the
   run's budget (pass a smaller one with --set eval.aug.epochs=...): one-cycle, a weight EMA, label
   smoothing on the teacher's side, larger learning rates and the batch size (FAST_GRID);
3. where "cudd" is among the methods, CUDD's own weights (CuddConfig: the adversarial term against
   the curriculum student and the L2 pull to the real initial image) under the tuned protocol and
   recovery, scored on CUDD alone.

Every point is scored by the students' mean top-1 on `DataConfig.validation` images held out of the
training set, over the seeds of `TuneConfig.seeds` (each seed draws the student, its views, the set's
noise and the random-real subset; RunConfig.seed_scope="all"). A knob's winner must beat the
preset's value by more than `TuneConfig.min_gain` points, else the preset's value stays. Where the
best value of a numeric knob is the grid's first or last, accuracy may still rise beyond it: the
run says so, and its provenance lists the knob under "at_edge", so that the grid can be extended.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from . import methods
from .config import ConfigError, CuddConfig, EvalConfig, RecoverConfig, RunConfig, apply_overrides, get_field, with_field
from .config.checks import _check_seeds
from .results import write_results

# ---------------------------------------------------------------------------------------------
# The stages, their grids and what `tune` tries.

PROTOCOL_GRID: tuple[tuple[str, tuple], ...] = (
    ("temperature", (1.0, 4.0, 20.0)),
    ("aug.epochs", (100, 200, 400)),
    ("lr", (0.0005, 0.001, 0.002)),
    ("aug.batch_size", (32, 64, 128)),
    ("aug.crop_scale", ((0.08, 1.0), (0.25, 1.0), (0.5, 1.0))),
    ("aug.mix", ("none", "cutmix", "mixup")),
)
RECOVERY_GRID: tuple[tuple[str, tuple], ...] = (
    ("lr", (0.05, 0.1, 0.25)),
    ("r_bn", (0.01, 0.05, 0.25)),
    ("iterations", (250, 500, 1000)),
    ("jitter", (0, 2, 4)),
    ("bn_groups", (1, 10)),
)
TUNE_STAGES = ("protocol", "recovery", "cudd", "fast")  # the stages and their TuneConfig grids
DEFAULT_STAGES = ("protocol", "recovery", "cudd")  # what `cda tune` runs unless --stages says otherwise
# Students that converge in fewer epochs (EvalConfig's options, off in every preset): chosen, like the
# protocol, on the baseline; larger learning rates are what smoothing and the EMA should make stable.
FAST_GRID: tuple[tuple[str, tuple], ...] = (
    ("schedule", ("cosine", "onecycle")),
    ("ema_decay", (0.0, 0.99, 0.999)),
    ("label_smoothing", (0.0, 0.1, 0.3)),
    ("lr", (0.002, 0.004, 0.008, 0.016)),
    ("aug.batch_size", (16, 32, 64)),
)
CUDD_GRID: tuple[tuple[str, tuple], ...] = (
    ("adv", (0.3, 1.0, 3.0)),
    ("l2", (0.3, 1.0, 3.0)),
)


@dataclass(frozen=True)
class TuneConfig:
    """What `tune` tries: the IPC of the sets, the seeds of every point, each stage's grid (dotted
    EvalConfig / RecoverConfig / CuddConfig fields and their values), and the smallest gain that
    moves a knob. An empty grid skips its stage."""

    ipc: int = 10
    seeds: tuple[int, ...] = (0, 1)
    protocol: tuple[tuple[str, tuple], ...] = PROTOCOL_GRID
    recovery: tuple[tuple[str, tuple], ...] = RECOVERY_GRID
    cudd: tuple[tuple[str, tuple], ...] = CUDD_GRID
    fast: tuple[tuple[str, tuple], ...] = ()  # FAST_GRID on request (--stages fast)
    methods: tuple[str, ...] = ("random", "sre2l", "cda", "cudd")
    # points of mean validation top-1: students of one cell differ by 1-3 points from seed to seed, so
    # a smaller gain over two seeds is noise, and chasing it tunes the protocol to the baseline's luck
    min_gain: float = 1.0

    def __post_init__(self):
        if self.ipc <= 0 or not self.seeds:
            raise ConfigError(f"TuneConfig: ipc={self.ipc} must be positive and seeds={self.seeds} not empty")
        _check_seeds(self, "seeds")
        for stage, cls in (("protocol", EvalConfig), ("recovery", RecoverConfig), ("cudd", CuddConfig),
                           ("fast", EvalConfig)):
            for knob, values in getattr(self, stage):
                with_field(cls(), knob, values[0])  # an unknown field is an error now, not after an hour


def _text(value: Any) -> str:
    return f"{value[0]:g}-{value[1]:g}" if isinstance(value, tuple) else f"{value:g}" if isinstance(
        value, float) else str(value)


def tune(cfg: RunConfig, tc: TuneConfig, out_csv: str | Path, progress: bool = True,
         log: Callable[[str], None] = print) -> dict:
    """Run the stages; write the grid's rows (long format, with `stage`, `knob`, `value_text`,
    `default` and `winner` columns) to `out_csv` and its provenance (the winners, the tuned
    overrides) beside it. Returns {"protocol": {knob: value}, "recovery": {knob: value},
    "overrides": {dotted RunConfig field: value}, "at_edge": [stage.knob], "rows": DataFrame}."""
    from .pipeline import Workspace
    from .studies import Context

    if not cfg.data.validation:
        raise ConfigError("cda tune chooses on the validation split, and this config holds none out: set "
                          "data.validation (e.g. --set data.validation=500 images per class)")
    cfg = replace(cfg, seed_scope="all", eval_seeds=tc.seeds, eval=replace(cfg.eval, split="val"))
    start = time.perf_counter()
    ws = Workspace(cfg, progress, log)
    cfg = ws.cfg  # speed settings resolved
    rows: list[dict] = []

    ctx = Context(ws)  # the studies' executor: its one seed loop, over tc.seeds (the run's eval_seeds now)

    def cells(stage, knob, value, default, method, e, options=None):
        out = [r for r in ctx.cells(method, tc.ipc, e, options, stage=stage, knob=knob, value_text=_text(value),
                                    default=default) if r["metric"] == "top1"]
        log(f"tune {stage}: {knob}={_text(value)} {method}: val top-1 "
            f"{sum(r['value'] for r in out) / len(out):.2f} over {len(out)} seeds")
        return out

    # Each method's options are moved by the stage whose grid is over their class (cda.methods'
    # options_type): RecoverConfig by "recovery", CuddConfig by "cudd".
    def tuned_by(section: str) -> list[str]:
        return [m for m in tc.methods if methods.get(m).options_type is type(getattr(cfg, section))]

    def trains_students(m: str) -> bool:
        s = methods.synthesis(m, methods.options_for(cfg, m, tc.ipc))
        return s is not None and s.student is not None

    # 1. the protocol, chosen on the baseline (random real images); a method that trains students
    # during synthesis (CUDD) is tuned in its own stage only: each of its points trains them
    cheap = [m for m in tc.methods if not trains_students(m)]
    protocol, here, edge = _stage("protocol", tc.protocol, {m: cfg.eval for m in cheap}, cfg.eval,
                                  [methods.baseline()],
                                  lambda knob, value, d, m, e: cells("protocol", knob, value, d, m, e), tc.min_gain,
                                  log)
    rows += here
    at_edge = [f"protocol.{k}" for k in edge]
    tuned_e = _with(cfg.eval, protocol)

    # 1b. faster convergence, around the tuned protocol (only where asked for)
    fast = {}
    if tc.fast:
        fast, here, edge = _stage("fast", tc.fast, {m: tuned_e for m in cheap}, tuned_e, [methods.baseline()],
                                  lambda knob, value, d, m, e: cells("fast", knob, value, d, m, e), tc.min_gain, log)
        rows += here
        at_edge += [f"fast.{k}" for k in edge]
        tuned_e = _with(tuned_e, fast)

    # 2. recovery, under the tuned protocol, the same grid for SRe2L and CDA
    synthesized = [m for m in tuned_by("recover") if m in cheap]
    recovery, here, edge = _stage("recovery", tc.recovery, {m: methods.options_for(cfg, m, tc.ipc) for m in synthesized},
                                  cfg.recover, synthesized,
                                  lambda knob, value, d, m, o: cells("recovery", knob, value, d, m, tuned_e, o),
                                  tc.min_gain, log, own_best=True)
    rows += here
    at_edge += [f"recovery.{k}" for k in edge]

    # 3. CUDD's weights, under the tuned protocol and recovery
    cudd = {}
    own = tuned_by("cudd")
    if own and tc.cudd:
        tuned = replace(cfg, recover=_with(cfg.recover, recovery), eval=tuned_e)
        cudd, here, edge = _stage("cudd", tc.cudd, {m: methods.options_for(tuned, m, tc.ipc) for m in own}, cfg.cudd, own,
                                  lambda knob, value, d, m, o: cells("cudd", knob, value, d, m, tuned_e, o),
                                  tc.min_gain, log)
        rows += here
        at_edge += [f"cudd.{k}" for k in edge]

    df = pd.DataFrame(rows)
    chosen = {"protocol": protocol, "fast": fast, "recovery": recovery, "cudd": cudd}  # fast's overrides win
    presets = {"protocol": ("eval", cfg.eval), "fast": ("eval", cfg.eval), "recovery": ("recover", cfg.recover),
               "cudd": ("cudd", cfg.cudd)}
    moved = {stage: {k: v for k, v in chosen[stage].items() if v != get_field(presets[stage][1], k)} for stage in chosen}
    df["winner"] = [r.value_text == (("tuned" if moved[r.stage] else "preset") if r.knob == "combined"
                                     else _text(chosen[r.stage][r.knob])) for r in df.itertuples()]
    overrides = {f"{presets[stage][0]}.{k}": v for stage in chosen for k, v in moved[stage].items()}
    apply_overrides(cfg, {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()})  # must apply
    write_results(df, out_csv, cfg, time.perf_counter() - start, cfg.device,
                  extra={"tune": {"ipc": tc.ipc, "seeds": list(tc.seeds), "min_gain": tc.min_gain,
                                  "protocol_grid": [[k, [_text(v) for v in vs]] for k, vs in tc.protocol],
                                  "recovery_grid": [[k, [_text(v) for v in vs]] for k, vs in tc.recovery],
                                  "cudd_grid": [[k, [_text(v) for v in vs]] for k, vs in tc.cudd],
                                  **({"fast_grid": [[k, [_text(v) for v in vs]] for k, vs in tc.fast]}
                                     if tc.fast else {})},
                         "winners": {"protocol": {k: _text(v) for k, v in protocol.items()},
                                     "recovery": {k: _text(v) for k, v in recovery.items()},
                                     "cudd": {k: _text(v) for k, v in cudd.items()},
                                     **({"fast": {k: _text(v) for k, v in fast.items()}} if tc.fast else {})},
                         "overrides": {k: _text(v) for k, v in overrides.items()},
                         "at_edge": at_edge,
                         "cost": ws.cache.cost()})
    return {"protocol": protocol, "fast": fast, "recovery": recovery, "cudd": cudd, "overrides": overrides, "at_edge": at_edge,
            "rows": df}


def _with(cfg: Any, values: dict[str, Any]) -> Any:
    """`cfg` with every dotted field of `values` set."""
    for knob, value in values.items():
        cfg = with_field(cfg, knob, value)
    return cfg


def _stage(name: str, grid, bases: dict[str, Any], preset: Any, scored: list[str],
           run: Callable[..., list[dict]], min_gain: float, log: Callable[[str], None],
           own_best: bool = False) -> tuple[dict, list[dict]]:
    """One tuning stage: each knob of `grid` moved alone around each method's config in `bases`
    ({method: config}), its winner scored on the `scored` methods against `preset`'s value; then,
    where knobs moved, the preset and the winners together, since knobs chosen one at a time need not
    add up. `run(knob, value, is_default, method, config)` evaluates one point. Returns the chosen
    values, the rows and the knobs whose best value is at the grid's edge."""
    chosen, rows, edges = {}, [], []
    for knob, values in grid:
        default, here = get_field(preset, knob), []
        for value in values:
            for method, base in bases.items():
                here += run(knob, value, value == default, method, with_field(base, knob, value))
        score = _scores(here, scored)
        chosen[knob] = _pick(score, default, min_gain)
        side = _edge(values, score, default)
        if side:
            edges.append(knob)
            log(f"  {knob}: the best value {_text(_pick(score, default, -math.inf))} is the grid's {side}; "
                f"accuracy may still rise beyond it (extend the grid)")
        for method in bases if own_best else ():
            log(f"  {knob}: {method}'s own best {_text(_winner(here, default, [method], min_gain))}")
        rows += here
    moved = {k: v for k, v in chosen.items() if v != get_field(preset, k)}
    if moved:
        both = []
        for label in ("preset", "tuned"):
            for method, base in bases.items():
                both += run("combined", label, label == "preset", method, _with(base, moved) if label == "tuned" else base)
        rows += both
        if _winner(both, "preset", scored, min_gain) == "preset":
            log(f"the knobs' winners together do not beat the preset's {name} settings: they stay")
            chosen = {k: get_field(preset, k) for k in chosen}
    log(f"tuned {name}: " + ", ".join(f"{k}={_text(v)}" for k, v in chosen.items()))
    return chosen, rows, edges


def _edge(values: tuple, score: dict[str, float], default: Any) -> str | None:
    """"largest" or "smallest" where a numeric grid of three or more values is best at that end
    alone; None inside the grid, for a tie (e.g. batch sizes above the set's size: no direction to
    extend in) or for categorical values."""
    if len(values) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    top = max(score.values())
    if sum(s == top for s in score.values()) > 1:
        return None
    best = _pick(score, default, -math.inf)
    return "largest" if best == max(values) else "smallest" if best == min(values) else None


def _winner(rows: list[dict], default: Any, methods: list[str], min_gain: float) -> Any:
    """The knob value with the best mean validation top-1 over `methods` and seeds; the default
    unless the best beats it by more than `min_gain` points."""
    return _pick(_scores(rows, methods), default, min_gain)


def _pick(score: dict[str, float], default: Any, min_gain: float) -> Any:
    """`_winner` on scores already averaged (`_scores`)."""
    best = max(score, key=score.get)
    base = _text(default)
    if base in score and not score[best] > score[base] + min_gain:
        return default
    return _parse(best, default)


def _scores(rows: list[dict], methods: list[str]) -> dict[str, float]:
    """Mean validation top-1 over `methods` and seeds, per value (as text)."""
    means: dict[str, list[float]] = {}
    for r in rows:
        if r["method"] in methods:
            means.setdefault(r["value_text"], []).append(r["value"])
    return {k: sum(v) / len(v) for k, v in means.items()}


def _parse(text: str, like: Any) -> Any:
    """A grid value back from its text, typed like the default."""
    if isinstance(like, tuple):
        return tuple(float(x) for x in text.split("-"))
    if isinstance(like, bool):
        return text == "True"
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def sensitivity(df: pd.DataFrame, a: str = "cda", b: str = "sre2l") -> pd.DataFrame:
    """For every knob of a `tune` grid: the paired difference a - b at each value, with its 95%
    interval (cda.verdicts.knob_sensitivity), the default marked as step 0; knobs whose rows lack a
    or b are left out."""
    from .verdicts import knob_sensitivity

    parts = []
    for (stage, knob), g in df.groupby(["stage", "knob"], sort=False):
        if not {a, b} <= set(g.method):
            continue  # e.g. CUDD's weights: only CUDD's sets vary
        order = list(dict.fromkeys(g.value_text))
        g = g.assign(position=g.value_text.map(order.index))
        default = int(g[g["default"]].position.iloc[0]) if g["default"].any() else None
        t = knob_sensitivity(g, "position", default, a, b)
        t["value_text"] = t.position.map(lambda p, order=order: order[int(p)])
        t["stage"], t["knob"] = stage, knob
        parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def best_mean(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of validation top-1 per stage, knob, value and method (the grid as a table)."""
    g = df[df.metric == "top1"].groupby(["stage", "knob", "value_text", "method"], sort=False)["value"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["std"] = out["std"].fillna(math.nan)
    return out
