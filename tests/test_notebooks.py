"""Every notebook runs at the smoke preset under papermill and writes well-formed results, provenance
and figures; the figures can be redrawn from the results alone; the notebooks are stripped."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cda import studies
from cda.notebooks import notebook_paths, redraw_all
from cda.results import COLUMNS, read_results

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_paths(ROOT)


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
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1 and "preset = " in "".join(tagged[0]["source"])
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} has outputs"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_notebooks.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    changed = [p.name for p in NOTEBOOKS if p.read_text() != (tmp_path / p.name).read_text()]
    assert not changed, f"notebooks differ from scripts/build_notebooks.py (rerun it): {changed}"


def test_every_study_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} == set(studies.STUDIES)


def test_paper_numbers_are_tagged_with_their_table():
    for csv in sorted((ROOT / "results" / "paper").glob("*.csv")):
        df = pd.read_csv(csv)
        assert {"paper", "table", "source", "dataset", "ipc", "method", "top1"} <= set(df.columns), csv.name
        assert df.table.notna().all() and df.source.notna().all() and df.top1.between(0, 100).all()


def test_unknown_study_and_missing_results_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown study 'nope'"):
        studies.run("nope", "smoke", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="run the experiment first"):
        studies.load("cda_ablation_scheduler", "smoke", tmp_path)


def test_study_parameters_are_checked_and_custom_runs_write_beside_the_defaults(tmp_path):
    with pytest.raises(ValueError, match="takes no parameter \\['nope'\\]"):
        studies.run("cda_ablation_scheduler", "smoke", root=tmp_path, nope=1)
    st = studies.STUDIES["cda_table2_main_results"]
    # defaults given explicitly (as the notebooks do) are not custom; lists equal tuples
    assert studies._custom_params(st, {"ipcs": None, "methods": ["random", "sre2l", "cda"]}) == {}
    assert studies._custom_params(st, {"methods": ["cda"]}) == {"methods": ["cda"]}
