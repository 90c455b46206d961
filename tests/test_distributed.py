"""Recovery sharded over 2 CPU processes (torchrun, gloo) gives the single-process images exactly."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from cda.config import parse_override, preset
from cda.data import dataset_info
from cda.distributed import shard
from cda.recover import Distilled, _groups, recover, shard_steps

OVERRIDES = ["recover.iterations=4", "recover.classes_per_group=5", "recover.groups_per_step=1", "recover.lr=0.1"]


def test_shards_are_disjoint_and_cover_every_group():
    cfg = preset("smoke").recover_for("sre2l", 3)
    groups = _groups(10, cfg)
    for per_step, world in [(1, 2), (1, 4), (2, 3), (0, 2), (0, 8)]:
        shards = [shard_steps(groups, per_step, r, world) for r in range(world)]
        seen = [(i, tuple(b)) for s in shards for step in s for i, b in step]
        assert sorted(seen) == sorted((i, tuple(b)) for i, b in groups)
    assert shard(list(range(7)), 1, 3) == [1, 4]


def test_torchrun_recover_equals_single_process(tiny_teacher, tmp_path):
    _, _, teacher_path = tiny_teacher
    out = tmp_path / "syn"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cda",
           "recover", "--preset", "smoke", "--teacher", str(teacher_path), "--method", "cda", "--ipc", "2",
           "--out", str(out), "--no-progress"]
    for o in OVERRIDES:
        cmd += ["--set", o]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "on 2 processes" in run.stdout
    assert not list(out.glob("recover_progress*"))
    got = Distilled.load(out)

    cfg = preset("smoke", **dict(parse_override(o) for o in OVERRIDES))
    rcfg = cfg.recover_for("cda", 2)
    assert rcfg.groups_per_step == 1 and rcfg.curriculum.schedule == "cosine"
    from cda.checkpoint import load_checkpoint

    teacher, _ = load_checkpoint(teacher_path, dataset_info("fashion_mnist"))
    single = recover(teacher, dataset_info("fashion_mnist"), rcfg, progress=False)
    assert torch.equal(got.images, single.images)
    assert torch.equal(got.labels, single.labels)
    torch.testing.assert_close(torch.tensor(got.history["loss"]), torch.tensor(single.history["loss"]))
