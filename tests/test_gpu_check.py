"""scripts/gpu_check.sh, the one prepared call for a GPU machine: the full call's plan (commands,
sizes, budgets) checked here without a GPU, and a dry run of every part on the CPU at toy sizes, so
that the script cannot rot before a GPU is at hand."""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["env", "standin", "tests", "recovery", "student", "plan", "paper"]


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_full_call_runs_every_part_at_imagenet_shape_within_its_budget(tmp_path):
    g = _script()
    parts = {p.name: p for p in g.plan_parts(tmp_path, "cuda", tiny=False)}
    assert list(parts) == PARTS
    # every part has a budget; together they end within the call's, which ends under 8 minutes
    assert all(p.budget_s > 0 for p in parts.values())
    assert sum(p.budget_s for p in parts.values()) <= g.FULL_BUDGET_S <= 8 * 60 - 30
    cmd = {name: list(p.argv) for name, p in parts.items()}
    standin = cmd["standin"]
    assert standin[standin.index("--classes") + 1] == "100" and standin[standin.index("--size") + 1] == "224"
    for name in ("recovery", "student"):
        assert cmd[name][cmd[name].index("--arch") + 1] == "resnet18" and "--quick" not in cmd[name]
        assert cmd[name][cmd[name].index("--device") + 1] == "cuda" and "--no-compile" not in cmd[name]
        assert parts[name].needs == ("standin",)
    assert "--device" in cmd["tests"] and cmd["tests"][cmd["tests"].index("--device") + 1] == "cuda"
    assert {"tests/test_device.py", "tests/test_device_paths.py"} <= set(cmd["tests"])
    assert cmd["plan"][cmd["plan"].index("--plan-shape") + 1] == "1000,224,50"  # ImageNet-1K, IPC 50
    from cda.methods import list_methods

    methods = next(a for a in cmd["paper"] if a.startswith("methods="))
    assert methods == f"methods=[{','.join(list_methods())}]"  # every registered method
    assert "data.image_size=224" in cmd["paper"] and "--preset" in cmd["paper"]
    # the result files it promises: the benchmarks' CUDA rows
    assert str(ROOT / "results" / "bench" / "recovery-cuda.csv") in parts["recovery"].produces
    assert str(ROOT / "results" / "bench" / "student-cuda.json") in parts["student"].produces
    assert str(ROOT / "results" / "bench") in cmd["recovery"]


def test_list_prints_the_plan_and_runs_nothing(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--list", "--work", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHON": sys.executable})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "whole call 450 s" in lines[0]
    assert [json.loads(x)["name"] for x in lines[1:]] == PARTS
    assert not list(tmp_path.iterdir())


def test_a_part_that_hangs_is_stopped_at_its_timeout_and_reported(tmp_path):
    g = _script()
    part = g.Part("hang", 2, (sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"))
    row = g.run_part(part, tmp_path, 2.0, dict(os.environ))
    assert row["status"] == "timeout" and row["seconds"] < 15
    assert "started" in row["error_tail"]
    failing = g.Part("fail", 5, (sys.executable, "-c", "raise SystemExit('bad input: fix it')"), ("never.txt",))
    row = g.run_part(failing, tmp_path, 5.0, dict(os.environ))
    assert row["status"] == "failed" and row["returncode"] == 1 and row["missing"] == ["never.txt"]
    assert "bad input: fix it" in row["error_tail"]


@pytest.mark.slow
def test_tiny_dry_run_on_the_cpu_runs_every_part(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "CDA_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out), "--device", "cpu", "--tiny"],
                         capture_output=True, text=True, timeout=1200, env=env)
    summary = json.loads((out / "summary.json").read_text())
    failed = {p["name"]: p.get("error_tail") for p in summary["parts"] if p["status"] != "ok"}
    assert run.returncode == 0 and not failed, (failed, run.stdout[-3000:], run.stderr[-3000:])
    assert [p["name"] for p in summary["parts"]] == PARTS
    assert all(p["seconds"] > 0 and p["seconds"] <= p["budget_s"] for p in summary["parts"])
    assert summary["env"]["torch"] and summary["env"]["device"] == "cpu"
    # what the device tool brings back: at most 8 files, none deeper than 2 folders
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.relative_to(out).parts) <= 3 for p in files)
    expected = {"summary.json", "junit.xml", "paper_results.json", "gpu_check.tar.gz",
                *(f"{n}-cpu-quick.{e}" for n in ("recovery", "student") for e in ("csv", "json"))}
    assert {p.name for p in files} == expected
    rows = json.loads((out / "recovery-cpu-quick.json").read_text())
    assert rows["classes"] == 4 and rows["image_size"] == 32 and rows["rows"][0]["variant"].startswith("reference")
    assert all(r["img_it_per_s"] > 0 and r["teacher_ce"] >= 0 for r in rows["rows"])
    paper = json.loads((out / "paper_results.json").read_text())
    assert paper["results"]["device"] == "cpu" and paper["results"]["config"]["recover"]["jitter"] == 32
    timed = {r["metric"] for r in paper["rows"] if r["metric"].endswith("seconds")}
    assert "recover_seconds" in timed, timed  # each step timed
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = tar.getnames()
    assert {f"gpu_check/logs/{p}.log" for p in PARTS} <= set(names)
    assert "gpu_check/plan/plan.json" in names and "gpu_check/env.json" in names
    assert not Path(summary["work"]).exists()  # the working folder is removed; everything is under OUTDIR
