"""A cache that heals: damaged artifacts are moved aside and rebuilt, and the run ends with the results of a
fresh run; files follow the umask; checkpoints fail safely; `cda cache verify|repair`."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from cda.cache import ArtifactError, Cache, atomic_path, read_json, save_torch, write_json
from cda.checkpoint import CheckpointError, load_checkpoint
from cda.cli import main
from cda.config import preset
from cda.pipeline import run

ROOT = Path(__file__).resolve().parents[1]


def tiny(cache: Path, out: Path):
    """The smoke preset cut to one method at one IPC: a teacher, a distilled set, two evaluations."""
    return preset("smoke", cache_dir=str(cache), out_dir=str(out), ipcs=(1,), methods=("sre2l",), full_data=False)



def _run(cfg):
    messages = []
    df = run(cfg, progress=False, log=messages.append)
    return df, messages


def _scores(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.metric.isin(["top1", "top5"])].reset_index(drop=True)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A fresh run under umask 022: its results and its cache, which each test damages a copy of."""
    root = tmp_path_factory.mktemp("fresh")
    old = os.umask(0o022)
    try:
        df, _ = _run(tiny(root / "cache", root / "out"))
    finally:
        os.umask(old)
    return df, root


def _copy(fresh, tmp_path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(fresh[1] / "cache", cache)
    return cache


def _only(cache: Path, kind: str) -> Path:
    folders = [p for p in (cache / kind).iterdir() if p.is_dir() and "." not in p.name]
    return folders[0]


DAMAGE = {
    "truncated distilled.pt": ("distilled", lambda f: os.truncate(f / "distilled.pt", 100)),
    "truncated teacher.pt": ("teacher", lambda f: os.truncate(f / "teacher.pt", 1000)),
    "distilled.pt deleted": ("distilled", lambda f: (f / "distilled.pt").unlink()),
    "done.json deleted": ("distilled", lambda f: (f / "done.json").unlink()),
    "garbage metrics.json": ("evaluation", lambda f: (f / "metrics.json").write_text("garbage")),
    "garbage done.json": ("evaluation", lambda f: (f / "done.json").write_text("garbage")),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_artifact_is_moved_aside_and_rebuilt(fresh, tmp_path, damage):
    kind, spoil = DAMAGE[damage]
    cache = _copy(fresh, tmp_path)
    folder = _only(cache, kind)
    spoil(folder)
    df, messages = _run(tiny(cache, tmp_path / "out"))
    pd.testing.assert_frame_equal(_scores(df), _scores(fresh[0]))
    aside = list(folder.parent.glob(f"{folder.name}.damaged-*"))
    assert len(aside) == 1 and (folder / "done.json").is_file()
    told = [m for m in messages if m.startswith("cache: damaged artifact")]
    assert len(told) == 1 and str(folder) in told[0] and str(aside[0]) in told[0]
    assert (tmp_path / "out" / "results.csv").is_file() and (tmp_path / "out" / "distilled_images.png").is_file()


def test_artifacts_from_before_digests_load_under_the_same_keys(fresh, tmp_path):
    cache = _copy(fresh, tmp_path)
    for done in cache.glob("*/*/done.json"):
        record = json.loads(done.read_text())
        done.write_text(json.dumps({k: v for k, v in record.items() if k != "files"}))
    df, messages = _run(tiny(cache, tmp_path / "out"))
    assert not any(m.startswith(("squeeze:", "distill:", "evaluate:", "cache:")) for m in messages)
    pd.testing.assert_frame_equal(_scores(df), _scores(fresh[0]))


@pytest.mark.slow
def test_an_old_artifact_that_cannot_be_read_is_rebuilt(fresh, tmp_path):
    cache = _copy(fresh, tmp_path)
    folder = _only(cache, "evaluation")
    record = json.loads((folder / "done.json").read_text())
    (folder / "done.json").write_text(json.dumps({"kind": record["kind"], "seconds": record["seconds"]}))
    (folder / "metrics.json").write_text("{not json")
    df, messages = _run(tiny(cache, tmp_path / "out"))
    pd.testing.assert_frame_equal(_scores(df), _scores(fresh[0]))
    assert any("metrics.json is not valid JSON" in m and str(folder) in m for m in messages)
    assert list(folder.parent.glob(f"{folder.name}.damaged-*"))


def test_a_read_error_of_a_checked_artifact_is_raised_not_healed(tmp_path):
    cache = Cache(tmp_path, log=lambda s: None)
    cache.get_or_make("thing", ({"a": 1},), lambda f: (f / "x.txt").write_text("1"), lambda f: None)

    def broken(folder):
        raise ArtifactError("a bug in the reader")

    with pytest.raises(ArtifactError, match="a bug in the reader"):
        cache.get_or_make("thing", ({"a": 1},), lambda f: None, broken)
    assert not list((tmp_path / "thing").glob("*.damaged-*"))


def test_a_killed_builders_lock_is_released_and_the_next_resumes(tmp_path):
    """A builder killed while it holds the lock: the next process gets the lock and resumes from the
    progress the first saved in <hash>.partial/."""
    child = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from cda.cache import Cache
        cache = Cache({str(tmp_path)!r})
        def make(folder):
            (folder / "progress.txt").write_text("step 1 done")
            print("saved", flush=True)
            time.sleep(60)
        cache.get_or_make("thing", ({{"a": 1}},), make, lambda f: None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == b"saved"
    messages = []
    cache = Cache(tmp_path, log=messages.append)
    folder = cache.folder("thing", {"a": 1})
    with pytest.raises(TimeoutError):  # held by the child
        _acquire_with_timeout(cache, folder, 0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def resume(folder):
        assert (folder / "progress.txt").read_text() == "step 1 done"
        (folder / "result.txt").write_text("finished")

    assert cache.get_or_make("thing", ({"a": 1},), resume, lambda f: (f / "result.txt").read_text()) == "finished"


def _acquire_with_timeout(cache: Cache, folder: Path, seconds: float):
    from filelock import FileLock, Timeout

    try:
        FileLock(folder.with_name(folder.name + ".lock")).acquire(timeout=seconds)
    except Timeout as err:
        raise TimeoutError from err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json({"a": 1}, tmp_path / "a.json")
        save_torch({"t": torch.ones(2)}, tmp_path / "t.pt")
        with atomic_path(tmp_path / "r.csv") as tmp:
            tmp.write_text("x\n")
    finally:
        os.umask(old)
    for name in ("a.json", "t.pt", "r.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode


def test_every_file_of_a_run_is_readable_by_others_under_umask_022(fresh):
    _, root = fresh
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert [p for p in files if p.stat().st_mode & 0o044 != 0o044] == []


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    from cda.cache import _HOST

    live = tmp_path / f".r.csv.{os.getppid()}@{_HOST}.abcdefgh.tmp"
    dead = tmp_path / f".r.csv.{_dead_pid()}@{_HOST}.abcdefgh.tmp"
    other_host = tmp_path / ".r.csv.1@elsewhere.abcdefgh.tmp"
    for p in (live, dead, other_host):
        p.write_text("half")
    write_json({}, tmp_path / "r.csv")
    assert live.exists() and other_host.exists() and not dead.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("content", [b"garbage", "pickled object"])
def test_a_garbage_checkpoint_is_refused_without_unsafe_advice(tmp_path, content, capsys):
    path = tmp_path / "teacher.pt"
    if content == "pickled object":
        torch.save({"meta": Path("x")}, path)  # a pickled class weights_only refuses
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "not a cda file" in str(err.value)
    assert "weights_only=False" not in str(err.value) and "weights_only` set to `False" not in str(err.value)
    assert main(["recover", "--preset", "smoke", "--no-progress", "--teacher", str(path), "--ipc", "1",
                 "--out", str(tmp_path / "d")]) == 1
    said = capsys.readouterr().err
    assert str(path) in said and "False" not in said and len(said.strip().splitlines()) == 1


def test_a_json_error_names_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("garbage")
    with pytest.raises(ArtifactError, match=f"{path}.*not valid JSON"):
        read_json(path)
    with pytest.raises(ArtifactError, match=f"{tmp_path / 'none.json'} does not exist"):
        read_json(tmp_path / "none.json")


def test_cache_verify_and_repair(fresh, tmp_path, monkeypatch, capsys):
    cache = _copy(fresh, tmp_path)
    folder = _only(cache, "distilled")
    os.truncate(folder / "distilled.pt", 100)
    monkeypatch.setenv("CDA_CACHE_DIR", str(cache))
    assert main(["cache", "verify", "--preset", "smoke"]) == 1
    out = capsys.readouterr().out
    assert f"damaged: {folder}: {folder / 'distilled.pt'} has 100 bytes" in out and "1 damaged" in out
    assert folder.is_dir()  # verify moves nothing
    assert main(["cache", "repair", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "moved aside to" in out and not folder.exists() and list(folder.parent.glob(f"{folder.name}.damaged-*"))
    assert main(["cache", "verify", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "0 damaged" in out and "1 set aside earlier" in out


def test_nothing_is_published_before_the_sets_the_figures_show_are_read(fresh, tmp_path, monkeypatch):
    """The distilled sets of the figure are read before results.csv is written: a set that cannot be read
    (here a reader that fails) stops the run with no results published."""
    from cda.recover import Distilled

    def unreadable(folder):
        raise ArtifactError(f"distilled set {folder} cannot be read")

    monkeypatch.setattr(Distilled, "load", staticmethod(unreadable))
    with pytest.raises(ArtifactError, match="cannot be read"):
        _run(tiny(_copy(fresh, tmp_path), tmp_path / "out"))
    assert not (tmp_path / "out").exists()
