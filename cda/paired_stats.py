"""Statistics for a claim's verdict beyond the paired t-interval, on plain arrays, as rliable computes them
(Agarwal et al., "Deep RL at the edge of the statistical precipice", NeurIPS 2021):

- `bootstrap_difference`: a stratified bootstrap percentile interval of the mean difference a − b over a
  claim's cells: seeds are resampled with replacement within each cell, never across cells (rliable's
  `get_interval_estimates`, i.e. arch's StratifiedBootstrap, percentile method). The cells are paired
  (seed i of a and of b are the same run), so a cell's seeds are resampled jointly on both sides;
- `probability_of_improvement`: P(A > B), per cell the Mann–Whitney U statistic over all n·m pairs of
  runs divided by n·m (ties count a half), averaged over cells; `poi_interval` its interval, resampling
  a's and b's runs independently within each cell (rliable's StratifiedIndependentBootstrap);
- `holm`: Holm's step-down adjustment of the cells' p-values (family-wise error across a claim's cells);
  `paired_p_value` the two-sided paired t-test p-value of one cell, the per-cell test it adjusts;
- `claim_statistics`: all of them for one claim's cells.

A claim's cells are a sequence of (a, b) pairs of per-seed scores. Everything random draws from
`numpy.random.default_rng(seed)`: the same inputs and seed give the same intervals. We compute these
ourselves (a few lines of numpy) instead of depending on rliable, whose install pulls arch, seaborn and
absl for them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

Cells = Sequence[tuple[Sequence[float], Sequence[float]]]


def _cells(cells: Cells, paired: bool, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    if len(cells) == 0:
        raise ValueError(f"{where}: no cells; give at least one (a, b) pair of per-seed scores")
    for i, (a, b) in enumerate(cells):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.ndim != 1 or b.ndim != 1 or len(a) == 0 or len(b) == 0:
            raise ValueError(f"{where}: cell {i} needs two non-empty lists of per-seed scores, got shapes "
                             f"{a.shape} and {b.shape}")
        if paired and len(a) != len(b):
            raise ValueError(f"{where}: cell {i} has {len(a)} scores for a and {len(b)} for b; paired cells need "
                             f"one score per seed on each side")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise ValueError(f"{where}: cell {i} holds a NaN or infinite score; drop the failed run first")
        out.append((a, b))
    return out


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The bootstrap percentile interval (numpy's linear interpolation between order statistics)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: must lie in (0, 1), e.g. 0.95")
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [alpha, 100 - alpha])
    return float(low), float(high)


def bootstrap_samples(cells: Cells, reps: int = 2000, seed: int = 0) -> np.ndarray:
    """`reps` stratified bootstrap replicates of the mean over cells of each cell's mean difference a − b."""
    cells = _cells(cells, True, "bootstrap_difference")
    rng = np.random.default_rng(seed)
    total = np.zeros(reps)
    for a, b in cells:
        d = a - b
        total += d[rng.integers(0, len(d), size=(reps, len(d)))].mean(axis=1)
    return total / len(cells)


def bootstrap_difference(cells: Cells, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """The mean difference a − b over a claim's paired cells (each cell weighs the same) and its stratified
    bootstrap percentile interval: {mean, ci_low, ci_high, reps}."""
    mean = float(np.mean([np.mean(a - b) for a, b in _cells(cells, True, "bootstrap_difference")]))
    low, high = percentile_interval(bootstrap_samples(cells, reps, seed), confidence)
    return {"mean": mean, "ci_low": low, "ci_high": high, "reps": reps}


def _poi_cell(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a > b) of one cell over all pairs, ties a half; vectorized over leading axes of resampled runs."""
    diff = a[..., :, None] - b[..., None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1))


def probability_of_improvement(cells: Cells) -> float:
    """P(A > B) averaged over cells: per cell U / (n·m), U the Mann–Whitney statistic of a over b."""
    return float(np.mean([_poi_cell(a, b) for a, b in _cells(cells, False, "probability_of_improvement")]))


def poi_interval(cells: Cells, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """The probability of improvement with its stratified, independent bootstrap percentile interval:
    {poi, ci_low, ci_high, reps}."""
    cells = _cells(cells, False, "poi_interval")
    rng = np.random.default_rng(seed)
    total = np.zeros(reps)
    for a, b in cells:
        ra = a[rng.integers(0, len(a), size=(reps, len(a)))]
        rb = b[rng.integers(0, len(b), size=(reps, len(b)))]
        total += _poi_cell(ra, rb)
    low, high = percentile_interval(total / len(cells), confidence)
    return {"poi": probability_of_improvement(cells), "ci_low": low, "ci_high": high, "reps": reps}


def paired_p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sided paired t-test p-value of a − b (scipy.stats.ttest_rel). NaN with one pair; with no
    spread in the differences, 1 if they are all zero and 0 otherwise."""
    from scipy import stats

    ((a, b),) = _cells([(a, b)], True, "paired_p_value")
    d = a - b
    if len(d) < 2:
        return float("nan")
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input's order: sorted ascending, the i-th smallest
    (i from 0) is multiplied by m − i, then made non-decreasing and capped at 1. A cell holds at level α
    across the family when its adjusted p-value is at most α."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"holm: p-values must be a list of numbers in [0, 1] (no NaN: leave out cells with one "
                         f"seed), got {p.tolist()}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


def claim_statistics(cells: Cells, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Everything above for one claim (a − b over its paired cells): the stratified bootstrap interval
    of the mean difference, the probability of improvement with its interval, and per cell the paired
    t-test p-value and its Holm adjustment across the cells (NaN where a cell has one seed, left out of
    the family)."""
    checked = _cells(cells, True, "claim_statistics")
    p = np.array([paired_p_value(a, b) for a, b in checked])
    adjusted = np.full(len(p), np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        adjusted[tested] = holm(p[tested])
    poi = poi_interval(checked, reps, confidence, seed)
    return {"bootstrap": bootstrap_difference(checked, reps, confidence, seed),
            "poi": poi["poi"], "poi_ci_low": poi["ci_low"], "poi_ci_high": poi["ci_high"],
            "p_values": p.tolist(), "holm": adjusted.tolist()}
