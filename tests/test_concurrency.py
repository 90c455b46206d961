"""Two `cda run` processes on one cache and one output folder at once: one builds each artifact while the
other waits, and both finish with the same results."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cda.results import accuracy_table, read_results

ROOT = Path(__file__).resolve().parents[1]


def _table(stdout: str) -> str:
    """The top-1 table a run prints."""
    start = stdout.index("Top-1 (%)")
    return stdout[start:stdout.index("Wall time per step", start)].strip()


@pytest.mark.slow
def test_two_runs_on_one_cache_both_finish_with_identical_results(tmp_path):
    cmd = [sys.executable, "-m", "cda", "run", "--preset", "smoke", "--no-progress", "--output-root", str(tmp_path),
           "--set", "ipcs=[1]", "--set", "methods=[sre2l]", "--set", "full_data=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CDA_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    tables = [_table(out) for out, _ in outs]
    assert tables[0] == tables[1]
    built = [sum(line.startswith(("squeeze:", "distill:", "evaluate:")) for line in out.splitlines()) for out, _ in outs]
    csvs = list((tmp_path / "results" / "main").glob("*/results.csv"))
    assert len(csvs) == 1
    assert accuracy_table(read_results(csvs[0])).to_markdown() in tables[0]
    # each artifact was built once (one build message per finished folder), and nothing was left half-made
    cache = tmp_path / "cache"
    assert not list(cache.glob("*/*.partial")) and not list(cache.glob("*/*.damaged-*"))
    assert sum(built) == len([p for p in cache.glob("*/*") if p.is_dir() and p.parent.name != "slots"])
