"""The verdict table's columns beyond the paired t-interval (bootstrap interval, probability of
improvement, Holm across a claim's cells), margin claims against a reference level, and the verdicts
side by side under two student protocols; on small hand-made results."""
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cda.paired_stats import bootstrap_difference, holm, poi_interval
from cda.results import COLUMNS
from cda.studies import all_claims
from cda.verdicts import (
    VERDICT_COLUMNS,
    Claim,
    PaperRef,
    by_claim,
    claim_rows,
    compare,
    protocol_table,
    protocol_verdicts,
    select,
    verdict,
    verdict_table,
)

ROOT = Path(__file__).resolve().parents[1]


def _rows(values: dict, **fixed) -> pd.DataFrame:
    """Long-format results: {(method, seed, ipc, student): value}; ipc None for full-data rows."""
    rows = []
    for (method, seed, ipc, student), value in values.items():
        rows.append({"dataset": "fashion_mnist", "method": method, "ipc": ipc, "teacher": "convnet3",
                     "student": student, "labels": "hard" if ipc is None else "online", "seed": seed,
                     "metric": "top1", "value": value, **fixed})
    return pd.DataFrame(rows)[COLUMNS]


def _pairs(diffs: dict, base: float = 60.0) -> pd.DataFrame:
    """cda − sre2l = diffs[ipc][seed], seeds moving both sides alike."""
    values = {}
    for ipc, d in diffs.items():
        for seed, x in enumerate(d):
            values[("sre2l", seed, ipc, "convnet3")] = base + seed
            values[("cda", seed, ipc, "convnet3")] = base + seed + x
    return _rows(values)


CLAIM = Claim("toy", "CDA", "CDA beats SRe2L", "nowhere", {"method": "cda"}, {"method": "sre2l"}, study="toy")


def test_the_new_columns_are_the_hand_computed_statistics():
    d = [0.5, 1.0, 0.5, 1.0, 1.0]
    (row,) = claim_rows(CLAIM, _pairs({10: d}))
    # two-sided paired t-test: t = mean / (std / sqrt(n)) with n − 1 degrees of freedom
    t = 0.8 / (math.sqrt(0.075) / math.sqrt(5))
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(t, 4))
    assert row["p_holm"] == pytest.approx(row["p_value"])  # a family of one cell
    # the bootstrap interval: the seeds' differences resampled (fixed seed), within their range
    boot = bootstrap_difference([(np.array(d), np.zeros(5))], 2000, 0.95, 0)
    assert (row["boot_low"], row["boot_high"]) == pytest.approx((boot["ci_low"], boot["ci_high"]))
    assert 0.5 <= row["boot_low"] < 0.8 < row["boot_high"] <= 1.0
    # P(cda > sre2l) over all 25 pairs of runs (not only the same seed): cda = 60 + s + d_s, sre2l = 60 + s'
    a, b = np.arange(5) + np.array(d), np.arange(5.0)
    by_hand = np.mean([(x > y) + 0.5 * (x == y) for x in a for y in b])
    assert row["poi"] == pytest.approx(by_hand) and row["poi"] == pytest.approx(16 / 25)
    poi = poi_interval([(a + 60, b + 60)], 2000, 0.95, 0)
    assert (row["poi_low"], row["poi_high"]) == pytest.approx((poi["ci_low"], poi["ci_high"]))
    assert row["verdict"] == row["verdict_holm"] == "holds"
    assert claim_rows(CLAIM, _pairs({10: d})) == [row]  # deterministic: the bootstrap's seed is fixed


def test_holm_turns_cells_that_hold_alone_into_inconclusive_ones():
    """Three cells with p ≈ 0.03 each: every t-interval excludes 0, but across the family no cell
    survives Holm (smallest p × 3 > 0.05)."""
    diffs = {1: [1.0, 2.0, 0.3, 1.5, 0.4], 10: [1.0, 2.2, 0.3, 1.5, 0.5], 50: [0.9, 2.0, 0.2, 1.6, 0.5]}
    rows = claim_rows(CLAIM, _pairs(diffs))
    raw = [r["p_value"] for r in rows]
    assert all(0.03 < p < 0.04 for p in raw)
    assert [r["p_holm"] for r in rows] == pytest.approx(list(holm(raw)))
    assert all(r["p_holm"] > 0.05 for r in rows)
    assert [r["verdict"] for r in rows] == ["holds"] * 3
    assert [r["verdict_holm"] for r in rows] == ["inconclusive"] * 3
    # a strong fourth cell survives the correction, and the others stay inconclusive
    rows = claim_rows(CLAIM, _pairs({**diffs, 100: [5.0, 5.1, 4.9, 5.0, 5.2]}))
    assert [r["verdict_holm"] for r in rows] == ["inconclusive"] * 3 + ["holds"]
    # the other side: a cell below 0 with a small adjusted p does not hold, after Holm too
    (neg,) = claim_rows(CLAIM, _pairs({10: [-5.0, -5.1, -4.9, -5.0, -5.2]}))
    assert neg["verdict"] == neg["verdict_holm"] == "does not hold"


def test_by_claim_counts_the_holm_verdicts(tmp_path):
    diffs = {1: [1.0, 2.0, 0.3, 1.5, 0.4], 10: [1.0, 2.2, 0.3, 1.5, 0.5], 50: [5.0, 5.1, 4.9, 5.0, 5.2]}
    (tmp_path / "cda_table2_main_results").mkdir()
    _pairs(diffs).to_csv(tmp_path / "cda_table2_main_results" / "x.csv", index=False)
    shutil.copytree(ROOT / "results" / "paper", tmp_path / "paper")
    table = verdict_table(all_claims(), tmp_path, "x")
    assert list(table.columns) == VERDICT_COLUMNS
    main = by_claim(table).set_index("id").loc["cda-beats-sre2l"]
    assert (main.holds, main.holds_holm, main.does_not_hold_holm) == (3, 1, 0)
    written = pd.read_csv(tmp_path / "verdicts" / "x.csv")
    assert list(written.columns) == VERDICT_COLUMNS and list(written.verdict_holm[:3]) == list(table.verdict_holm[:3])


GAP = Claim("gap", "CDA", "within 15 points of full data", "abstract", {"method": "cda", "ipc": 50},
            {"method": "full"}, margin=-15.0, b_level=("student",), study="toy")


def _gap_rows(cda: list[float], full: dict) -> pd.DataFrame:
    values = {("cda", s, 50, "convnet3"): v for s, v in enumerate(cda)}
    values.update({("cda", s, 50, "resnet18"): v for s, v in enumerate(cda)})  # a student with no full row
    values.update({("cda", s, 10, "convnet3"): 0.0 for s in range(len(cda))})  # not the claim's IPC
    values.update({("full", seed, None, student): v for (seed, student), v in full.items()})
    return _rows(values)


def test_the_margin_claim_holds_and_fails_against_the_full_data_level():
    cda = [80.0, 81.0, 79.5, 80.5, 80.0]
    # the level is the mean of the full-data rows of the same student (two runs here), not paired by seed;
    # another student's full-data row does not enter it
    rows = _gap_rows(cda, {(0, "convnet3"): 91.0, (7, "convnet3"): 93.0, (0, "resnet50"): 10.0})
    (cell,) = compare(rows, GAP.a, GAP.b, by=GAP.by, b_level=GAP.b_level)
    assert (cell["ipc"], cell["student"], cell["b_mean"], cell["b_runs"]) == (50, "convnet3", 92.0, 2)
    assert cell["mean"] == pytest.approx(np.mean(cda) - 92.0) and cell["n"] == 5
    # the interval is a's own: the level's spread (91 against 93) is not in it
    half = stats.t.ppf(0.975, 4) * np.std(cda, ddof=1) / math.sqrt(5)
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((cell["mean"] - half, cell["mean"] + half))
    (row,) = claim_rows(GAP, rows)
    assert row["difference"] == pytest.approx(-11.8) and row["verdict"] == row["verdict_holm"] == "holds"
    assert row["cell"] == "ipc=50, student=convnet3, b: mean of 2 runs, margin -15"
    assert row["poi"] == 1.0  # every CDA seed is within 15 points of the level
    assert row["p_value"] == pytest.approx(stats.ttest_1samp(np.array(cda) - 92.0, -15.0).pvalue)
    # without the margin the same numbers say CDA is worse than full data
    assert verdict(1, cell) == "does not hold" and verdict(1, cell, margin=-15.0) == "holds"
    # a gap of 20 points: does not hold; a gap straddling 15: inconclusive
    (far,) = claim_rows(GAP, _gap_rows(cda, {(0, "convnet3"): 100.2}))
    assert far["difference"] == pytest.approx(-20.0) and far["verdict"] == far["verdict_holm"] == "does not hold"
    assert far["poi"] == 0.0
    (edge,) = claim_rows(GAP, _gap_rows(cda, {(0, "convnet3"): 95.2}))
    assert edge["verdict"] == edge["verdict_holm"] == "inconclusive"
    with pytest.raises(ValueError, match="b_level column 'teacher' must be one of the cell columns"):
        compare(rows, GAP.a, GAP.b, by=GAP.by, b_level=("teacher",))
    with pytest.raises(ValueError, match="takes no `vs` or `relative_to`"):
        compare(rows, GAP.a, GAP.b, by=GAP.by, b_level=GAP.b_level, relative_to={"ipc": 10})


def test_the_gap_claim_reads_both_paper_rows_and_the_committed_results():
    claim = next(c for c in all_claims() if c.id == "cda-gap-to-full-data")
    ref = claim.paper_ref
    a = select(pd.read_csv(ROOT / "results" / "paper" / ref.file), ref.a)
    b = select(pd.read_csv(ROOT / "results" / "paper" / ref.b_file), ref.b)
    assert len(a) == len(b) == 1 and b.source.item().startswith("torchvision")
    assert ref.number(ROOT / "results") == pytest.approx(a.top1.item() - b.top1.item())
    assert "full_data_reference.csv" in ref.describe()
    with pytest.raises(ValueError, match="full_data_reference.csv: .* matches 0 rows"):
        PaperRef(ref.file, ref.a, {"method": "nope"}, b_file=ref.b_file).number(ROOT / "results")
    # from the committed main table, computing nothing: CDA at the largest IPC against the full-data row
    for preset in ("cpu", "digits"):
        table = verdict_table(all_claims(), ROOT / "results", preset, write=False)
        (row,) = table[table.id == claim.id].to_dict("records")
        df = pd.read_csv(ROOT / "results" / "cda_table2_main_results" / f"{preset}.csv")
        top = df[df.metric == "top1"]
        full = top[top.method == "full"].value.mean()
        cda = top[(top.method == "cda") & (top.ipc == top.ipc.max()) & (top.labels != "hard")].value
        assert row["difference"] == pytest.approx(cda.mean() - full) and row["n_seeds"] == len(cda)
        assert row["verdict"] == verdict(1, (row["ci_low"], row["ci_high"]), margin=-15.0)


def _verdicts(cells: dict) -> pd.DataFrame:
    return pd.DataFrame([{"id": cid, "paper": "CDA", "claim": cid, "study": "s", "cell": cell, "ours": "",
                          "verdict": v, "verdict_holm": v} for (cid, cell), v in cells.items()])


def test_protocol_table_marks_the_verdicts_that_move():
    tuned = _verdicts({("x", "ipc=1"): "holds", ("x", "ipc=10"): "inconclusive", ("y", "ipc=1"): "holds",
                       ("z", ""): "not measured"})
    kd = _verdicts({("x", "ipc=1"): "holds", ("x", "ipc=10"): "does not hold", ("y", ""): "not measured",
                    ("z", ""): "not measured"})
    t = protocol_table({"tuned": tuned, "kd": kd}).set_index(["id", "cell"])
    assert t.loc[("x", "ipc=1"), "across_protocols"] == "agrees"
    assert t.loc[("x", "ipc=10"), "across_protocols"] == "protocol-dependent"
    assert t.loc[("y", "ipc=1"), "across_protocols"] == "one protocol measured"
    assert ("y", "") not in t.index  # the other protocol's "not measured" row gives no row of its own
    assert t.loc[("z", ""), "across_protocols"] == "not measured"
    assert list(t.loc["x", "claim_across_protocols"]) == ["protocol-dependent"] * 2
    assert t.loc[("y", "ipc=1"), "claim_across_protocols"] == ""
    assert t.loc[("x", "ipc=10"), "verdict_kd"] == "does not hold"
    with pytest.raises(ValueError, match="at least two"):
        protocol_table({"tuned": tuned})


def test_protocol_verdicts_put_the_second_protocols_results_beside_the_tuned_ones(tmp_path):
    (tmp_path / "cda_table2_main_results").mkdir()
    shutil.copytree(ROOT / "results" / "paper", tmp_path / "paper")
    assert protocol_verdicts(all_claims(), tmp_path, "x") is None  # nothing built under a protocol
    wobble = [0.3, -0.2, 0.1, -0.4, 0.2]
    _pairs({10: [2 + w for w in wobble], 50: [-2 + w for w in wobble]}).to_csv(
        tmp_path / "cda_table2_main_results" / "x.csv", index=False)
    _pairs({10: [3 * w for w in wobble], 50: [-2 + w for w in wobble]}).to_csv(
        tmp_path / "cda_table2_main_results" / "x-kd.csv", index=False)
    table = protocol_verdicts(all_claims(), tmp_path, "x")
    main = table[table.id == "cda-beats-sre2l"].set_index("cell")
    assert list(main.verdict_tuned) == ["holds", "does not hold"]
    assert list(main.verdict_kd) == ["inconclusive", "does not hold"]
    assert list(main.across_protocols) == ["protocol-dependent", "agrees"]
    assert (tmp_path / "verdicts" / "x-kd.csv").is_file()
    written = pd.read_csv(tmp_path / "verdicts" / "x-protocols.csv")
    assert len(written) == len(table) and "across_protocols" in written.columns


def test_the_verdict_figure_marks_a_claims_margin():
    from cda.interval_figures import verdict_figure

    table = verdict_table(all_claims(), ROOT / "results", "digits", write=False)
    ax = verdict_figure(table).axes[0]
    (marks,) = [c for c in ax.collections if c.get_label() == "claim's margin"]
    assert [x for x, _ in marks.get_offsets()] == [-15.0]
    assert "claim's margin" in [t.get_text() for t in ax.get_legend().get_texts()]
