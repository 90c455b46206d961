"""cda tune: choices made on the validation split, one knob at a time, recorded with their grid."""
import json

import pandas as pd
import pytest

from cda.config import ConfigError, EvalConfig, preset, with_field
from cda.pipeline import Workspace
from cda.tuning import (
    CUDD_GRID,
    DEFAULT_STAGES,
    FAST_GRID,
    TUNE_STAGES,
    TuneConfig,
    _parse,
    _stage,
    _winner,
    best_mean,
    sensitivity,
    tune,
)


def _rows(points):
    return [{"method": m, "value_text": v, "value": acc} for v, m, acc in points]


def test_a_knob_moves_only_for_a_gain_above_the_threshold():
    rows = _rows([("1", "random", 70.0), ("1", "random", 72.0), ("4", "random", 71.1), ("4", "random", 71.1),
                  ("20", "random", 71.5), ("20", "random", 71.5), ("4", "cda", 99.0)])
    assert _winner(rows, 1.0, ["random"], 0.2) == 20.0  # 71.5 > 71.0 + 0.2
    assert _winner(rows, 1.0, ["random"], 0.6) == 1.0  # 0.5 points is within the threshold
    assert _winner(rows, 1.0, ["random", "cda"], 0.2) == 4.0  # the mean over the methods asked for
    assert _parse("0.25-1", (0.08, 1.0)) == (0.25, 1.0) and _parse("10", 1) == 10 and _parse("none", "x") == "none"


def test_unknown_knobs_are_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="EvalConfig has no field 'temp'"):
        TuneConfig(protocol=(("temp", (1.0,)),))
    with pytest.raises(ConfigError, match="no field"):
        TuneConfig(recovery=(("aug.epochs", (1,)),))
    assert with_field(EvalConfig(), "aug.epochs", 7).aug.epochs == 7


def test_tuning_needs_a_validation_split(tmp_path):
    with pytest.raises(ConfigError, match="data.validation"):
        tune(preset("smoke", cache_dir=str(tmp_path)), TuneConfig(), tmp_path / "t.csv")


def test_students_can_be_tested_on_the_validation_split(tmp_path):
    ws = Workspace(preset("smoke", cache_dir=str(tmp_path), **{"data.validation": 5}), progress=False,
                   log=lambda m: None)
    val = ws.tested_on(EvalConfig(split="val"))
    assert len(val) == 50 and ws.tested_on(EvalConfig()) is ws.test
    train_ids = {x.numpy().tobytes() for x in ws.train.take(range(len(ws.train)))}
    assert not any(x.numpy().tobytes() in train_ids for x in val.take(range(len(val)))), \
        "validation images must not be training images"


def test_tune_runs_the_grid_and_records_the_winners(tmp_path):
    cfg = preset("smoke", cache_dir=str(tmp_path / "cache"), **{"data.validation": 5})
    tc = TuneConfig(ipc=1, seeds=(0, 1), protocol=(("temperature", (1.0, 20.0)),),
                    recovery=(("bn_groups", (1, 2)),), cudd=(("adv", (0.0, 1.0)),), min_gain=0.0)
    out = tune(cfg, tc, tmp_path / "tuning.csv", progress=False, log=lambda m: None)
    df = pd.read_csv(tmp_path / "tuning.csv")
    # every point, method and seed: 2 temperatures x 3 methods x 2 seeds, then 2 values x 2 methods x 2 seeds;
    # where a knob moved, the preset and the tuned combination side by side
    moved_p, _moved_r = out["protocol"]["temperature"] != 20.0, out["recovery"]["bn_groups"] != 1
    combined = df[df.knob == "combined"]
    assert len(df[df.stage == "protocol"]) == 12 + 12 * (len(combined[combined.stage == "protocol"]) > 0)
    assert len(df[df.stage == "recovery"]) == 8 + 8 * (len(combined[combined.stage == "recovery"]) > 0)
    # CUDD's weights: CUDD's sets only, 2 values x 2 seeds (+ the combination where adv moved)
    assert set(df[df.stage == "cudd"].method) == {"cudd"} and "cudd" not in set(df[df.stage != "cudd"].method)
    assert len(df[df.stage == "cudd"]) == 4 + 4 * (out["cudd"]["adv"] != 1.0)
    assert (out["cudd"]["adv"] != 1.0) == ("cudd.adv" in out["overrides"])
    assert set(combined.value_text) <= {"preset", "tuned"}
    if len(combined[combined.stage == "protocol"]) == 0:
        assert not moved_p
    assert set(df.seed) == {0, 1} and (df.metric == "top1").all()
    for _, g in df.groupby(["stage", "knob"]):
        assert g[g.winner].value_text.nunique() == 1, "one winning value per knob, on all of its rows"
    prov = json.loads((tmp_path / "tuning.json").read_text())
    assert prov["winners"]["protocol"]["temperature"] in ("1", "20")
    assert set(out["protocol"]) == {"temperature"} and set(out["recovery"]) == {"bn_groups"}
    assert set(out["cudd"]) == {"adv"} and prov["winners"]["cudd"]["adv"] in ("0", "1")
    assert out["at_edge"] == [] and prov["at_edge"] == []  # two-value grids have no inside to leave
    # the table and the sensitivity of CDA - SRe2L at each value (two seeds: an interval); CUDD's knobs
    # have no CDA - SRe2L difference and are left out of it
    assert set(best_mean(df).method) == {"random", "sre2l", "cda", "cudd"}
    sens = sensitivity(df)
    both = df[df.stage != "cudd"].groupby(["stage", "knob"]).ngroups
    assert len(sens) == 2 * both and sens["ci_low"].notna().all() and "cudd" not in set(sens.stage)
    assert sensitivity(df[df.stage == "cudd"]).empty  # `cda tune --stages cudd` then draws no sensitivity figure


def test_a_best_value_at_the_grids_edge_is_reported(tmp_path):
    # a fake scorer: accuracy rises with epochs, peaks inside the lr grid; one seed, the random baseline
    def run(knob, value, is_default, method, e):
        score = e.aug.epochs / 10 - abs(e.lr - 0.002) * 5000
        return [dict(method=method, seed=0, value=score, knob=knob, value_text=str(value), default=is_default)]

    logged = []
    grid = (("aug.epochs", (100, 200, 400)), ("lr", (0.001, 0.002, 0.004)), ("temperature", (1.0, 20.0)),
            ("aug.batch_size", (32, 64, 128)))  # the scorer ignores the batch: a tie, no edge
    chosen, rows, edges = _stage("protocol", grid, {"random": EvalConfig()}, EvalConfig(), ["random"], run, 1.0,
                                 logged.append)
    assert edges == ["aug.epochs"] and chosen["aug.epochs"] == 400 and chosen["lr"] == 0.002
    assert any("aug.epochs: the best value 400 is the grid's largest" in m for m in logged)


def test_ablations_run_the_first_seeds_and_main_tables_all(tmp_path):
    from cda.studies import Context, get

    cfg = preset("smoke", cache_dir=str(tmp_path), eval_seeds=(0, 1, 2, 3, 4), ablation_seeds=3)
    ws = Workspace(cfg, progress=False, log=lambda m: None)
    assert Context(ws, main=True).seeds == (0, 1, 2, 3, 4)
    assert Context(ws, main=False).seeds == (0, 1, 2)
    assert Context(Workspace(preset("smoke", cache_dir=str(tmp_path), eval_seeds=(0, 1)), progress=False,
                             log=lambda m: None), main=False).seeds == (0, 1), "0: every seed"
    assert get("cda_table2_main_results").main and get("cudd_main_results").main
    assert not get("cda_ablation_scheduler").main
    p = preset("cpu")
    assert len(p.eval_seeds) >= 5 and p.ablation_seeds >= 3 and p.seed_scope == "all" and p.data.validation


def test_the_command_line_refuses_tuning_without_a_validation_split_and_writes_verdicts(tmp_path, capsys):
    from cda.cli import main

    assert main(["tune", "--preset", "smoke", "--output-root", str(tmp_path), "--no-progress"]) == 2
    assert "data.validation" in capsys.readouterr().err
    assert main(["verdicts", "--preset", "smoke", "--output-root", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "results" / "verdicts" / "smoke.csv")
    assert (table.verdict == "not measured").all() and "results_commit" in table.columns


def test_the_command_line_names_every_stage_and_a_subset_writes_beside_the_full_tuning(tmp_path, monkeypatch):
    import cda.cli as cli
    from cda import tuning

    assert all(getattr(TuneConfig(), n) for n in DEFAULT_STAGES)  # each default stage has a default grid
    seen = {}

    def fake_tune(cfg, tc, csv, progress=True):
        seen.update(tc=tc, csv=csv)
        raise SystemExit(0)

    monkeypatch.setattr(tuning, "tune", fake_tune)
    with pytest.raises(SystemExit):
        cli.main(["tune", "--preset", "smoke", "--output-root", str(tmp_path), "--stages", "cudd", "--no-progress"])
    assert seen["tc"].protocol == () and seen["tc"].recovery == () and seen["tc"].cudd == CUDD_GRID
    assert seen["csv"].name == "smoke-cudd.csv"
    with pytest.raises(SystemExit):
        cli.main(["tune", "--preset", "smoke", "--output-root", str(tmp_path), "--ipc", "1", "--stages", "protocol",
                  "--no-progress"])
    assert seen["tc"].ipc == 1 and seen["csv"].name == "smoke-ipc1-protocol.csv"
    # the faster-convergence stage joins only when asked for: the default run keeps its meaning
    assert TuneConfig().fast == () and "fast" in TUNE_STAGES and "fast" not in DEFAULT_STAGES
    assert {k for k, _ in FAST_GRID} >= {"schedule", "ema_decay", "label_smoothing", "lr", "aug.batch_size"}
    with pytest.raises(SystemExit):
        cli.main(["tune", "--preset", "smoke", "--output-root", str(tmp_path), "--no-progress"])
    assert seen["tc"].fast == () and seen["csv"].name == "smoke.csv"
    with pytest.raises(SystemExit):
        cli.main(["tune", "--preset", "smoke", "--output-root", str(tmp_path), "--stages", "fast", "--no-progress"])
    assert seen["tc"].fast == FAST_GRID and seen["tc"].protocol == () and seen["csv"].name == "smoke-fast.csv"
