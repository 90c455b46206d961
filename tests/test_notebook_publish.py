"""A notebook writes where `cda run` does: runs/ unless its `publish` parameter is true (one rule,
cda.notebooks.output_root, shared with the command line)."""
import json
import os
from pathlib import Path

import pytest

from cda.config import ConfigError
from cda.notebooks import notebook_root, output_root

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "cda_fig_synthesis_steps.ipynb"  # the quickest at smoke


def test_the_rule_runs_unless_publish(monkeypatch, tmp_path):
    monkeypatch.setenv("CDA_ROOT", str(tmp_path))
    assert output_root() == tmp_path / "runs"
    assert output_root(publish=True) == tmp_path
    assert output_root(root=tmp_path / "x") == tmp_path / "x"
    with pytest.raises(ConfigError, match="drop --output-root"):
        output_root(True, tmp_path / "x")
    # saved=True computes nothing: it shows the committed results
    assert notebook_root(saved=True) == tmp_path and notebook_root() == tmp_path / "runs"


def test_every_notebook_has_the_publish_parameter():
    for path in sorted((ROOT / "notebooks").glob("c*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        assert "publish = False" in "".join(params["source"]), path
        assert "notebook_root(output_root, publish, saved)" in "".join(c["source"] if isinstance(c["source"], str)
                                                                        else "".join(c["source"]) for c in cells), path


@pytest.mark.slow
def test_papermill_at_smoke_writes_runs_not_results(monkeypatch, tmp_path):
    import papermill

    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("CDA_ROOT", str(project))  # the kernel's project folder
    monkeypatch.setenv("CDA_CACHE_DIR", os.environ.get("CDA_CACHE_DIR") or str(tmp_path / "cache"))
    run = lambda **params: papermill.execute_notebook(  # noqa: E731
        str(NOTEBOOK), str(tmp_path / "out.ipynb"), parameters={"preset": "smoke", **params},
        kernel_name="python3", progress_bar=False, cwd=str(NOTEBOOK.parent))
    run()
    assert (project / "runs" / "results" / NOTEBOOK.stem / "smoke.csv").is_file()
    assert list((project / "runs" / "figures" / "smoke").glob(f"{NOTEBOOK.stem}_*.png"))
    assert not (project / "results").exists() and not (project / "figures").exists()
    run(publish=True)  # from the cache: seconds
    assert (project / "results" / NOTEBOOK.stem / "smoke.csv").is_file()


def test_a_study_reads_its_commit_when_it_opens_its_workspace(tmp_path, monkeypatch):
    """A build takes minutes to hours, and the checkout may move meanwhile: the provenance names the
    commit the study started with (read once per process), not the one at the end."""
    from cda import results, studies

    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    results.git_commit.cache_clear()
    s = studies.open("cudd_diversity", "smoke", root=tmp_path, progress=False, log=lambda m: None)
    assert results.git_commit.cache_info().currsize == 0
    s.ws  # noqa: B018 (opening the workspace reads nothing else: no data, no teacher)
    assert results.git_commit.cache_info().currsize == 1
