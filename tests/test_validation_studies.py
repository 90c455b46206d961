"""The two student-protocol studies of issue 28: `cda_best_vs_last_student` (students validated during
training, the last against the best on validation) and `cudd_student_loss` (CUDD's KL against its
mse_gt student loss), at a shrunken smoke preset, and their tables on hand-made results."""
import math

import pandas as pd
import pytest

from cda import studies
from cda.cells import Pending
from cda.config import EvalConfig, preset
from cda.paths import run_tag
from cda.pipeline import Workspace
from cda.studies import cda_best_vs_last_student as bvl
from cda.studies import cudd_student_loss as csl

TINY = {"ipcs": [1], "squeeze.epochs": 1, "recover.iterations": 2, "eval.aug.epochs": 3, "full_data": False,
        "cudd.student_epochs": 1}


def test_the_study_asks_for_a_validation_split_only_where_the_preset_has_none():
    smoke, cpu = preset("smoke"), preset("cpu")
    assert smoke.data.validation == 0 and bvl.with_validation(smoke).data.validation == bvl.HELD_OUT
    assert bvl.with_validation(cpu) is cpu  # the preset's own 500 per class: its cached teacher and sets
    held = bvl.with_validation(smoke).data
    assert (held.test_per_class, held.subset_seed) == (smoke.data.test_per_class, smoke.data.subset_seed)


def test_curves_become_one_row_per_validation_also_for_pending_students():
    row = {"method": "cda", "seed": 0}
    done = [dict(row, metric="top1", value=50.0), dict(row, metric="val_curve", value=[[2, 40.0], [4, 45.0]])]
    out = bvl.curve_rows([done[0], Pending(lambda: done)])
    assert out[0] == done[0] and isinstance(out[1], Pending)
    resolved = out[1].compute()
    assert [(r["metric"], r.get("epoch"), r["value"]) for r in resolved] == [
        ("top1", None, 50.0), ("val_top1", 2, 40.0), ("val_top1", 4, 45.0)]


def _results(last: dict, best: dict) -> pd.DataFrame:
    """Long rows of three seeds: {method: [top-1 per seed]} for the last and the best students."""
    rows = []
    for method in last:
        for seed, (lt, bt) in enumerate(zip(last[method], best[method])):
            base = dict(method=method, seed=seed, student="convnet3", ipc=10)
            rows += [dict(base, metric="top1", value=lt), dict(base, metric="best_top1", value=bt),
                     dict(base, metric="best_epoch", value=100 + seed), dict(base, metric="best_val_top1", value=60.0),
                     dict(base, metric="val_top1", epoch=200, value=55.0)]
    return pd.DataFrame(rows)


def test_the_difference_table_pairs_seeds_and_shows_how_the_choice_moves_cda_minus_sre2l():
    df = _results({"sre2l": [50, 52, 54], "cda": [53, 54, 58]}, {"sre2l": [51, 52, 55], "cda": [53, 56, 58]})
    table = bvl.difference_table(df)
    assert list(table.index) == ["CDA − SRe2L"] and table.loc["CDA − SRe2L", "seeds"] == 3
    # last: differences 3, 2, 4 (mean 3, std 1); best: 2, 4, 3 (mean 3); best − last: -1, 2, -1 (mean 0, std √3)
    t = 4.302652729911275  # t(0.975, 2)
    assert table.loc["CDA − SRe2L", "last students"] == f"+3.0 [{3 - t / math.sqrt(3):+.1f}, {3 + t / math.sqrt(3):+.1f}]"
    assert table.loc["CDA − SRe2L", "best on validation"].startswith("+3.0 [")
    assert table.loc["CDA − SRe2L", "best − last"] == f"+0.0 [{-t:+.1f}, {t:+.1f}]"
    sel = bvl.selection_table(df)
    assert sel.loc["CDA", "last (the tables')"] == "55.0 ± 2.6" and sel.loc["CDA", "best − last (points)"] == "0.7 ± 1.2"
    assert sel.loc["SRe2L", "epoch of the best"] == "101.0 ± 1.0"


def test_the_loss_table_gives_mse_minus_kl_per_set_paired_by_seed():
    rows = [dict(method=m, seed=s, loss=lo, metric="top1", value=v)
            for m, per in {"cudd": {"kl": [60, 62], "mse_gt": [58, 61]}}.items()
            for lo, vals in per.items() for s, v in enumerate(vals)]
    table = csl.loss_difference(pd.DataFrame(rows))
    t = 12.706204736174698  # t(0.975, 1); differences -2, -1: mean -1.5, std √0.5
    half = t * math.sqrt(0.5) / math.sqrt(2)
    assert table.loc["CUDD", "MSE + 0.1 CE − KL (points)"] == "-1.5"
    assert table.loc["CUDD", "95% interval"] == f"[{-1.5 - half:+.1f}, {-1.5 + half:+.1f}]"


def test_an_unknown_loss_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    s = studies.open("cudd_student_loss", "smoke", TINY, root=tmp_path, progress=False, log=lambda m: None,
                     losses=["mse"])
    with pytest.raises(ValueError, match="unknown student loss\\(es\\) \\['mse'\\]; choose from \\['kl', 'mse_gt'\\]"):
        s.distill()  # before any set or student is built
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_best_vs_last_validates_every_student_on_held_out_images_at_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    s = studies.open("cda_best_vs_last_student", "smoke", TINY, root=tmp_path, progress=False, log=lambda m: None)
    # asked for by the study, not an override: the results keep the name the overrides give them
    assert s.cfg.data.validation == bvl.HELD_OUT and s.tag == run_tag("smoke", TINY)
    df = s.finish().df
    for method in ("random", "sre2l", "cda"):
        m = df[df.method == method]
        value = dict(zip(m.metric, m.value))
        curve = m[m.metric == "val_top1"].sort_values("epoch")
        assert list(curve.epoch) == [1, 2, 3]  # val_every: a twentieth of 3 epochs, at least 1
        assert value["top1"] == value["last_top1"]  # the tables' number is the last student's
        assert value["best_val_top1"] == curve.value.max() and value["best_epoch"] in (1, 2, 3)
        assert curve[curve.epoch == value["best_epoch"]].value.iloc[0] == curve.value.max()
        assert 0 <= value["best_top1"] <= 100
    # the tests were on the whole test split: 20 images per class, none held out
    assert len(s.ws.test) == 200 and len(s.ws.tested_on(EvalConfig(split="val"))) == 10 * bvl.HELD_OUT
    tables = s.tables()
    assert [len(t) for _, t in tables] == [3, 3, 3]
    assert {p.name for p in s.result.figures} == {"cda_best_vs_last_student_validation_curves.png",
                                                  "cda_best_vs_last_student_validation_curves.pdf"}
    assert "No claim of the papers" in str(s.verdicts())


@pytest.mark.slow
def test_student_loss_trains_each_set_with_both_losses_and_reuses_the_kl_students(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    cfg = preset("smoke", cache_dir=str(tmp_path / "cache"), **TINY)
    kl = Workspace(cfg, progress=False, log=lambda m: None).evaluation("cudd", 1)  # the default student (KL)
    df = studies.run("cudd_student_loss", "smoke", TINY, root=tmp_path, progress=False, log=lambda m: None,
                     methods=["sre2l", "cda", "cudd"]).df
    top = df[df.metric == "top1"].set_index(["method", "loss"]).value
    assert sorted(top.index) == sorted((m, lo) for m in ("sre2l", "cda", "cudd") for lo in ("kl", "mse_gt"))
    assert top["cudd", "kl"] == kl["top1"]  # the KL cell is the default student, read from the cache
    seconds = df[(df.metric == "seconds") & (df.method == "cudd")].set_index("loss").value
    assert seconds["kl"] == kl["seconds"]
    assert top.between(0, 100).all()
