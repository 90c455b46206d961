"""A study is one declaration: a toy study registered here (what a new file in cda/studies/ would hold)
runs at the smoke preset through the one executor, writes its rows, tables and figures, and has its
notebook built from its declared text."""
import importlib.util
from pathlib import Path

import pytest

from cda import plots, studies
from cda.studies import Notebook, study, top1

ROOT = Path(__file__).resolve().parents[1]
NAME = "toy_real_image_baselines"


def _build_notebooks():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy_study():
    computed = []

    @study(NAME, "Two real-image baselines: random against nearest to the class mean",
           draw=lambda df, images: {"ablation": plots.bar_top1(df, "method", "Real-image baselines")},
           tables=lambda df, root: [("Top-1 (%) by method", top1(df, "method"))],
           notebook=Notebook(title="Toy: two real-image baselines",
                             claim="**Claim.** Images near their class mean train better students than random ones.",
                             params=[("ipc", None, "images per class (default: the ablations' IPC)")],
                             reading="**Reading the result.** A toy: read the code, not the numbers."))
    def compute(ctx, ipc: int | None = None) -> list[dict]:
        computed.append(ipc)  # the compute function runs once per study run
        ipc = ipc or ctx.ablation_ipc()
        return ctx.cells("random", ipc) + ctx.cells("nearest_mean", ipc) + ctx.reference_rows()

    yield computed
    del studies.STUDIES[NAME]


@pytest.mark.slow
def test_a_toy_study_runs_tabulates_draws_and_has_its_notebook(toy_study, tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    overrides = {"ipcs": [1], "squeeze.epochs": 1, "eval.aug.epochs": 1, "full_data": False}
    s = studies.open(NAME, "smoke", overrides, root=tmp_path, progress=False, log=lambda m: None)
    s.distill()
    assert len(s.sets) == 2 and len(s._plan.planned) == 2  # both sets built, both students still to train
    result = s.finish()
    assert toy_study == [None]  # planned and computed in one pass
    top = result.df[result.df.metric == "top1"]
    assert list(top.method) == ["random", "nearest_mean", "teacher"] and top.value.between(0, 100).all()
    assert result.csv == tmp_path / "results" / NAME / f"{s.tag}.csv" and result.csv.is_file()
    assert {p.name for p in result.figures} == {f"{NAME}_ablation.png", f"{NAME}_ablation.pdf"}
    (caption, table), = s.tables()
    assert caption == "Top-1 (%) by method" and list(table.index) == ["random", "nearest_mean", "teacher"]
    assert "No claim of the papers" in str(s.verdicts())

    build = _build_notebooks()
    nb = build.notebook(build.spec(studies.get(NAME)))
    text = {c["id"]: "".join(c["source"]) for c in nb["cells"]}
    assert text["intro"].startswith("# Toy: two real-image baselines\n\n**Claim.** Images near their class mean")
    assert "ipc = None  # images per class" in text["parameters"]
    opened = f'studies.open("{NAME}", preset, overrides, root=notebook_root(output_root, publish, saved), saved=saved, ipc=ipc)'
    assert opened in text["open"]
    assert text["reading"].startswith("**Reading the result.** A toy")
