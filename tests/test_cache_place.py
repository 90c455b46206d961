"""Where the cache goes has one rule (cda.paths.cache_dir), which the CLI, tuning and the studies
call; nothing is passed to them through os.environ."""
import os
from pathlib import Path

from cda import cli
from cda.config import preset
from cda.paths import cache_dir


def test_the_rule(tmp_path, monkeypatch):
    project = (tmp_path / "project").resolve()
    project.mkdir()
    monkeypatch.setenv("CDA_ROOT", str(project))
    assert cache_dir("/abs/cache", project / "runs") == "/abs/cache", "an absolute folder as it is"
    # the project's own outputs (runs/, --publish, notebooks) share the project's cache ...
    for root in (project / "runs", project, None):
        assert cache_dir(".cache/cda", root) == str(project / ".cache" / "cda"), root
    # ... another output root (--output-root), even inside the project, keeps its own
    for other in (tmp_path / "elsewhere", project / "mine"):
        assert cache_dir(".cache/cda", other) == str(other.resolve() / ".cache/cda")


def test_cda_cache_dir_is_the_users_override(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_ROOT", str(tmp_path))
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "mine"))
    cfg = preset("smoke")
    assert cache_dir(cfg.cache_dir, tmp_path / "runs") == str(tmp_path / "mine")


def test_cli_run_outputs_use_the_rule_and_leave_the_environment_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_ROOT", str(tmp_path))
    monkeypatch.delenv("CDA_CACHE_DIR", raising=False)
    args = cli.build_parser().parse_args(["run", "--preset", "smoke"])
    root = cli._output_root(args)
    cfg = cli._run_outputs(args, preset("smoke"), root)
    assert Path(cfg.cache_dir) == tmp_path.resolve() / ".cache" / "cda"
    assert "CDA_CACHE_DIR" not in os.environ
    assert not hasattr(cli, "_shared_cache")
    elsewhere = cli.build_parser().parse_args(["run", "--preset", "smoke", "--output-root", str(tmp_path / "out")])
    cfg = cli._run_outputs(elsewhere, preset("smoke"), cli._output_root(elsewhere))
    assert Path(cfg.cache_dir) == (tmp_path / "out").resolve() / ".cache" / "cda"
