"""The convergence rule (cda.convergence): a budget is converged when doubling it gains less than the
seed std; synthetic tables where the answer is known, one that never converges, and a tiny real run."""
import math

import pandas as pd
import pytest

from cda.config import ConfigError, preset
from cda.convergence import PRESET, converged_budget, convergence, convergence_figure, summarize


def _summary(means, stds, budgets=(100, 200, 400, 800, 1600)):
    return pd.DataFrame({"budget": budgets, "mean": means, "std": stds})


def test_rule_picks_the_first_budget_whose_doubling_gains_less_than_the_seed_std():
    # gains: +5, +3, +0.5, +0.2; std 1 everywhere: 400 is the first whose doubling gains < 1
    budget, why = converged_budget(_summary([80, 85, 88, 88.5, 88.7], [1, 1, 1, 1, 1]))
    assert budget == 400 and "converged at 400" in why and "+0.50" in why
    # the pooled std decides: 200 -> 400 gains 3; sd sqrt((2^2 + 4^2) / 2) = 3.16 > 3, so 200
    assert converged_budget(_summary([80, 85, 88, 88.5, 88.7], [1, 2, 4, 1, 1]))[0] == 200
    # a loss is "less than the std" too
    assert converged_budget(_summary([80, 79], [0.1, 0.1], budgets=(100, 200)))[0] == 100


def test_rule_says_when_it_never_converges():
    budget, why = converged_budget(_summary([50, 60, 70, 80, 90], [1, 1, 1, 1, 1]))
    assert budget is None and "not converged within 1600 epochs" in why and "800 -> 1600" in why
    assert converged_budget(_summary([50], [1], budgets=(100,)))[0] is None
    with pytest.raises(ValueError, match="must double"):
        converged_budget(_summary([1, 2], [1, 1], budgets=(100, 300)))


def test_summarize_marks_the_budget_and_where_a_variant_reaches_the_preset():
    rows = []
    means = {PRESET: [80, 85, 88, 88.5], "fast": [84, 88.2, 88.4, 88.5]}
    for variant, ms in means.items():
        for budget, m in zip((100, 200, 400, 800), ms):
            rows += [{"variant": variant, "budget": budget, "seed": s, "value": m + d} for s, d in enumerate((-1, 0, 1))]
    table, verdicts = summarize(pd.DataFrame(rows))
    assert list(table.variant) == [PRESET] * 4 + ["fast"] * 4
    assert table["std"].tolist() == pytest.approx([1.0] * 8) and (table.n == 3).all()
    assert verdicts[PRESET]["converged_budget"] == 400 and verdicts["fast"]["converged_budget"] == 200
    assert verdicts["fast"]["reference_mean"] == pytest.approx(88) and verdicts["fast"]["reaches_reference_at"] == 200
    assert verdicts[PRESET]["reaches_reference_at"] == 400
    assert table[table.converged].budget.tolist() == [400, 200]
    assert math.isnan(table.gain.iloc[0]) and table.gain.iloc[1] == pytest.approx(5)
    convergence_figure(table, verdicts, title="synthetic")  # draws


def test_convergence_refuses_without_validation_or_with_too_few_seeds():
    with pytest.raises(ConfigError, match="data.validation"):
        convergence(preset("smoke"), "random", 1, (0, 1, 2))
    cfg = preset("digits")
    with pytest.raises(ConfigError, match="3 or more seeds"):
        convergence(cfg, "random", 1, (0, 1))
    with pytest.raises(ConfigError, match="doubling"):
        convergence(cfg, "random", 1, (0, 1, 2), budgets=(100, 300))


def test_the_table_for_the_docs_bolds_the_converged_budget():
    from cda.convergence import table_markdown

    rows = [{"variant": PRESET, "budget": b, "seed": s, "value": m + d}
            for b, m in ((100, 80.0), (200, 85.0), (400, 85.5)) for s, d in enumerate((-1, 0, 1))]
    table, verdicts = summarize(pd.DataFrame(rows))
    text = table_markdown({"convergence": {"table": table.to_dict("records"), "variants": {PRESET: {}},
                                           "verdicts": verdicts}})
    assert "| 80.0 ± 1.0 | **85.0 ± 1.0** | 85.5 ± 1.0 |" in text and "converged at 200 epochs" in text
