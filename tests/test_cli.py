"""The command line tells the truth: errors are one line (a traceback with --debug), every subcommand
takes the same config flags, `cda study` prints the tables of the run it made, and nothing but
--publish writes into the project's results/."""
import argparse
import hashlib
from pathlib import Path

import pytest
import torch

from cda import cli
from cda.cli import build_parser, main
from cda.results import read_results


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder of our own ($CDA_ROOT), with committed-looking results in results/."""
    root = tmp_path / "project"
    committed = root / "results" / "cda_table2_main_results"  # the main table's one home
    committed.mkdir(parents=True)
    (committed / "smoke.csv").write_text("committed\n")
    monkeypatch.setenv("CDA_ROOT", str(root))
    monkeypatch.delenv("CDA_CACHE_DIR", raising=False)
    return root.resolve()


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- errors --------------------------------------------------------------------------------------

def test_errors_are_one_line_with_a_hint_and_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--set", "ipcs=[0]"]) == 2
    err = capsys.readouterr().err
    assert "ipcs=(0,): must be positive" in err and "--debug" in err and "Traceback" not in err
    assert main(["run", "--preset", "smoke", "--set", "ipcs=[0]", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ConfigError" in err

    missing = ["recover", "--preset", "smoke", "--teacher", str(tmp_path / "none.pt"), "--ipc", "1",
               "--out", str(tmp_path / "d")]
    assert main(missing) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "--debug" in err and "Traceback" not in err
    assert main([*missing, "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_an_internal_error_such_as_cuda_out_of_memory_shows_its_traceback_with_debug(monkeypatch, capsys, project):
    import cda.pipeline

    def out_of_memory(cfg, progress=True, log=print):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(cda.pipeline, "run", out_of_memory)
    assert main(["run", "--preset", "smoke"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA out of memory" in err and "--debug" in err
    assert main(["run", "--preset", "smoke", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "out_of_memory" in err


# --- the same flags everywhere --------------------------------------------------------------------

REQUIRED = {"squeeze": ["--out", "t.pt"], "recover": ["--teacher", "t.pt", "--ipc", "1", "--out", "d"],
            "relabel": ["--teacher", "t.pt", "--distilled", "d", "--out", "l"], "evaluate": ["--distilled", "d"],
            "study": ["cda_ablation_scheduler"], "cache": ["verify"]}


def test_every_subcommand_takes_device_data_root_and_set():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) >= {"run", "squeeze", "recover", "relabel", "evaluate", "study", "notebooks", "figures"}
    for command in set(commands) - {"standin"}:  # standin writes a dataset: it takes no run config
        args = parser.parse_args([command, *REQUIRED.get(command, []), "--preset", "smoke", "--device", "cpu",
                                  "--data-root", "/data/x", "--set", "recover.lr=0.5", "--debug"])
        assert cli._overrides(args) == {"recover.lr": 0.5, "device": "cpu", "data.root": "/data/x"}, command
        assert cli._load_config(args).data.root == "/data/x"


def test_study_notebooks_and_figures_pass_the_flags_on(monkeypatch, capsys, project):
    from cda import notebooks, studies

    seen = {}
    monkeypatch.setattr(notebooks, "run_notebooks", lambda *a, **kw: seen.update(notebooks=kw))
    assert main(["notebooks", "--preset", "smoke", "--only", "cudd_ablation", "--set", "eval_seeds=[0,1]",
                 "--device", "cpu", "--data-root", "/data/x"]) == 0
    assert seen["notebooks"]["overrides"] == {"eval_seeds": [0, 1], "device": "cpu", "data.root": "/data/x"}
    assert seen["notebooks"]["output_root"] == project.resolve() / "runs"

    def study_run(*args, **kwargs):
        seen.update(study=args)
        raise RuntimeError("stopped here")

    monkeypatch.setattr(studies, "run", study_run)
    assert main(["study", "cda_ablation_scheduler", "--preset", "smoke", "--set", "recover.lr=0.5",
                 "--data-root", "/data/x"]) == 1
    assert seen["study"][:4] == ("cda_ablation_scheduler", "smoke", {"recover.lr": 0.5, "data.root": "/data/x"},
                                 project.resolve() / "runs")
    # a field that does not exist is a configuration error before anything runs
    assert main(["notebooks", "--preset", "smoke", "--set", "recover.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_a_study_prints_the_tables_of_its_own_run_and_figures_finds_it(tmp_path, capsys, project):
    """With --set the study writes <preset>-<hash>.csv; what it prints comes from that file, not from
    the default <preset>.csv (here a file of made-up numbers)."""
    from cda import studies

    out = tmp_path / "out"
    name = "cudd_fig_visual_comparison"
    args = ["--preset", "smoke", "--no-progress", "--output-root", str(out), "--set", "recover.iterations=3"]
    assert main(["study", name, *args]) == 0
    printed = capsys.readouterr().out
    made = sorted((out / "results" / name).glob("smoke-*.csv"))
    assert len(made) == 1 and not (out / "results" / name / "smoke.csv").exists()
    df = read_results(made[0])
    for caption, table in studies.tables(name, df, out):
        assert f"{caption}\n\n{table.to_markdown()}" in printed
    assert str(made[0]) in printed

    # the default results of the same root hold other numbers: they must not be what is printed
    df.assign(value=98765.0).to_csv(out / "results" / name / "smoke.csv", index=False)
    assert main(["study", name, *args]) == 0
    printed_again = capsys.readouterr().out
    assert "98765" not in printed_again
    for caption, table in studies.tables(name, read_results(made[0]), out):
        assert f"{caption}\n\n{table.to_markdown()}" in printed_again

    # `cda figures` with the same flags redraws that run's figures (the same <preset>-<hash> name)
    for png in (out / "figures" / made[0].stem).glob("*.png"):
        png.unlink()
    assert main(["figures", "--only", name, *args]) == 0
    assert list((out / "figures" / made[0].stem).glob(f"{name}_*.png"))


# --- where results go -----------------------------------------------------------------------------

def test_print_config_shows_where_a_run_writes(project, capsys):
    def out_dir(*flags):
        assert main(["run", "--preset", "smoke", "--print-config", *flags]) == 0
        line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("out_dir:"))
        return Path(line.split(":", 1)[1].strip())

    assert out_dir() == project / "runs" / "results" / "main" / "smoke"
    assert out_dir("--publish") == project / "results" / "cda_table2_main_results"
    custom = out_dir("--set", "ipcs=[1]")
    assert custom.parent == project / "runs" / "results" / "main" and custom.name.startswith("smoke-")
    assert out_dir("--set", "ipcs=[1]") == custom and out_dir("--set", "ipcs=[2]") != custom
    assert out_dir("--output-root", "/tmp/elsewhere") == Path("/tmp/elsewhere/results/main/smoke")
    assert main(["run", "--preset", "smoke", "--publish", "--output-root", "/tmp/x"]) == 2


def test_run_without_publish_leaves_results_alone(project):
    before = _digest(project / "results")
    cheap = ["--preset", "smoke", "--no-progress", "--set", "ipcs=[1]", "--set", "methods=[random]",
             "--set", "full_data=false"]
    assert main(["run", *cheap]) == 0
    assert _digest(project / "results") == before
    made = list((project / "runs" / "results" / "main").glob("smoke-*/results.csv"))
    assert len(made) == 1 and set(read_results(made[0]).method) == {"teacher", "random"}
    # the cache is the project's, shared by runs/ and results/
    assert (project / ".cache" / "cda").is_dir() and not (project / "runs" / ".cache").exists()

    # --publish writes the main table's study in results/, beside (never over) the preset's own results
    assert main(["run", *cheap, "--publish"]) == 0
    published = list((project / "results" / "cda_table2_main_results").glob("smoke-*.csv"))
    assert len(published) == 1 and read_results(published[0]).equals(read_results(made[0]))
    assert (project / "results" / "cda_table2_main_results" / "smoke.csv").read_text() == "committed\n"
    assert not (project / "results" / "main").exists()


def test_the_library_defaults_write_runs_too():
    """`cda.pipeline.run(preset("cpu"))` from Python (the README's example) writes runs/, not results/."""
    from cda.config import PRESETS, RunConfig, preset

    assert all(preset(name).out_dir.startswith("runs/") for name in PRESETS)
    assert RunConfig().out_dir.startswith("runs/")
