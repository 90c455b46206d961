"""Every notebook runs at the smoke preset under papermill and writes a well-formed results file."""
from pathlib import Path

import pytest

from cda.results import read_results

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_preset(notebook, tmp_path):
    import papermill

    params = {"preset_name": "smoke",
              "overrides": {"cache_dir": str(tmp_path / "cache"), "out_dir": str(tmp_path / "out")}}
    papermill.execute_notebook(str(notebook), str(tmp_path / notebook.name), parameters=params,
                               kernel_name="python3", progress_bar=False, cwd=str(notebook.parent))
    df = read_results(tmp_path / "out" / "results.csv")
    assert (df[df.metric == "top1"].value.between(0, 100)).all()
