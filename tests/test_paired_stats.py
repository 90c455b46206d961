"""cda.paired_stats against hand computations and worked examples."""
import itertools

import numpy as np
import pytest
from scipy import stats

from cda.paired_stats import (
    bootstrap_difference,
    bootstrap_samples,
    claim_statistics,
    holm,
    paired_p_value,
    percentile_interval,
    poi_interval,
    probability_of_improvement,
)


def test_holm_worked_example():
    # sorted: 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1; a single test is left as it is
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    assert holm([0.5, 0.9, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([0.02]) == pytest.approx([0.02])


def test_holm_matches_its_definition_on_random_p_values():
    rng = np.random.default_rng(3)
    for m in (2, 5, 9):
        p = rng.uniform(0, 0.2, size=m)
        order = np.argsort(p)
        want = np.empty(m)
        for rank, i in enumerate(order):  # max over j <= rank of min(1, (m - j) p_(j))
            want[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
        assert holm(p) == pytest.approx(want)


def test_holm_refuses_nan():
    with pytest.raises(ValueError, match="no NaN"):
        holm([0.01, float("nan")])


def test_probability_of_improvement_by_hand_and_against_mann_whitney():
    a, b = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]
    # 1 beats (2, 2, 0): 0 + 0 + 1; 2: 0.5 + 0.5 + 1; 3: 1 + 1 + 1 -> 6 of 9 pairs
    assert probability_of_improvement([(a, b)]) == pytest.approx(6 / 9)
    u = stats.mannwhitneyu(a, b).statistic  # scipy's U of the first sample, ties a half
    assert probability_of_improvement([(a, b)]) == pytest.approx(u / 9)
    # cells weigh the same: (6/9 + 0) / 2
    assert probability_of_improvement([(a, b), ([0.0], [1.0, 2.0])]) == pytest.approx(3 / 9)


def _exact_quantiles(cells, qs):
    """The exact bootstrap distribution of the stratified mean difference, by enumerating every resample."""
    per_cell = []
    for a, b in cells:
        d = np.asarray(a, float) - np.asarray(b, float)
        per_cell.append([np.mean(d[list(idx)]) for idx in itertools.product(range(len(d)), repeat=len(d))])
    values = np.sort([np.mean(combo) for combo in itertools.product(*per_cell)])
    return [values[int(np.ceil(q * len(values))) - 1] for q in qs]


def test_stratified_bootstrap_matches_the_exact_enumeration():
    cells = [([1.0, 2.0, 4.0], [1.0, 1.0, 1.0]), ([0.0, 3.0], [1.0, 1.0])]  # differences (0, 1, 3) and (-1, 2)
    samples = bootstrap_samples(cells, reps=40000, seed=1)
    for q, want in zip((0.1, 0.5, 0.9), _exact_quantiles(cells, (0.1, 0.5, 0.9))):
        assert np.quantile(samples, q, method="inverted_cdf") == pytest.approx(want)
    assert samples.mean() == pytest.approx((4 / 3 + 0.5) / 2, abs=0.01)  # the bootstrap is unbiased for a mean


def test_bootstrap_resamples_within_cells_only():
    # cell 1's differences are all 0, cell 2's (one seed) is 10: every stratified resample means 5;
    # pooling the cells' four differences would not
    out = bootstrap_difference([([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), ([10.0], [0.0])], reps=500)
    assert out["mean"] == out["ci_low"] == out["ci_high"] == pytest.approx(5.0)


def test_bootstrap_interval_by_hand_and_deterministic():
    cells = [([3.0, 1.0], [1.0, 1.0])]  # differences (2, 0): resample means 0, 1, 2 w.p. 1/4, 1/2, 1/4
    out = bootstrap_difference(cells, reps=4000, confidence=0.9, seed=7)
    assert (out["mean"], out["ci_low"], out["ci_high"]) == (1.0, 0.0, 2.0)
    assert bootstrap_difference(cells, reps=300, seed=7) == bootstrap_difference(cells, reps=300, seed=7)
    noisy = [(np.arange(5.0) ** 2, np.zeros(5))]
    assert bootstrap_difference(noisy, reps=300, seed=1) != bootstrap_difference(noisy, reps=300, seed=2)
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))


def test_poi_interval_brackets_the_estimate():
    rng = np.random.default_rng(0)
    cells = [(rng.normal(1, 1, 5), rng.normal(0, 1, 5)) for _ in range(3)]
    out = poi_interval(cells, reps=1000, seed=0)
    assert out["ci_low"] <= out["poi"] <= out["ci_high"]
    assert out == poi_interval(cells, reps=1000, seed=0)
    assert poi_interval([([2.0, 3.0], [0.0, 1.0])], reps=200) == {"poi": 1.0, "ci_low": 1.0, "ci_high": 1.0,
                                                                    "reps": 200}


def test_paired_p_value_and_claim_statistics():
    a, b = [80.0, 82.0, 81.0, 83.0], [79.0, 80.5, 80.0, 81.0]
    assert paired_p_value(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert np.isnan(paired_p_value([1.0], [0.0]))
    assert paired_p_value([2.0, 3.0], [1.0, 2.0]) == 0.0 and paired_p_value([1.0, 2.0], [1.0, 2.0]) == 1.0
    cells = [(a, b), ([70.0, 71.0, 69.0], [70.5, 70.0, 70.0]), ([60.0], [50.0])]
    out = claim_statistics(cells, reps=500, seed=0)
    p = [paired_p_value(x, y) for x, y in cells[:2]]
    assert out["holm"][:2] == pytest.approx(holm(p).tolist()) and np.isnan(out["holm"][2])
    assert out["bootstrap"]["ci_low"] <= out["bootstrap"]["mean"] <= out["bootstrap"]["ci_high"]


def test_bad_cells_are_named():
    with pytest.raises(ValueError, match="cell 1 has 2 scores for a and 3 for b"):
        bootstrap_difference([([1.0], [1.0]), ([1.0, 2.0], [1.0, 2.0, 3.0])])
    with pytest.raises(ValueError, match="cell 0 holds a NaN"):
        probability_of_improvement([([float("nan")], [1.0])])
    with pytest.raises(ValueError, match="no cells"):
        poi_interval([])
