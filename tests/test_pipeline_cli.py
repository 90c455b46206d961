"""End to end on a few hundred real Fashion-MNIST images, through the library and the command line."""
import json

import pandas as pd
import pytest

from cda.cli import main
from cda.config import preset
from cda.pipeline import run
from cda.results import COLUMNS, accuracy_table, read_results


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    cfg = preset("smoke", cache_dir=str(root / "cache"), out_dir=str(root / "out"))
    df = run(cfg, progress=False, log=lambda s: None)
    return cfg, df, root


def test_pipeline_writes_results_provenance_and_figures(smoke_run):
    cfg, df, root = smoke_run
    out = root / "out"
    saved = read_results(out / "results.csv")
    assert list(saved.columns[:len(COLUMNS)]) == COLUMNS
    top1 = saved[saved.metric == "top1"]
    assert set(top1.method) == {"teacher", "random", "sre2l", "cda", "full"}
    assert set(top1.dropna(subset=["ipc"]).ipc.astype(int)) == set(cfg.ipcs)
    assert top1.value.between(0, 100).all()
    prov = json.loads((out / "results.json").read_text())
    assert prov["config"]["recover"]["iterations"] == cfg.recover.iterations
    assert prov["device"] == "cpu" and prov["versions"]["torch"]
    for name in ("accuracy_vs_ipc", "distilled_images"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.pdf").is_file()
    table = accuracy_table(saved)
    assert list(table.index[:3]) == ["random", "sre2l", "cda"]


def test_rerun_reuses_every_artifact(smoke_run):
    cfg, df, root = smoke_run
    messages = []
    again = run(cfg, progress=False, log=messages.append)
    assert not any(m.startswith(("squeeze:", "recover:", "evaluate:")) for m in messages)
    pd.testing.assert_frame_equal(again[again.metric == "top1"].reset_index(drop=True),
                                  df[df.metric == "top1"].reset_index(drop=True))


def test_cli_steps_one_by_one(tmp_path, capsys):
    common = ["--preset", "smoke", "--no-progress"]
    teacher = str(tmp_path / "t.pt")
    assert main(["squeeze", *common, "--out", teacher]) == 0
    assert main(["recover", *common, "--teacher", teacher, "--method", "cda", "--ipc", "2",
                 "--out", str(tmp_path / "d")]) == 0
    assert len(list((tmp_path / "d" / "images").rglob("*.png"))) == 20
    assert main(["relabel", *common, "--teacher", teacher, "--distilled", str(tmp_path / "d"),
                 "--out", str(tmp_path / "l")]) == 0
    assert main(["evaluate", *common, "--distilled", str(tmp_path / "d"), "--labels", str(tmp_path / "l")]) == 0
    assert "top-1" in capsys.readouterr().out


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--set", "ipcs=[0]"]) == 2
    assert "ipcs=(0,): must be positive" in capsys.readouterr().err
    assert main(["run", "--preset", "nope"]) == 2
    assert main(["recover", "--preset", "smoke", "--teacher", str(tmp_path / "none.pt"), "--ipc", "1",
                 "--out", str(tmp_path / "d")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_refuses_to_reuse_an_output_of_another_config(tmp_path, capsys):
    common = ["--preset", "smoke", "--no-progress"]
    teacher = str(tmp_path / "t.pt")
    assert main(["squeeze", *common, "--out", teacher]) == 0
    out = str(tmp_path / "d")
    assert main(["recover", *common, "--teacher", teacher, "--method", "sre2l", "--ipc", "1", "--out", out]) == 0
    first = (tmp_path / "d" / "distilled.pt").read_bytes()
    assert main(["recover", *common, "--teacher", teacher, "--method", "sre2l", "--ipc", "2", "--out", out]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "d" / "distilled.pt").read_bytes() == first  # nothing lost
    assert main(["recover", *common, "--teacher", teacher, "--method", "sre2l", "--ipc", "2", "--out", out,
                 "--overwrite"]) == 0


def test_the_main_table_is_published_once():
    """The main table's one home is its study's (`cda run --publish` writes it): no results/main/ copy."""
    from pathlib import Path

    from cda.studies import MAIN_TABLE

    root = Path(__file__).resolve().parents[1]
    assert (root / "results" / MAIN_TABLE / "cpu.csv").is_file()
    assert not (root / "results" / "main").exists(), "results/main/ duplicates the main table's study results"
