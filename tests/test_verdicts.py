"""Statistics over seeds, DD-Ranking's metrics, the claims table and the knob sensitivity, on small
synthetic results (and on the committed single-seed results, which must stay inconclusive)."""
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from committed import NOT_BUILT_AT_CPU

from cda.results import COLUMNS
from cda.studies import all_claims
from cda.verdicts import (
    HIGHEST,
    LOWEST,
    PaperRef,
    by_claim,
    compare,
    field_metrics,
    knob_sensitivity,
    paired_difference,
    select,
    summarize,
    t_quantile,
    verdict,
    verdict_table,
)

ROOT = Path(__file__).resolve().parents[1]


def _rows(cells: dict, **fixed) -> pd.DataFrame:
    """Long-format results: {(method, seed, **extra as a tuple of pairs): value}."""
    base = dict(dataset="fashion_mnist", ipc=10, teacher="convnet3", student="convnet3", labels="online",
                metric="top1")
    base.update(fixed)
    rows = []
    for (method, seed, *extra), value in cells.items():
        rows.append({**base, **dict(extra), "method": method, "seed": seed, "value": value})
    df = pd.DataFrame(rows)
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]


def test_t_quantiles_match_the_printed_table():
    # two-sided 95% critical values of Student's t, as printed in every statistics table
    for df, value in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)]:
        assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-3)
    assert t_quantile(0.95, 4) == pytest.approx(2.132, abs=1e-3)
    with pytest.raises(ValueError, match="df be at least 1"):
        t_quantile(0.975, 0)


def test_paired_difference_is_the_hand_computed_t_interval():
    a, b = [71.0, 72.0, 73.0, 74.0, 75.0], [70.5, 71.0, 72.5, 73.0, 74.0]
    d = paired_difference(a, b)
    # d = [0.5, 1, 0.5, 1, 1]: mean 0.8, sample std sqrt(0.3 / 4), t(0.975, 4) = 2.776 from the table
    half = 2.776 * math.sqrt(0.3 / 4) / math.sqrt(5)
    assert d["n"] == 5 and d["mean"] == pytest.approx(0.8) and d["std"] == pytest.approx(math.sqrt(0.075))
    assert d["ci_low"] == pytest.approx(0.8 - half, abs=1e-3) and d["ci_high"] == pytest.approx(0.8 + half, abs=1e-3)
    # pairing matters: the same values unpaired would give a much wider interval
    assert d["ci_high"] - d["ci_low"] < 0.5 * (np.std(a, ddof=1) + np.std(b, ddof=1))
    assert paired_difference(a, b, confidence=0.99)["ci_low"] < d["ci_low"]  # wider at 99%
    one = paired_difference([70.0], [69.0])
    assert one["mean"] == 1.0 and math.isnan(one["ci_low"]) and math.isnan(one["std"])
    with pytest.raises(ValueError, match="equally long"):
        paired_difference([1, 2], [1])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([1, float("nan")], [1, 2])


@pytest.mark.parametrize("sign, ci, expected", [
    (1, (0.1, 2.0), "holds"), (1, (-2.0, -0.1), "does not hold"), (1, (-1.0, 1.0), "inconclusive"),
    (1, (0.0, 1.0), "inconclusive"), (-1, (-2.0, -0.1), "holds"), (-1, (0.1, 2.0), "does not hold"),
])
def test_verdict_rule(sign, ci, expected):
    assert verdict(sign, ci) == expected


def test_verdict_says_one_seed_and_not_measured():
    assert verdict(1, paired_difference([70.0], [60.0])) == "inconclusive (1 seed)"  # a big gain, but one seed
    assert verdict(1, (float("nan"), float("nan")), n=3) == "inconclusive"
    assert verdict(1, (float("nan"), float("nan")), n=0) == "not measured"
    with pytest.raises(ValueError, match="claim_sign"):
        verdict(0, (1, 2))
    with pytest.raises(ValueError, match="swapped"):
        verdict(1, (2, 1))


def test_compare_pairs_by_seed_and_names_what_is_left_varying():
    df = _rows({("cda", 2): 62.0, ("cda", 0): 60.0, ("cda", 1): 61.0, ("sre2l", 1): 60.5, ("sre2l", 0): 59.0,
                ("sre2l", 7): 10.0})
    (r,) = compare(df, {"method": "cda"}, {"method": "sre2l"})
    assert r["seeds"] == [0, 1] and r["n"] == 2  # seeds 2 and 7 have no partner
    assert r["mean"] == pytest.approx(np.mean([60.0 - 59.0, 61.0 - 60.5]))
    assert r["a_mean"] == pytest.approx(60.5) and r["b_mean"] == pytest.approx(59.75)
    twice = pd.concat([df, df.assign(variant="other")]).assign(variant=lambda d: d["variant"].fillna("main"))
    with pytest.raises(ValueError, match=r"leave \['variant'\] varying"):
        compare(twice, {"method": "cda"}, {"method": "sre2l"})
    assert len(compare(twice, {"method": "cda"}, {"method": "sre2l"}, where={"variant": "main"})) == 1


def test_selectors_match_types_lists_and_extremes():
    df = _rows({("cda", 0, ("bs", 32), ("flag", True)): 1.0, ("cda", 0, ("bs", 64), ("flag", False)): 2.0,
                ("sre2l", 0, ("bs", 128), ("flag", True)): 3.0})
    assert list(select(df, {"bs": LOWEST}).value) == [1.0]
    assert list(select(df, {"method": "cda", "bs": HIGHEST}).value) == [2.0]  # extremes after the other entries
    assert list(select(df, {"flag": False}).value) == [2.0]
    assert list(select(df.astype({"flag": str}), {"flag": True}).value) == [1.0, 3.0]  # booleans read back as text
    assert list(select(df, {"method": ["sre2l", "nope"]}).value) == [3.0]
    assert list(select(df, {"bs": 64.0}).value) == [2.0]
    with pytest.raises(KeyError, match="no column"):
        select(df, {"nope": 1})


def test_relative_to_compares_changes_not_levels():
    # CUDD starts higher but falls more with noise than SRe2L: more accurate, less robust
    cells = {}
    for seed in range(4):
        for sigma, cudd, sre2l in [(0.0, 80, 70), (0.2, 50 + seed * 0.1, 60)]:
            cells[("cudd", seed, ("sigma", sigma))] = cudd
            cells[("sre2l", seed, ("sigma", sigma))] = sre2l
    df = _rows(cells)
    (r,) = compare(df, {"method": "cudd"}, {"method": "sre2l"}, by=("ipc", "sigma"), relative_to={"sigma": 0.0})
    assert r["sigma"] == 0.2 and r["mean"] == pytest.approx((-30 + 0.15) - (-10))
    assert verdict(1, r) == "does not hold"
    (level,) = compare(df[df.sigma == 0.2], {"method": "cudd"}, {"method": "sre2l"})
    assert level["mean"] < 0


def test_summarize_gives_mean_std_and_paired_differences():
    df = _rows({("cda", s): 60.0 + s for s in range(5)} | {("sre2l", s): 58.0 + 2 * s for s in range(5)})
    cells, diffs = summarize(df, pairs=[("cda", "sre2l")])
    cda = cells[cells.method == "cda"].iloc[0]
    assert cda["mean"] == pytest.approx(62.0) and cda["std"] == pytest.approx(np.std(range(5), ddof=1))
    assert cda["n"] == 5 and cda["cell"] == "62.00 ± 1.58"
    (d,) = diffs.to_dict("records")
    direct = paired_difference([60.0 + s for s in range(5)], [58.0 + 2 * s for s in range(5)])
    assert d["mean"] == pytest.approx(direct["mean"]) and d["ci_low"] == pytest.approx(direct["ci_low"])
    assert d["a"] == "cda" and d["b"] == "sre2l" and d["difference"].endswith("(5 seeds)")


def test_field_metrics_are_dd_rankings_ior_and_hlr_on_fractions():
    from cda.evaluator import label_robust_score

    df = pd.concat([
        _rows({("cda", 0): 60.0, ("cda", 1): 62.0, ("random", 0): 50.0, ("random", 1): 55.0}),
        _rows({("cda", 0): 30.0, ("cda", 1): 40.0}, labels="hard"),
        _rows({("full", 0): 90.0}, ipc=float("nan"), labels="hard"),
    ], ignore_index=True)
    out = field_metrics(df)
    get = lambda metric, seed: out[(out.metric == metric) & (out.seed == seed)].value.item()
    assert get("ior", 0) == pytest.approx(0.10) and get("ior", 1) == pytest.approx(0.07)
    assert get("hlr", 0) == pytest.approx(0.60) and get("hlr", 1) == pytest.approx(0.50)
    assert get("lrs", 0) == pytest.approx(label_robust_score(0.10, 0.60))
    assert set(out.method) == {"cda"}  # the references themselves get no row
    assert list(out.columns[:len(COLUMNS)]) == COLUMNS


def test_claims_read_the_papers_numbers_from_results_paper(tmp_path):
    refs = [c for c in all_claims() if c.paper_ref]
    assert refs, "at least the main tables' claims carry the paper's number"
    for claim in refs:
        paper = pd.read_csv(ROOT / "results" / "paper" / claim.paper_ref.file)
        other = pd.read_csv(ROOT / "results" / "paper" / (claim.paper_ref.b_file or claim.paper_ref.file))
        a, b = select(paper, claim.paper_ref.a), select(other, claim.paper_ref.b)
        assert len(a) == len(b) == 1
        assert claim.paper_ref.number(ROOT / "results") == pytest.approx(a.top1.item() - b.top1.item())
    # the number comes from the file: change the file and it changes
    shutil.copytree(ROOT / "results" / "paper", tmp_path / "paper")
    csv = tmp_path / "paper" / refs[0].paper_ref.file
    paper = pd.read_csv(csv)
    hit = select(paper, refs[0].paper_ref.a).index
    paper.loc[hit, "top1"] += 10
    paper.to_csv(csv, index=False)
    assert refs[0].paper_ref.number(tmp_path) == pytest.approx(refs[0].paper_ref.number(ROOT / "results") + 10)
    with pytest.raises(ValueError, match="matches 0 rows"):
        PaperRef(refs[0].paper_ref.file, {"method": "nope"}, {"method": "cda"}).number(ROOT / "results")


def test_committed_results_give_verdicts_only_with_seeds():
    """Every claim finds its runs in the committed cpu results (the selectors fit the studies' columns);
    a cell with one seed may not say holds or does not hold, and the main table's cells have five."""
    table = verdict_table(all_claims(), ROOT / "results", "cpu", write=False)
    assert set(table.id) == {c.id for c in all_claims()}
    pending = table.study.isin(NOT_BUILT_AT_CPU)  # not built at cpu yet: "not measured", no seeds
    assert (table[pending].verdict == "not measured").all() and (table[pending].n_seeds == 0).all()
    table = table[~pending]
    measured = table.groupby("id")["n_seeds"].max()
    assert (measured >= 1).all(), f"claims without runs: {list(measured[measured < 1].index)}"
    assert set(table[table.n_seeds > 1].verdict) <= {"holds", "does not hold", "inconclusive"}
    # rebuilt at the cpu preset's seeds: five in the main tables, three in the others, except the
    # transformer and MLP students, which run one seed at cpu (cda.studies.cda_students_without_bn.SLOW_SEEDS)
    main_tables = table.study.isin(["cda_table2_main_results", "cudd_main_results"])
    one_seed = table.study.isin(["cda_students_without_bn", "cda_transformer_students"]) & (table.n_seeds == 1)
    assert (table[main_tables].n_seeds >= 5).all() and (table[~one_seed].n_seeds >= 3).all()
    assert table[one_seed].verdict.str.startswith("inconclusive").all()
    main = table[table.id == "cda-beats-sre2l"]
    assert {"ipc=1, student=convnet3", "ipc=10, student=convnet3"} <= set(main.cell)
    assert main.paper_source.str.startswith("cda_table2_main_results.csv").all()


def test_verdict_table_with_seeds_gives_verdicts_and_writes_them(tmp_path):
    wobble = [0.3, -0.2, 0.1, -0.4, 0.2]  # per-seed noise of the difference, mean 0
    main = {}
    for seed in range(5):
        for ipc, gain in [(10, 2.0), (50, -2.0), (100, 0.0)]:
            main[("sre2l", seed, ("ipc", ipc))] = 60.0 + seed  # seeds move both sides: pairing removes it
            main[("cda", seed, ("ipc", ipc))] = 60.0 + seed + gain + wobble[seed]
    (tmp_path / "cda_table2_main_results").mkdir()
    _rows(main).to_csv(tmp_path / "cda_table2_main_results" / "x.csv", index=False)
    shutil.copytree(ROOT / "results" / "paper", tmp_path / "paper")
    table = verdict_table(all_claims(), tmp_path, "x")
    rows = table[table.id == "cda-beats-sre2l"].set_index("cell")
    assert rows.loc["ipc=10, student=convnet3", "verdict"] == "holds"
    assert rows.loc["ipc=50, student=convnet3", "verdict"] == "does not hold"
    assert rows.loc["ipc=100, student=convnet3", "verdict"] == "inconclusive"
    assert (rows.n_seeds == 5).all() and rows.ours.str.endswith("(5 seeds)").all()
    assert set(table[table.study != "cda_table2_main_results"].verdict) == {"not measured"}
    claim = by_claim(table).set_index("id").loc["cda-beats-sre2l"]
    assert (claim.cells, claim.holds, claim.does_not_hold, claim.inconclusive, claim.min_seeds) == (3, 1, 1, 1, 5)
    assert by_claim(table).set_index("id").loc["cudd-beats-cda", "cells"] == 0
    written = pd.read_csv(tmp_path / "verdicts" / "x.csv")
    assert list(written.columns) == list(table.columns) and len(written) == len(table)
    assert (tmp_path / "verdicts" / "x.json").is_file()


def test_knob_sensitivity_reports_how_the_difference_moves():
    cells = {}
    for seed in range(4):
        for epochs, gain in [(100, -3.0), (200, 0.5), (400, 3.0)]:
            cells[("sre2l", seed, ("epochs", epochs))] = 60.0 + seed
            cells[("cda", seed, ("epochs", epochs))] = 60.0 + seed + gain + 0.1 * (seed % 2)
    out = knob_sensitivity(_rows(cells), "epochs", default=200).set_index("epochs")
    assert list(out.step) == [-1, 0, 1]
    assert out.loc[100, "difference"] == pytest.approx(-2.95) and out.loc[400, "difference"] == pytest.approx(3.05)
    assert out.loc[200, "shift"] == 0 and out.loc[400, "shift"] == pytest.approx(2.5)
    assert list(out.verdict) == ["does not hold", "holds", "holds"]
    assert list(out.verdict_moves) == [True, False, False]
    assert out.loc[100, "shift_ci_low"] == pytest.approx(-3.5) == out.loc[100, "shift_ci_high"]  # same shift every seed
    assert knob_sensitivity(_rows(cells), "epochs").step.tolist() == [-1, 0, 1]  # default: the middle
    with pytest.raises(ValueError, match="not in the grid"):
        knob_sensitivity(_rows(cells), "epochs", default=300)


def test_figures_draw_in_a_local_style(tmp_path):
    import matplotlib

    from cda.interval_figures import knob_figure, save_figure, verdict_figure

    before = dict(matplotlib.rcParams)
    cells = {(m, s, ("epochs", e), ("ipc", i)): 60.0 + s + (e / 100 if m == "cda" else 0) + 0.1 * (s % 2)
             for m in ("cda", "sre2l") for s in range(3) for e in (100, 200, 400) for i in (10, 50)}
    table = knob_sensitivity(_rows(cells), "epochs", by=("ipc",))
    fig = knob_figure(table, "epochs", hue="ipc", logx=True)
    ax = fig.axes[0]
    assert len(ax.containers) == 2  # one errorbar line per IPC
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "200", "400"]
    paths = save_figure(fig, tmp_path / "knob")
    assert all(p.stat().st_size > 0 for p in paths)
    verdicts = verdict_table(all_claims(), ROOT / "results", "cpu", write=False)
    fig = verdict_figure(verdicts)
    assert len(fig.axes[0].get_yticklabels()) == (verdicts.n_seeds > 0).sum()
    save_figure(fig, tmp_path / "verdicts")
    assert dict(matplotlib.rcParams) == before


def test_claims_are_declared_by_their_studies_and_rebuild_the_committed_table():
    """Each study declares its claims (cda.studies' `claims=`); cda.verdicts receives them as data and
    never imports the studies; the committed verdict table rebuilds byte for byte from saved results."""
    import subprocess
    import sys

    from cda import studies

    code = "import sys, cda.verdicts; print('cda.studies' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    claims = all_claims()
    assert len({c.id for c in claims}) == len(claims) > 0
    assert all(c in studies.get(c.study).claims for c in claims)
    table = verdict_table(claims, ROOT / "results", "cpu", write=False)
    committed = (ROOT / "results" / "verdicts" / "cpu.csv").read_text()
    assert table.to_csv(index=False, float_format="%.4g") == committed
    with pytest.raises(ValueError, match="declared twice"):
        studies.study("toy_claims", "a toy", draw=lambda df, im: {}, tables=lambda df, root: [],
                      claims=(claims[0],))(lambda ctx: [])
    assert "toy_claims" not in studies.STUDIES
