"""Verdicts on the papers' claims: statistics over seeds, the field's metrics, and one row per claim.

Every number here is computed from cda's long-format results (cda.results.COLUMNS: one row per run
and metric, `seed` naming the run; see RunConfig.seeded for what a seed varies):

- `summarize`: mean ± std over seeds per cell, and for pairs of methods the paired difference (the
  same seed on both sides) with its t-based confidence interval (`paired_difference`);
- `field_metrics`: DD-Ranking's IOR and HLR for every set, as fractions (cda.evaluator);
- `verdict`: holds / does not hold / inconclusive from the sign of a confidence interval (relative
  to a claim's margin, 0 by default);
- `Claim`, `verdict_table`: a claim of the two papers that a notebook tests (each study declares its
  own, cda.studies; they come here as data), the paper's number (read from results/paper/, never
  typed here), ours with its interval, and the verdict;
  `study_verdicts` gives one study's rows (a notebook's), `by_claim` one row per claim. A claim may
  state a size (`margin`: a − b > margin) and compare with a reference level rather than paired runs
  (`b_level`, e.g. the full-data row of the same student);
- `cell_statistics`: the verdict table's columns beside the t-interval (cda.paired_stats, as rliable
  computes them): per cell `boot_low`, `boot_high` (stratified bootstrap interval of the mean
  difference), `poi`, `poi_low`, `poi_high` (probability of improvement and its interval), `p_value`
  (paired t-test), `p_holm` (Holm across the claim's cells) and `verdict_holm`; by_claim counts
  `holds_holm` and `does_not_hold_holm`. The verdict itself stays the t-interval's;
- `protocol_table`, `protocol_verdicts`: the verdicts under the tuned students and under a fixed second
  protocol (cda.config.protocols) side by side, each cell marked "protocol-dependent" where they differ;
- `knob_sensitivity`: how a difference (CDA − SRe2L by default) moves when one protocol knob moves
  one step either way from its default.

Accuracies are in percent, as in the rest of cda; differences of accuracies are in percentage points.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .ddranking import hard_label_recovery, improvement_over_random, label_robust_score
from .paths import paper_folder
from .results import COLUMNS

HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
ONE_SEED = f"{INCONCLUSIVE} (1 seed)"


# ---------------------------------------------------------------------------------------------
# Statistics

def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t distribution with `df` degrees of freedom (scipy.stats.t.ppf)."""
    from scipy import stats

    if not 0 < p < 1 or df < 1:
        raise ValueError(f"t_quantile(p={p}, df={df}): p must lie in (0, 1) and df be at least 1")
    return float(stats.t.ppf(p, df))


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """The difference a − b over paired runs: a[i] and b[i] are measured with the same seed i.

    Returns `mean` (the mean of the per-seed differences), `std` (their sample standard deviation,
    ddof 1), `n` (the number of pairs), `se` = std / sqrt(n), `t` (the two-sided t quantile with n − 1
    degrees of freedom) and the interval `ci_low`, `ci_high` = mean ∓ t · se at `confidence`. With one
    pair, std, se, t and the interval are NaN: one seed says nothing about the spread.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_difference: a and b must be two equally long lists of values, one per seed; "
                         f"got shapes {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("paired_difference: no pairs; give at least one value per side")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired_difference: a or b holds NaN or infinite values; drop the failed runs first")
    if not 0 < confidence < 1:
        raise ValueError(f"paired_difference: confidence={confidence} must lie in (0, 1), e.g. 0.95")
    d = a - b
    n = len(d)
    out = {"mean": float(d.mean()), "std": math.nan, "n": n, "se": math.nan, "t": math.nan,
           "ci_low": math.nan, "ci_high": math.nan, "confidence": confidence}
    if n > 1:
        std = float(d.std(ddof=1))
        se = std / math.sqrt(n)
        t = t_quantile(0.5 + confidence / 2, n - 1)
        out.update(std=std, se=se, t=t, ci_low=out["mean"] - t * se, ci_high=out["mean"] + t * se)
    return out


def verdict(claim_sign: int, ci: tuple[float, float] | Mapping, n: int | None = None, margin: float = 0.0) -> str:
    """Holds if the interval excludes `margin` (0 by default) on the claimed side (claim_sign +1:
    a − b > margin, −1: a − b < margin), does not hold if it excludes it on the other side,
    inconclusive otherwise (an interval touching it included). `ci` is (low, high) or a
    `paired_difference` result (whose `n` is then used); with one seed the interval is undefined and
    the verdict says so; with none, "not measured"."""
    if isinstance(ci, Mapping):
        n = ci.get("n", n) if n is None else n
        ci = (ci["ci_low"], ci["ci_high"])
    if claim_sign not in (1, -1):
        raise ValueError(f"verdict: claim_sign={claim_sign}; give +1 (claimed a > b) or -1 (claimed a < b)")
    if n == 0:
        return NOT_MEASURED
    low, high = (float(v) for v in ci)
    if math.isnan(low) or math.isnan(high):
        return ONE_SEED if n in (None, 1) else INCONCLUSIVE
    if low > high:
        raise ValueError(f"verdict: the interval ({low}, {high}) has its ends swapped")
    low, high = low - margin, high - margin
    if claim_sign * low > 0 and claim_sign * high > 0:
        return HOLDS
    if claim_sign * low < 0 and claim_sign * high < 0:
        return FAILS
    return INCONCLUSIVE


FRACTIONS = ("ior", "hlr", "lrs", "spread", "coverage", "density")  # metrics given as fractions, not percent


def _fmt_diff(d: Mapping, decimals: int = 2) -> str:
    """'+1.20 [-0.30, +2.70] (5 seeds)', or '+1.20 (1 seed)'."""
    if not d or not d.get("n"):
        return ""
    f = f"{{:+.{decimals}f}}".format
    if math.isnan(d["ci_low"]):
        return f"{f(d['mean'])} ({d['n']} seed{'s' if d['n'] != 1 else ''})"
    return f"{f(d['mean'])} [{f(d['ci_low'])}, {f(d['ci_high'])}] ({d['n']} seeds)"


# ---------------------------------------------------------------------------------------------
# Selecting and pairing rows

class Extreme:
    """A selector value: the lowest or highest value of a column among the rows the rest of the
    selector picks (e.g. the smallest student batch size a study ran, whatever the preset's)."""

    def __init__(self, which: str):
        if which not in ("min", "max"):
            raise ValueError(f"Extreme({which!r}): choose 'min' or 'max'")
        self.which = which

    def __repr__(self) -> str:
        return "LOWEST" if self.which == "min" else "HIGHEST"


LOWEST, HIGHEST = Extreme("min"), Extreme("max")


def _match(series: pd.Series, want: Any) -> pd.Series:
    """Rows of `series` equal to `want`: a scalar (numbers compared with a tolerance, booleans also
    as their text), a list (any of its values) or None (missing)."""
    if isinstance(want, (list, tuple, set, frozenset)):
        hit = pd.Series(False, index=series.index)
        for w in want:
            hit |= _match(series, w)
        return hit
    if want is None:
        return series.isna()
    if isinstance(want, (bool, np.bool_)):
        return series.map(lambda v: (isinstance(v, (bool, np.bool_)) and bool(v) == bool(want))
                          or str(v) == str(bool(want))).astype(bool)
    if isinstance(want, (int, float, np.number)):
        num = pd.to_numeric(series, errors="coerce")
        hit = np.isclose(num.to_numpy(dtype=float), float(want)) & num.notna().to_numpy()
        return pd.Series(hit, index=series.index)
    return series.astype(object).map(lambda v: not pd.isna(v) and str(v) == str(want)).astype(bool)


def select(df: pd.DataFrame, selector: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of `df` that match every entry of `selector` ({column: value}; see `_match`, and
    LOWEST / HIGHEST, resolved after the other entries)."""
    missing = [c for c in selector if c not in df.columns]
    if missing:
        raise KeyError(f"the results have no column(s) {missing}; they have {list(df.columns)}")
    plain = {c: v for c, v in selector.items() if not isinstance(v, Extreme)}
    hit = pd.Series(True, index=df.index)
    for column, want in plain.items():
        hit &= _match(df[column], want)
    out = df[hit]
    for column, want in selector.items():
        if isinstance(want, Extreme) and len(out):
            values = pd.to_numeric(out[column], errors="coerce")
            out = out[np.isclose(values, values.min() if want.which == "min" else values.max())]
    return out


def _key(value: Any) -> Any:
    """A cell value as a hashable, comparable key (NaN as None)."""
    return None if pd.isna(value) else value.item() if isinstance(value, np.generic) else value


def _per_seed(rows: pd.DataFrame, where: str) -> pd.Series:
    """value by seed; an error when a seed has several rows (the selectors left something varying)."""
    dup = rows[rows.duplicated("seed", keep=False)]
    if len(dup):
        extra = [c for c in rows.columns if c not in ("seed", "value") and rows[c].astype(str).nunique() > 1]
        seed = int(dup.seed.iloc[0])
        raise ValueError(f"{where}: seed {seed} has {int((rows.seed == seed).sum())} rows; "
                         f"the selectors leave {extra} varying: add them to `by`, `vs` or the selectors")
    return rows.set_index("seed")["value"].astype(float)


def compare(df: pd.DataFrame, a: Mapping, b: Mapping, by: Sequence[str] = ("ipc", "student"),
            metric: str = "top1", vs: str | None = None, relative_to: Mapping | None = None,
            where: Mapping | None = None, confidence: float = 0.95,
            b_level: Sequence[str] | None = None) -> list[dict]:
    """Paired differences a − b of `metric`, one per cell.

    Rows matching `where` and `metric` are split into the a side (matching `a`) and the b side
    (matching `b` and not `a`). A cell is one combination of the `by` columns (and of `vs`, a column
    that varies on the b side only: each of its values is compared with the a side). Within a cell,
    the two sides are paired by seed (seeds on one side only are left out).

    `relative_to` ({column: value}, e.g. {"sigma": 0.0}) compares changes instead of levels: on each
    side, a seed's value minus the same side's value at that reference, same seed and cell otherwise
    (robustness is how much accuracy falls with noise, not where it starts). Cells at the reference
    itself are skipped.

    `b_level` (columns, e.g. ("student",)) makes the b side a reference level instead of paired runs:
    for each cell of the a side, the mean of every b row that agrees with the cell on these columns
    (e.g. the full-data rows of the same student, which have no IPC and may have fewer seeds), and
    a's seeds each compared with it (`b_runs` says how many b rows it averages). The interval then
    holds a's spread only: the level's own spread over its runs is not in it.

    Returns per cell: the `by` (and `vs`) values, `a_mean`, `b_mean` (the mean over the paired seeds
    of each side), `seeds` (the paired seeds), `per_seed` (a − b by seed), `a_values` and `b_values`
    (each side by seed; b's the level repeated under `b_level`) and `paired_difference`'s fields.
    """
    sub = df[df.metric == metric] if "metric" in df.columns else df
    sub = select(sub, where or {})
    by = list(by)
    for column in by + ([vs] if vs else []):
        if column not in sub.columns:
            raise KeyError(f"compare: no column {column!r} in the results; they have {list(sub.columns)}")
    side_a = select(sub, a)
    side_b = select(sub, b)
    side_b = side_b[~side_b.index.isin(side_a.index)]
    if b_level is not None:
        if vs or relative_to:
            raise ValueError("compare: b_level compares levels of one cell; it takes no `vs` or `relative_to`")
        return _against_level(side_a, side_b, by, list(b_level), confidence)
    ref = dict(relative_to or {})
    out = []
    cells_b = side_b.groupby(by + ([vs] if vs else []), dropna=False, sort=True)
    for values, rows_b in cells_b:
        values = values if isinstance(values, tuple) else (values,)
        cell = dict(zip(by + ([vs] if vs else []), (_key(v) for v in values)))
        if ref and all(c in cell and _match(pd.Series([cell[c]]), w).iloc[0] for c, w in ref.items()):
            continue
        rows_a = side_a
        for column in by:
            rows_a = rows_a[_match(rows_a[column], cell[column])]
        if not len(rows_a):
            continue
        name = f"cell {cell}"
        va, vb = _per_seed(rows_a, f"{name}, side a"), _per_seed(rows_b, f"{name}, side b")
        if ref:
            va = va - _reference(side_a, cell, by, ref, f"{name}, side a")
            vb = vb - _reference(side_b, cell, by + ([vs] if vs else []), ref, f"{name}, side b")
        seeds = sorted(set(va.dropna().index) & set(vb.dropna().index))
        if not seeds:
            continue
        d = paired_difference(va[seeds].to_numpy(), vb[seeds].to_numpy(), confidence)
        out.append({**cell, "a_mean": float(va[seeds].mean()), "b_mean": float(vb[seeds].mean()),
                    "seeds": seeds, "per_seed": va[seeds] - vb[seeds], "a_values": va[seeds],
                    "b_values": vb[seeds], **d})
    return out


def _against_level(side_a: pd.DataFrame, side_b: pd.DataFrame, by: list[str], level_by: list[str],
                   confidence: float) -> list[dict]:
    """`compare` with `b_level`: each a cell against the mean of the b rows that share its `level_by`."""
    for column in level_by:
        if column not in by:
            raise ValueError(f"compare: b_level column {column!r} must be one of the cell columns {by}")
    out = []
    for values, rows_a in side_a.groupby(by, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        cell = dict(zip(by, (_key(v) for v in values)))
        rows_b = side_b
        for column in level_by:
            rows_b = rows_b[_match(rows_b[column], cell[column])]
        va = _per_seed(rows_a, f"cell {cell}, side a").dropna().sort_index()
        if not len(rows_b) or not len(va):
            continue
        level = float(rows_b["value"].astype(float).mean())
        vb = pd.Series(level, index=va.index)
        d = paired_difference(va.to_numpy(), vb.to_numpy(), confidence)
        out.append({**cell, "a_mean": float(va.mean()), "b_mean": level, "b_runs": len(rows_b),
                    "seeds": sorted(va.index), "per_seed": va - vb, "a_values": va, "b_values": vb, **d})
    return out


def _reference(side: pd.DataFrame, cell: dict, keys: list[str], ref: Mapping, where: str) -> pd.Series:
    rows = select(side, ref)
    for column in keys:
        if column not in ref:
            rows = rows[_match(rows[column], cell[column])]
    return _per_seed(rows, f"{where}, reference {dict(ref)}")


# ---------------------------------------------------------------------------------------------
# Summaries and the field's metrics

class Summary(NamedTuple):
    cells: pd.DataFrame  # one row per cell: its columns, mean, std (ddof 1), n, and "mean ± std"
    differences: pd.DataFrame  # one row per pair of methods and cell: the paired difference and CI


def summarize(df: pd.DataFrame, pairs: Sequence[tuple[str, str]] = (), metric: str = "top1",
              by: Sequence[str] | None = None, confidence: float = 0.95) -> Summary:
    """Mean ± std over seeds of `metric` per cell, and for every (a, b) pair of methods the paired (by
    seed) difference a − b with its confidence interval, per cell of `by` (default: dataset, ipc,
    teacher, student, labels and any study columns such as `variant` that do not differ between the
    two methods' rows)."""
    sub = df[df.metric == metric]
    keys = [c for c in sub.columns if c not in ("seed", "value")]
    stats = sub.groupby(keys, dropna=False, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    stats = stats.rename(columns={"count": "n"})
    k = 4 if metric in FRACTIONS else 2
    stats["cell"] = [f"{m:.{k}f}" if n < 2 else f"{m:.{k}f} ± {s:.{k}f}"
                     for m, s, n in zip(stats["mean"], stats["std"], stats["n"])]
    rows = []
    for a, b in pairs:
        cols = list(by) if by is not None else _shared_columns(sub, a, b)
        for r in compare(sub, {"method": a}, {"method": b}, by=cols, metric=metric, confidence=confidence):
            rows.append({"a": a, "b": b, **r, "difference": _fmt_diff(r, 4 if metric in FRACTIONS else 2)})
    return Summary(stats, pd.DataFrame(rows))


def _shared_columns(df: pd.DataFrame, a: str, b: str) -> list[str]:
    """The cell columns for comparing methods a and b: the standard ones, plus study columns on which
    the two methods' rows agree as sets (a column that labels each method differently is left out)."""
    base = ["dataset", "ipc", "teacher", "student", "labels"]
    extra = []
    for column in df.columns:
        if column in COLUMNS:
            continue
        va = set(df.loc[df.method == a, column].astype(str))
        vb = set(df.loc[df.method == b, column].astype(str))
        if va == vb:
            extra.append(column)
    return [c for c in base if c in df.columns] + extra


SOFT = ("online", "stored")


def field_metrics(df: pd.DataFrame, reference: str = "random", full: str = "full") -> pd.DataFrame:
    """DD-Ranking's IOR, HLR and LRS for every set, in cda's long format (metric "ior", "hlr", "lrs";
    values are fractions, not percentage points).

    IOR (labels: the set's soft-label mode) = (the set's soft-label top-1 − the top-1 of `reference`
    (random real images) at the same IPC, student, labels and seed) / 100. HLR (labels "hard") =
    (the `full`-data top-1 of the same student architecture, mean over its rows − the set's top-1
    with hard labels, same seed) / 100: it needs hard-label rows, which the studies make only when
    asked. LRS (labels "soft+hard") where a seed has both. Rows whose reference is missing are left
    out rather than guessed.
    """
    top = df[df.metric == "top1"]
    cell = ["dataset", "ipc", "teacher", "student", "seed"]
    extra = [c for c in top.columns if c not in COLUMNS]
    sets = top[top.ipc.notna() & ~top.method.isin([reference, full])]
    rows = []
    soft = top[top.labels.isin(SOFT)]
    base = soft[soft.method == reference].set_index(cell + ["labels"])["value"]
    if base.index.duplicated().any():
        raise ValueError(f"field_metrics: several {reference!r} rows per (IPC, student, labels, seed); "
                         f"filter the results to one variant first")
    for _, r in sets[sets.labels.isin(SOFT)].iterrows():
        k = tuple(r[c] for c in cell) + (r["labels"],)
        if k in base.index:
            rows.append({**r[COLUMNS[:-2] + extra].to_dict(), "metric": "ior",
                         "value": improvement_over_random(r["value"], float(base[k]))})
    full_top1 = top[top.method == full].groupby("student")["value"].mean()
    for _, r in sets[sets.labels == "hard"].iterrows():
        if r["student"] in full_top1.index:
            rows.append({**r[COLUMNS[:-2] + extra].to_dict(), "metric": "hlr",
                         "value": hard_label_recovery(float(full_top1[r["student"]]), r["value"])})
    out = pd.DataFrame(rows, columns=COLUMNS + extra)
    if len(out):
        key = ["dataset", "method", "ipc", "teacher", "student", "seed"] + extra
        ior, hlr = out[out.metric == "ior"], out[out.metric == "hlr"].drop(columns=["labels", "metric"])
        both = ior.merge(hlr, on=key, suffixes=("", "_hlr"), how="inner")
        lrs = both.assign(metric="lrs", labels=both["labels"] + "+hard",
                          value=[label_robust_score(i, h) for i, h in zip(both["value"], both["value_hlr"])])
        out = pd.concat([out, lrs[COLUMNS + extra]], ignore_index=True)
    return out


# ---------------------------------------------------------------------------------------------
# The claims

PAPER_DIR = "paper"  # results/paper/: the papers' numbers, each row naming its table and source


@dataclass(frozen=True)
class PaperRef:
    """Where a claim's number is in results/paper/: the a and b rows of one CSV, or b's in `b_file`
    when another source gives it (each selector must match exactly one row); the paper's number is
    a's `top1` minus b's."""

    file: str
    a: Mapping[str, Any]
    b: Mapping[str, Any]
    b_file: str | None = None  # None: b's row is in `file` too

    def describe(self) -> str:
        common = {k: v for k, v in self.a.items() if self.b.get(k) == v}
        where = ", ".join(f"{k}={v}" for k, v in common.items())
        diff = lambda sel: "/".join(str(v) for k, v in sel.items() if k not in common)
        if self.b_file:
            return f"{self.file}: {where}: {diff(self.a)} − {self.b_file}: {diff(self.b)}"
        return f"{self.file}: {where}: {diff(self.a)} − {diff(self.b)}"

    def number(self, results_root: str | Path = "results") -> float:
        values = []
        for file, sel in ((self.file, self.a), (self.b_file or self.file, self.b)):
            df = pd.read_csv(Path(results_root) / PAPER_DIR / file)
            rows = select(df, sel)
            if len(rows) != 1:
                raise ValueError(f"{file}: {dict(sel)} matches {len(rows)} rows, not one; "
                                 f"fix the claim's paper_ref")
            values.append(float(rows["top1"].iloc[0]))
        return values[0] - values[1]


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, as a notebook tests it: in `study`'s results, `a` − `b` of `metric` minus
    `margin` has the sign `sign` (+1: a is better) in every cell of `by` (and of `vs`; see `compare`).
    `margin` (points, 0 by default) states claims of a size, e.g. a gap to full data below 15 points:
    a − b > −15. `b_level` makes b a reference level (`compare`'s b_level: the mean of b's rows that
    share these columns with the cell, e.g. the full-data rows of the same student); the interval
    then holds a's spread over seeds only. Each study declares the claims it tests (cda.studies'
    `study(..., claims=)`, which fills in `study`); this module receives them as data."""

    id: str
    paper: str  # "CDA" or "CUDD"
    claim: str  # in words
    source: str  # where the paper states it
    a: Mapping[str, Any]
    b: Mapping[str, Any]
    by: tuple[str, ...] = ("ipc", "student")
    vs: str | None = None
    metric: str = "top1"
    sign: int = 1
    relative_to: Mapping[str, Any] | None = None
    where: Mapping[str, Any] = field(default_factory=dict)
    paper_ref: PaperRef | None = None  # None: the paper's number was not available (results/paper/README.md)
    margin: float = 0.0
    b_level: tuple[str, ...] | None = None
    study: str = ""  # the study whose results/<study>/<preset>.csv holds the runs (set by its declaration)


VERDICT_COLUMNS = ["id", "paper", "claim", "study", "cell", "paper_number", "paper_source", "a_mean", "b_mean",
                   "difference", "std", "ci_low", "ci_high", "n_seeds", "ours", "verdict", "results_commit",
                   "boot_low", "boot_high", "poi", "poi_low", "poi_high", "p_value", "p_holm", "verdict_holm"]
BOOTSTRAP_REPS, BOOTSTRAP_SEED = 2000, 0  # every cell's bootstrap draws from this seed: the table is deterministic


def cell_statistics(cells: Sequence[Mapping], sign: int, margin: float = 0.0, confidence: float = 0.95) -> list[dict]:
    """The statistics beside each cell's t-interval (cda.paired_stats, as rliable computes them), for the
    cells of one claim (`compare`'s output): `boot_low`, `boot_high`, the stratified bootstrap
    percentile interval of the cell's mean difference (its seeds resampled, jointly on both sides);
    `poi` = P(a − margin > b) over all pairs of a's and b's runs (ties a half) with its bootstrap
    interval `poi_low`, `poi_high`; `p_value`, the two-sided paired t-test of a − b against `margin`;
    `p_holm`, its Holm adjustment across the claim's cells (cells with one seed are left out of the
    family); and `verdict_holm`: holds where p_holm < 1 − confidence with the mean on the claimed side,
    does not hold where it is below with the mean on the other side, inconclusive otherwise."""
    from .paired_stats import bootstrap_difference, holm, paired_p_value, poi_interval

    alpha = 1 - confidence
    out = []
    for c in cells:
        a = np.asarray(c["a_values"], dtype=float) - margin
        b = np.asarray(c["b_values"], dtype=float)
        boot = bootstrap_difference([(a, b)], BOOTSTRAP_REPS, confidence, BOOTSTRAP_SEED)
        poi = poi_interval([(a, b)], BOOTSTRAP_REPS, confidence, BOOTSTRAP_SEED)
        out.append({"boot_low": boot["ci_low"] + margin, "boot_high": boot["ci_high"] + margin, "poi": poi["poi"],
                    "poi_low": poi["ci_low"], "poi_high": poi["ci_high"], "p_value": paired_p_value(a, b),
                    "p_holm": math.nan})
    tested = [i for i, r in enumerate(out) if not math.isnan(r["p_value"])]
    if tested:
        for i, p in zip(tested, holm([out[i]["p_value"] for i in tested])):
            out[i]["p_holm"] = float(p)
    for c, r in zip(cells, out):
        if math.isnan(r["p_holm"]):
            r["verdict_holm"] = verdict(sign, c, margin=margin)  # one seed: says so
        elif r["p_holm"] >= alpha or c["mean"] == margin:
            r["verdict_holm"] = INCONCLUSIVE
        else:
            r["verdict_holm"] = HOLDS if sign * (c["mean"] - margin) > 0 else FAILS
    return out


def _cell_text(row: Mapping, claim: Claim) -> str:
    parts = [f"{c}={_short(row[c])}" for c in claim.by]
    if claim.vs:
        parts.append(f"vs {claim.vs}={_short(row[claim.vs])}")
    if claim.relative_to:
        parts.append("change from " + ", ".join(f"{k}={v}" for k, v in claim.relative_to.items()))
    if claim.b_level:
        parts.append(f"b: mean of {row['b_runs']} run{'s' if row['b_runs'] != 1 else ''}")
    if claim.margin:
        parts.append(f"margin {claim.margin:+g}")
    return ", ".join(parts)


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def claim_rows(claim: Claim, df: pd.DataFrame | None, results_root: str | Path = "results",
               confidence: float = 0.95) -> list[dict]:
    """The verdict rows of one claim on one study's results (None: not run): one per cell."""
    base = {"id": claim.id, "paper": claim.paper, "claim": claim.claim, "study": claim.study,
            "paper_number": claim.paper_ref.number(results_root) if claim.paper_ref else math.nan,
            "paper_source": claim.paper_ref.describe() if claim.paper_ref
            else "not available (results/paper/README.md)"}
    cells = [] if df is None else compare(df, claim.a, claim.b, by=claim.by, metric=claim.metric, vs=claim.vs,
                                          relative_to=claim.relative_to, where=claim.where, confidence=confidence,
                                          b_level=claim.b_level)
    if not cells:
        return [{**base, "cell": "", "n_seeds": 0, "verdict": NOT_MEASURED, "verdict_holm": NOT_MEASURED}]
    extra = cell_statistics(cells, claim.sign, claim.margin, confidence)
    return [{**base, "cell": _cell_text(c, claim), "a_mean": c["a_mean"], "b_mean": c["b_mean"],
             "difference": c["mean"], "std": c["std"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
             "n_seeds": c["n"], "ours": _fmt_diff(c, 4 if claim.metric in FRACTIONS else 2),
             "verdict": verdict(claim.sign, c, margin=claim.margin), **x} for c, x in zip(cells, extra)]


def by_claim(table: pd.DataFrame) -> pd.DataFrame:
    """A `verdict_table` in one row per claim: how many of its cells hold, do not hold or are
    inconclusive, the same two counts after Holm's adjustment across the claim's cells
    (`holds_holm`, `does_not_hold_holm`), the fewest seeds behind a cell, and the paper's number."""
    out = []
    for (cid, claim), g in table.groupby(["id", "claim"], sort=False):
        counts = g["verdict"].value_counts()
        measured = g[g["n_seeds"].fillna(0) > 0]
        out.append({"id": cid, "paper": g["paper"].iloc[0], "claim": claim, "study": g["study"].iloc[0],
                    "paper_number": g["paper_number"].iloc[0], "cells": len(measured),
                    "holds": int(counts.get(HOLDS, 0)), "does_not_hold": int(counts.get(FAILS, 0)),
                    "inconclusive": int(sum(v for k, v in counts.items() if k.startswith(INCONCLUSIVE))),
                    "min_seeds": int(measured["n_seeds"].min()) if len(measured) else 0,
                    **_holm_counts(g)})
    return pd.DataFrame(out)


def _holm_counts(g: pd.DataFrame) -> dict:
    holm = g["verdict_holm"] if "verdict_holm" in g.columns else pd.Series(dtype=object)  # older tables: none
    return {"holds_holm": int((holm == HOLDS).sum()), "does_not_hold_holm": int((holm == FAILS).sum())}


def papers_root(results_root: str | Path) -> Path:
    """Where the papers' numbers are: beside the results, or the project's own (a runs/ folder has none)."""
    root = Path(results_root)
    return root if (root / PAPER_DIR).is_dir() else paper_folder().parent


def study_verdicts(study: str, df: pd.DataFrame | None, claims: Sequence[Claim], results_root: str | Path = "results",
                   confidence: float = 0.95) -> list[dict]:
    """The verdict rows of every claim that `study` tests, on its results `df` (None: not run)."""
    papers = papers_root(results_root)
    return [r for c in claims if c.study == study for r in claim_rows(c, df, papers, confidence)]


def _commit(provenance_path: Path) -> str:
    """The short git commit that computed a study's results (from its provenance), "" if unknown."""
    from .cache import read_json

    try:
        return read_json(provenance_path, what="provenance").get("git_commit", "")[:7]
    except (OSError, ValueError, RuntimeError):  # RuntimeError: cda.cache.ArtifactError
        return ""


def verdict_table(claims: Sequence[Claim], results_root: str | Path = "results", preset: str = "cpu",
                  confidence: float = 0.95, write: bool = True) -> pd.DataFrame:
    """One row per claim and cell: the claim, the paper's number (read from results/paper/; NaN where
    it was not available), ours (the paired difference a − b in points, with its interval and
    number of seeds), the verdict, and the commit that computed the study's results, for each of
    `claims` (every study's: cda.studies.all_claims()), in their order. Reads
    results/<study>/<preset>.csv for each claim's study (a study not run gives "not measured"); with
    `write`, saves results/verdicts/<preset>.csv and a provenance .json beside it."""
    from .results import read_results

    start = time.perf_counter()
    root = Path(results_root)
    rows, read = [], {}
    for study in dict.fromkeys(c.study for c in claims):  # a study's claims are declared together
        path = root / study / f"{preset}.csv"
        read[study] = read_results(path) if path.is_file() else None
        made_by = _commit(path.with_suffix(".json"))
        rows += [{**r, "results_commit": made_by} for r in study_verdicts(study, read[study], claims, root, confidence)]
    table = pd.DataFrame(rows).reindex(columns=VERDICT_COLUMNS)
    if write:
        from .cache import atomic_path, write_json
        from .results import provenance

        path = root / "verdicts" / f"{preset}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4g")
        extra = {"studies": {s: f"{s}/{preset}.csv" if d is not None else None for s, d in read.items()},
                 "confidence": confidence}
        write_json(provenance({"preset": preset, "claims": [c.id for c in claims]}, time.perf_counter() - start,
                              "cpu", extra), path.with_suffix(".json"))
    return table


# ---------------------------------------------------------------------------------------------
# The same claims under a second student protocol (cda.config.protocols)

PROTOCOL_DEPENDENT, AGREES, ONE_PROTOCOL = "protocol-dependent", "agrees", "one protocol measured"


def protocol_table(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Verdict tables of the same claims under several student protocols ({protocol: verdict_table},
    the tuned one first), side by side: one row per claim and cell with, per protocol p, `ours_<p>`,
    `verdict_<p>` and `verdict_holm_<p>`; `across_protocols` says "protocol-dependent" where the
    verdicts of the protocols that measured the cell differ, "agrees" where they are the same, "one
    protocol measured" where only one did, and "not measured" where none did;
    `claim_across_protocols` is "protocol-dependent" on every row of a claim with any such cell."""
    if len(tables) < 2:
        raise ValueError(f"protocol_table: give at least two protocols' verdict tables, got {list(tables)}")
    keys = ["id", "paper", "claim", "study", "cell"]
    merged = None
    for name, t in tables.items():
        part = t[keys + ["ours", "verdict", "verdict_holm"]].rename(
            columns={c: f"{c}_{name}" for c in ("ours", "verdict", "verdict_holm")})
        merged = part if merged is None else merged.merge(part, on=keys, how="outer", sort=False)
    merged = merged[~((merged["cell"].fillna("") == "") & merged.duplicated("id", keep=False))]  # "not measured"
    verdicts = merged[[f"verdict_{n}" for n in tables]]

    def across(row) -> str:
        measured = {v for v in row if isinstance(v, str) and v != NOT_MEASURED}
        n = sum(isinstance(v, str) and v != NOT_MEASURED for v in row)
        return NOT_MEASURED if n == 0 else ONE_PROTOCOL if n == 1 else AGREES if len(measured) == 1 else PROTOCOL_DEPENDENT

    merged["across_protocols"] = [across(r) for r in verdicts.itertuples(index=False)]
    dependent = set(merged.loc[merged["across_protocols"] == PROTOCOL_DEPENDENT, "id"])
    merged["claim_across_protocols"] = [PROTOCOL_DEPENDENT if i in dependent else "" for i in merged["id"]]
    order = {cid: k for k, cid in enumerate(dict.fromkeys(next(iter(tables.values()))["id"]))}
    return merged.sort_values("id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def protocol_verdicts(claims: Sequence[Claim], results_root: str | Path = "results", preset: str = "cpu",
                      confidence: float = 0.95, write: bool = True) -> pd.DataFrame | None:
    """The verdicts at `preset` under its tuned students and under every fixed protocol whose results
    exist (results/<study>/<preset>-<protocol>.csv for any claim's study), side by side
    (`protocol_table`); with `write`, each protocol's verdict table as results/verdicts/<preset>-<protocol>.csv
    and the side-by-side table as results/verdicts/<preset>-protocols.csv. None when no study was built
    under a protocol."""
    from .config.protocols import PROTOCOLS, TUNED

    root = Path(results_root)
    studies = dict.fromkeys(c.study for c in claims)
    built = [p for p in PROTOCOLS if any((root / s / f"{preset}-{p}.csv").is_file() for s in studies)]
    if not built:
        return None
    tables = {TUNED: verdict_table(claims, root, preset, confidence, write=False)}
    for p in built:
        tables[p] = verdict_table(claims, root, f"{preset}-{p}", confidence, write=write)
    table = protocol_table(tables)
    if write:
        from .cache import atomic_path

        with atomic_path(root / "verdicts" / f"{preset}-protocols.csv") as tmp:
            table.to_csv(tmp, index=False)
    return table


# ---------------------------------------------------------------------------------------------
# Sensitivity to a protocol knob

def knob_sensitivity(rows: pd.DataFrame, knob: str, default: Any = None, a: Mapping | str = "cda",
                     b: Mapping | str = "sre2l", by: Sequence[str] = ("ipc", "student"), metric: str = "top1",
                     sign: int = 1, confidence: float = 0.95) -> pd.DataFrame:
    """How the difference a − b (CDA − SRe2L by default) moves as a protocol knob moves.

    `rows`: long-format results over a grid of the column `knob` (e.g. one step either way of the
    default student epochs), a and b at each value, several seeds. `default`: the knob's protocol
    value (None: the middle of the grid).

    Returns one row per cell and knob value: `step` (the value's position relative to the default in
    the sorted grid: -1, 0, +1, ...), the paired difference a − b and its interval, the verdict on
    the sign `sign` at that value, `shift` (the difference minus the difference at the default) with
    its own paired interval (`shift_ci_low`, `shift_ci_high`: both differences on the same seeds), and
    `verdict_moves` (whether the verdict differs from the default's).
    """
    sel_a = {"method": a} if isinstance(a, str) else dict(a)
    sel_b = {"method": b} if isinstance(b, str) else dict(b)
    if knob not in rows.columns:
        raise KeyError(f"knob_sensitivity: no column {knob!r} in the rows; they have {list(rows.columns)}")
    grid = sorted({_key(v) for v in rows[knob] if not pd.isna(v)})
    if not grid:
        raise ValueError(f"knob_sensitivity: the column {knob!r} holds no values")
    if default is None:
        default = grid[(len(grid) - 1) // 2]
    match = [g for g in grid if _match(pd.Series([g]), default).iloc[0]]
    if not match:
        raise ValueError(f"knob_sensitivity: default {knob}={default!r} is not in the grid {grid}")
    centre = grid.index(match[0])
    cells = list(by) + [knob]
    levels = compare(rows, sel_a, sel_b, by=cells, metric=metric, confidence=confidence)
    # the shift: (a − b)(value) − (a − b)(default), paired by seed
    shifts = {}
    if len(grid) > 1:
        da = {tuple(r[c] for c in cells): r["per_seed"] for r in levels}
        for key, series in da.items():
            ref_key = key[:-1] + (match[0],)
            if key[-1] != match[0] and ref_key in da:
                seeds = sorted(set(series.index) & set(da[ref_key].index))
                if seeds:
                    shifts[key] = paired_difference(series[seeds].to_numpy(), da[ref_key][seeds].to_numpy(), confidence)
    out = []
    at_default = {tuple(r[c] for c in by): verdict(sign, r) for r in levels if r[knob] == match[0]}
    for r in levels:
        key = tuple(r[c] for c in cells)
        s = shifts.get(key, {})
        v = verdict(sign, r)
        out.append({**{c: r[c] for c in cells}, "step": grid.index(r[knob]) - centre, "difference": r["mean"],
                    "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n_seeds": r["n"], "verdict": v,
                    "shift": 0.0 if r[knob] == match[0] else s.get("mean", math.nan),
                    "shift_ci_low": s.get("ci_low", math.nan), "shift_ci_high": s.get("ci_high", math.nan),
                    "verdict_moves": v != at_default.get(tuple(r[c] for c in by), v)})
    return pd.DataFrame(out)
