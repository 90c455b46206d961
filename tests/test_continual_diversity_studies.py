"""The continual-learning and diversity studies (issue 28) at a cut-down smoke preset: their rows,
tables, figures and verdicts, and that they reuse the sets the other studies ask for."""
import pandas as pd
import pytest

from cda import studies

OVERRIDES = {"ipcs": [2], "squeeze.epochs": 1, "recover.iterations": 2, "eval.aug.epochs": 1,
             "cudd.student_epochs": 1, "full_data": False}


def _open(name, tmp_path, **params):
    return studies.open(name, "smoke", OVERRIDES, root=tmp_path, progress=False, log=lambda m: None, **params)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.slow
def test_continual_learning_gives_one_accuracy_per_step_and_set(cache):
    s = _open("cda_continual_learning", cache, methods=["random", "cda"])
    df = s.finish().df
    top = df[df.metric == "top1"]
    assert list(top.method.unique()) == ["random", "cda"] and sorted(top.step.unique()) == [1, 2, 3, 4, 5]
    assert (top.classes_seen == 2 * top.step).all() and top.value.between(0, 100).all()
    images = df[df.metric == "num_images"]
    assert (images.value == 2 * 2 * images.step).all()  # IPC 2, two new classes per step, earlier ones replayed
    (caption, table), (paper_caption, beside), _ = s.tables()
    assert list(table.columns) == [1, 2, 3, 4, 5] and list(table.index) == ["random", "cda"]
    # SRe2L-CL's published numbers are read from results/paper/, beside ours
    paper = pd.read_csv(studies.project_root() / "results" / "paper" / "sre2l_cl_continual.csv")
    theirs = beside[beside.index.str.startswith("SRe2L-CL")]
    assert len(theirs) == 1 and list(theirs.iloc[0][[f"step {i}" for i in range(1, 6)]]) == list(paper.top1)
    assert {p.name for p in s.result.figures} == {"cda_continual_learning_accuracy_vs_step.png",
                                                  "cda_continual_learning_accuracy_vs_step.pdf"}
    verdicts = str(s.verdicts())
    assert "ipc=2, step=5" in verdicts and "vs method=cda" in verdicts

    again = _open("cda_continual_learning", cache, methods=["random", "cda"])
    again.finish()
    continual = [v for k, v in again.ws.cache.ledger.items() if v["kind"] == "continual"]
    assert len(continual) == 2 and all(v["cached"] for v in continual)  # one cached artifact per set and seed


@pytest.mark.slow
def test_diversity_measures_every_set_from_the_shared_cache(cache):
    s = _open("cudd_diversity", cache)
    df = s.finish().df
    variants = ["Random real", "SRe2L", "CDA", "CUDD", "CUDD, one stage"]
    assert list(df.variant.unique()) == variants
    wide = df.pivot_table(index="variant", columns="metric", values="value", sort=False)
    assert wide.spread.between(0, 2).all() and wide.coverage.between(0, 1).all() and (wide.density >= 0).all()
    assert wide.teacher_top1_on_images.between(0, 100).all()
    (caption, table), = s.tables()
    assert list(table.index) == variants and "spread" in table.columns
    verdicts = str(s.verdicts())
    assert "more diverse than SRe2L" in verdicts and "cover more of the real images" in verdicts

    # the sets are the cache entries the accuracy studies use: CUDD's ablation and main table build none
    for name in ("cudd_ablation", "cudd_main_results"):
        other = _open(name, cache, **({"variants": ["CUDD (full)", "one stage (no curriculum)"]}
                                      if name == "cudd_ablation" else {"ipcs": [2]}))
        other.distill()
        built = [k for k, v in other.ws.cache.ledger.items() if v["kind"] == "distilled" and not v["cached"]]
        assert built == [], (name, built)
