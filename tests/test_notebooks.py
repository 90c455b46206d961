"""Every notebook runs at the smoke preset under papermill, step by step, and writes well-formed
results, provenance and figures; the figures can be redrawn from the results alone; the notebooks are
stripped and match their generator; the executed copies show the committed cpu results."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from committed import NOT_BUILT_AT_CPU, built_at_cpu

from cda import studies
from cda.notebooks import notebook_paths, redraw_all
from cda.results import COLUMNS, read_results

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_paths(ROOT)
OWN_DATA = ROOT / "notebooks" / "distill_your_data.ipynb"
RELEASED = ROOT / "notebooks" / "evaluate_released_sets.ipynb"
EXECUTED = ROOT / "notebooks" / "executed"


def _outputs(nb: dict, cell_id: str) -> list[dict]:
    return next(c for c in nb["cells"] if c.get("id") == cell_id)["outputs"]


def _text(outputs: list[dict]) -> str:
    """The text of a cell's outputs: streams, and the plain text of results."""
    parts = [o.get("text", "") if o["output_type"] == "stream" else o.get("data", {}).get("text/plain", "")
             for o in outputs]
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def _has_png(outputs: list[dict]) -> bool:
    return any("image/png" in o.get("data", {}) for o in outputs)


@pytest.fixture(scope="session")
def output_root(tmp_path_factory):
    """One folder for every notebook's results, figures and cache: the smoke teacher is trained once."""
    return tmp_path_factory.mktemp("companion")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_preset(notebook, output_root):
    import papermill

    papermill.execute_notebook(str(notebook), str(output_root / notebook.name),
                               parameters={"preset": "smoke", "output_root": str(output_root)},
                               kernel_name="python3", progress_bar=False, cwd=str(notebook.parent))
    nb = json.loads((output_root / notebook.name).read_text())
    config = _text(_outputs(nb, "config"))
    assert f"study       {notebook.stem}" in config and f"<output_root>/results/{notebook.stem}/smoke.csv" in config
    assert "top-1" in _text(_outputs(nb, "teacher"))
    assert _has_png(_outputs(nb, "distill")) and _has_png(_outputs(nb, "figures"))
    csv = output_root / "results" / notebook.stem / "smoke.csv"
    df = read_results(csv)
    assert len(df) > 0 and list(df.columns[:len(COLUMNS)]) == COLUMNS
    top1 = df[df.metric.str.contains("top1")].value.dropna()
    assert len(top1) > 0 and top1.between(0, 100).all()
    prov = json.loads(csv.with_suffix(".json").read_text())
    assert prov["config"]["preset"] == "smoke" and prov["wall_seconds"] >= 0 and prov["git_commit"]
    assert prov["build_seconds"] > 0 and prov["artifacts_built"] + prov["artifacts_from_cache"] > 0
    figures = sorted((output_root / "figures" / "smoke").glob(f"{notebook.stem}_*"))
    assert {p.suffix for p in figures} == {".png", ".pdf"}
    # every table the notebook shows can be built from the CSV alone
    assert all(len(table) > 0 for _, table in studies.tables(notebook.stem, df, ROOT))


def test_figures_are_redrawn_from_results_alone(output_root):
    results = sorted((output_root / "results").glob("*/smoke.csv"))
    if not results:
        pytest.skip("run after the notebook tests")
    for png in (output_root / "figures" / "smoke").glob("*.png"):
        png.unlink()
    paths = redraw_all("smoke", root=output_root, log=lambda m: None)
    assert paths and all(p.is_file() for p in paths)
    assert len(list((output_root / "figures" / "smoke").glob("*.png"))) >= len(results)


def test_notebooks_are_stripped_and_match_their_specs(tmp_path):
    for path in [*NOTEBOOKS, OWN_DATA, RELEASED]:
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1 and "preset = " in "".join(tagged[0]["source"])
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} has outputs"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_notebooks.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    changed = [p.name for p in [*NOTEBOOKS, OWN_DATA, RELEASED] if p.read_text() != (tmp_path / p.name).read_text()]
    assert not changed, f"notebooks differ from scripts/build_notebooks.py (rerun it): {changed}"


def test_every_study_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} == set(studies.STUDIES)


def test_paper_numbers_are_tagged_with_their_table():
    for csv in sorted((ROOT / "results" / "paper").glob("*.csv")):
        if csv.name == "official_settings.csv":  # settings, not numbers (tests/test_official_settings.py)
            continue
        df = pd.read_csv(csv)
        assert {"paper", "table", "source", "dataset", "ipc", "method", "top1"} <= set(df.columns), csv.name
        assert df.table.notna().all() and df.source.notna().all() and df.top1.between(0, 100).all()


def test_unknown_study_and_missing_results_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown study 'nope'"):
        studies.run("nope", "smoke", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="run the experiment first"):
        studies.load("cda_ablation_scheduler", "smoke", tmp_path)
    with pytest.raises(FileNotFoundError, match="no saved results at .*run the study"):
        studies.open("cda_ablation_scheduler", "smoke", root=tmp_path, saved=True)


def test_study_parameters_are_checked_and_custom_runs_write_beside_the_defaults(tmp_path):
    with pytest.raises(ValueError, match="takes no parameter \\['nope'\\]"):
        studies.run("cda_ablation_scheduler", "smoke", root=tmp_path, nope=1)
    st = studies.STUDIES["cda_table2_main_results"]
    # defaults given explicitly (as the notebooks do) are not custom; lists equal tuples
    assert studies._custom_params(st, {"ipcs": None, "methods": ["random", "sre2l", "cda"]}) == {}
    assert studies._custom_params(st, {"methods": ["cda"]}) == {"methods": ["cda"]}


def test_steps_one_by_one_write_what_run_writes_and_repeat_no_work(output_root):
    """The notebook's steps: distill() builds every set, students() then builds no set, and the
    results equal those of run() (which is open + every step)."""
    s = studies.open("cda_fig_synthesis_steps", "smoke", root=output_root, log=lambda m: None, progress=False,
                     steps=[2, 6])
    assert "steps=[2, 6]" in str(s.config) and s.tag.startswith("smoke-")
    s.teacher()
    s.distill()
    built = {k for k, e in s.ws.cache.ledger.items() if not e["cached"]}
    assert any(k.startswith("distilled/") for k in built) and len(s.sets) == 2
    s.students()
    assert {k for k, e in s.ws.cache.ledger.items() if not e["cached"]} == built  # nothing built twice
    result = s.finish()
    again = studies.run("cda_fig_synthesis_steps", "smoke", root=output_root, log=lambda m: None, progress=False,
                        steps=[2, 6])
    pd.testing.assert_frame_equal(result.df, again.df)
    assert result.csv == again.csv and (result.csv.parent / f"{s.tag}.images.pt").is_file()
    assert [p.name for p in result.figures] == [p.name for p in again.figures]


def test_student_steps_name_the_variant_they_train(output_root):
    lines = []
    s = studies.open("cudd_ablation", "smoke", root=output_root, log=lines.append, progress=False,
                     variants=["CUDD (full)", "no L2 term"])
    s.students()
    assert any("no L2 term" in line and "top-1" in line for line in lines)
    assert any("CUDD (full)" in line and "top-1" in line for line in lines)
    with pytest.raises(ValueError, match="unknown CUDD ablation variant"):
        studies.open("cudd_ablation", "smoke", root=output_root, variants=["nope"]).students()


def test_the_unbuilt_studies_are_the_listed_ones():
    """tests/committed.py names exactly the studies without committed cpu results: a study that loses
    its results fails here, and one that gains them must leave the list (and get its executed copy)."""
    assert set(studies.STUDIES) - set(built_at_cpu()) == NOT_BUILT_AT_CPU
    for name in NOT_BUILT_AT_CPU:
        assert not (EXECUTED / f"{name}.ipynb").exists(), f"{name} has an executed copy but no cpu results"


def test_tables_read_as_people_write_them():
    """No row label reads as a tuple and no IPC as 1.0, on every committed cpu result."""
    for name in built_at_cpu():
        for caption, table in studies.tables(name, studies.load(name, "cpu", ROOT), ROOT):
            text = studies.markdown(table)
            assert "('" not in text and "(np." not in text, (name, caption)
            labels = [*table.index, *table.columns] + (list(table["ipc"]) if "ipc" in table.columns else [])
            assert not any(isinstance(v, float) and v.is_integer() for v in labels), (name, caption, labels)


def test_saved_mode_shows_the_committed_results_and_computes_nothing():
    for name in built_at_cpu():
        lines = []
        s = studies.open(name, "cpu", root=ROOT, saved=True, log=lines.append)
        commit = json.loads((ROOT / "results" / name / "cpu.json").read_text())["git_commit"][:7]
        assert f"loaded from results/{name}/cpu.csv (computed by commit {commit}" in str(s.config)
        s.teacher()  # the teacher's accuracy: in these results, or another study's with its teacher
        if s.teacher_metrics is None:  # no saved results hold this teacher's row: it says so, computes nothing
            assert any("its accuracy is in no saved results" in line for line in lines), (name, lines)
        else:
            assert 0 < s.teacher_metrics["top1"] <= 100, (name, lines)
        s.distill()
        s.labels()
        s.students()
        result = s.finish()
        assert result.figures and all(p.is_file() for p in result.figures)
        assert len(s.tables()) > 0 and not hasattr(s, "ws")
        # the verdicts of the claims this study tests, as the verdict table has them
        claims = studies.get(name).claims
        shown = str(s.verdicts())
        for c in claims:
            assert c.claim in shown, (name, c.id)
        if not claims:
            assert "No claim" in shown


def test_executed_copies_show_the_committed_results_without_volatile_metadata():
    """notebooks/executed/ holds every paper notebook run with saved=True (make executed-notebooks):
    current with the source notebook and with the committed results, with no run-to-run noise."""
    for source in [p for p in NOTEBOOKS if p.stem in built_at_cpu()]:
        path = EXECUTED / source.name
        assert path.is_file(), f"{path} is missing: run `make executed-notebooks`"
        nb, src = json.loads(path.read_text()), json.loads(source.read_text())
        assert set(nb["metadata"]) == {"kernelspec", "language_info"}
        assert nb["cells"][0]["id"] == "executed-copy" and "saved=True" in "".join(nb["cells"][0]["source"])
        for cell in nb["cells"]:
            assert not {"papermill", "execution"} & set(cell["metadata"]), (path.name, cell["metadata"])
        kept = [c for c in nb["cells"][1:] if c["id"] != "injected-parameters"]
        assert [(c["id"], c["source"]) for c in kept] == [(c["id"], c["source"]) for c in src["cells"]], \
            f"{path.name} is older than {source.name}: run `make executed-notebooks`"
        commit = json.loads((ROOT / "results" / source.stem / "cpu.json").read_text())["git_commit"][:7]
        shown = json.dumps(nb)
        assert f"computed by commit {commit}" in shown, f"{path.name} shows older results: run `make executed-notebooks`"
        assert _has_png(_outputs(nb, "distill") + _outputs(nb, "figures"))  # grids once, in distill
        assert "text/markdown" in json.dumps(_outputs(nb, "tables"))
        assert any(v in json.dumps(_outputs(nb, "verdicts")) for v in ("holds", "inconclusive", "No claim"))
        assert "application/vnd.jupyter.widget" not in shown


def test_own_data_notebook_distills_a_folder_and_exports_it(tmp_path):
    import papermill

    from cda import own_data

    tree = own_data.demo_folder(tmp_path / "tree", train_per_class=30, val_per_class=20)
    assert sorted(p.name for p in (tree / "val").iterdir())[:2] == ["Ankle boot", "Bag"]
    out = tmp_path / "out"
    papermill.execute_notebook(str(OWN_DATA), str(tmp_path / OWN_DATA.name), kernel_name="python3",
                               parameters={"preset": "smoke", "data_root": str(tree), "method": "sre2l", "ipc": 2,
                                           "output_root": str(out), "export_dir": str(tmp_path / "set")},
                               progress_bar=False, cwd=str(OWN_DATA.parent))
    df = read_results(next((out / "results" / "distill_your_data").glob("smoke-*.csv")))
    assert {"random", "sre2l", "teacher"} <= set(df.method) and set(df.dataset) == {"imagefolder"}
    exported = tmp_path / "set"
    assert len(list((exported / "images").glob("*/*.png"))) == 10 * 2
    assert json.loads((exported / "classes.json").read_text())["0"] == "Ankle boot"
    from cda.cache import load_torch
    blob = load_torch(exported / "distilled.pt")
    assert blob["images"].shape[0] == 20 and blob["images"].dtype == torch.uint8
    with pytest.raises(ValueError, match="method 'nope'"):
        own_data.open(tree, method="nope")
    with pytest.raises(FileNotFoundError, match="needs train/<class>"):
        own_data.open(tmp_path / "out")


def test_released_sets_notebook_evaluates_a_miniature_release_beside_the_paper(tmp_path):
    import papermill

    papermill.execute_notebook(str(RELEASED), str(tmp_path / RELEASED.name), kernel_name="python3",
                               parameters={"workdir": str(tmp_path / "work")}, progress_bar=False,
                               cwd=str(RELEASED.parent))
    nb = json.loads((tmp_path / RELEASED.name).read_text())
    assert (tmp_path / "work" / "syn_data" / "new000" / "class000_id000.png").is_file()  # the official layout
    assert "'labels': 'online'" in _text(_outputs(nb, "evaluate"))
    beside = _text(_outputs(nb, "beside"))
    assert "this evaluation" in beside and "63.3" in beside and "Table 2" in beside  # read from results/paper/


def test_the_reproduction_cost_counts_each_shared_artifact_once(tmp_path):
    from cda.notebooks import build_cost

    shared = {"teacher/a": {"cached": False, "kind": "teacher", "seconds": 100.0}}
    for name, own in (("cda_ablation_scheduler", {"distilled/b": {"cached": False, "kind": "distilled", "seconds": 20.0}}),
                      ("cda_ablation_direction", {"evaluation/c": {"cached": True, "kind": "evaluation", "seconds": 5.0},
                                                  "evaluation/d": {"cached": True, "kind": "evaluation",
                                                                   "seconds": None}})):
        path = tmp_path / "results" / name / "cpu.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"artifacts": {**shared, **own}}))
    cost = build_cost("cpu", root=tmp_path)
    assert cost["seconds"] == 125.0 and cost["artifacts"] == 4 and cost["untimed"] == 1
    assert cost["by_kind"] == {"distilled": 20.0, "evaluation": 5.0, "teacher": 100.0}
    assert cost["studies"] == ["cda_ablation_scheduler", "cda_ablation_direction"]


def test_every_study_declares_the_axes_it_varies_and_its_notebook_shows_them():
    """A study's grid names columns of its committed cpu results that do vary there, and its
    notebook's introduction names them."""
    for name, st in studies.STUDIES.items():
        assert st.grid, f"{name} declares no grid"
        if name in NOT_BUILT_AT_CPU:
            continue
        df = read_results(ROOT / "results" / name / "cpu.csv")
        assert set(st.grid) <= set(df.columns), (name, st.grid)
        assert any(df[axis].nunique() > 1 for axis in st.grid), (name, st.grid)
        intro = "".join(json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"][0]["source"])
        assert "**Variants compared.** " + " × ".join(f"`{a}`" for a in st.grid) in intro, name
