"""torchrun over 2 CPU processes (gloo) against one process: recovery and CUDD sharded, squeeze and
student training data-parallel."""
import os
import subprocess
import sys
from pathlib import Path

import torch

from cda.config import parse_override, preset
from cda.data import dataset_info
from cda.distributed import shard
from cda.methods import recover_for
from cda.recover import Distilled, _groups, recover, shard_steps


def _torchrun(args: list[str], timeout: int = 180) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 ARGS` with this checkout importable; must succeed."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
                         env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def _sets(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


OVERRIDES = ["recover.iterations=4", "recover.classes_per_group=5", "recover.groups_per_step=1", "recover.lr=0.1"]


def test_shards_are_disjoint_and_cover_every_group():
    cfg = recover_for(preset("smoke"), "sre2l", 3)
    groups = _groups(10, cfg)
    for per_step, world in [(1, 2), (1, 4), (2, 3), (0, 2), (0, 8)]:
        shards = [shard_steps(groups, per_step, r, world) for r in range(world)]
        seen = [(i, tuple(b)) for s in shards for step in s for i, b in step]
        assert sorted(seen) == sorted((i, tuple(b)) for i, b in groups)
    assert shard(list(range(7)), 1, 3) == [1, 4]


def test_torchrun_recover_equals_single_process(tiny_teacher, tmp_path):
    _, _, teacher_path = tiny_teacher
    out = tmp_path / "syn"
    run = _torchrun(["-m", "cda", "recover", "--preset", "smoke", "--teacher", str(teacher_path), "--method", "cda",
                     "--ipc", "2", "--out", str(out), "--no-progress", *_sets(OVERRIDES)], timeout=120)
    assert "on 2 processes" in run.stdout
    assert not list(out.glob("recover_progress*"))
    got = Distilled.load(out)

    cfg = preset("smoke", **dict(parse_override(o) for o in OVERRIDES))
    rcfg = recover_for(cfg, "cda", 2)
    assert rcfg.groups_per_step == 1 and rcfg.curriculum.schedule == "cosine"
    from cda.checkpoint import load_checkpoint

    teacher, _ = load_checkpoint(teacher_path, dataset_info("fashion_mnist"))
    single = recover(teacher, dataset_info("fashion_mnist"), rcfg, progress=False)
    assert torch.equal(got.images, single.images)
    assert torch.equal(got.labels, single.labels)
    torch.testing.assert_close(torch.tensor(got.history["loss"]), torch.tensor(single.history["loss"]))


# Run by torchrun in the test below: a student (soft labels from the teacher, CutMix) and a squeezed
# classifier, each trained data-parallel; rank 0 saves both.
DDP_SCRIPT = """
import sys
import torch
from cda.checkpoint import load_checkpoint
from cda.config import AugConfig, DataConfig, EvalConfig, SqueezeConfig
from cda.data import dataset_info, load_split
from cda.distributed import cleanup, init_from_env
from cda.student import train_student
from cda.models import create_model
from cda.recover import real_subset
from cda.squeeze import train_classifier

torch.set_num_threads(1)
rank, world, _ = init_from_env("cpu")
info = dataset_info("fashion_mnist")
train = load_split(DataConfig(train_per_class=40, test_per_class=20), train=True)
teacher, _ = load_checkpoint(sys.argv[1], info)
aug = AugConfig(epochs=2, batch_size=15, crop_scale=(0.3, 1.0), mix="cutmix")
student = train_student(real_subset(train, 4), info, EvalConfig(arch="convnet3_w8_in", aug=aug), teacher,
                        progress=False)
torch.manual_seed(0)
model = train_classifier(create_model("convnet3_w8_in", 10, 1, 28), train,
                         SqueezeConfig(arch="convnet3_w8_in", epochs=1, batch_size=45, lr=0.05),
                         torch.device("cpu"), progress=False)
if rank == 0:
    torch.save({"student": student.state_dict(), "classifier": model.state_dict(), "world": world}, sys.argv[2])
cleanup()
"""


def test_torchrun_student_and_squeeze_training_equal_single_process(tiny_teacher, tiny_data, tmp_path):
    """DistributedDataParallel over 2 CPU processes trains the weights one process trains: every rank
    sees its part of the same global batches (odd sizes included) and gradients are averaged by size.
    The models use instance norm, whose statistics do not depend on how a batch is split."""
    from cda.config import AugConfig, EvalConfig, SqueezeConfig
    from cda.models import create_model
    from cda.recover import real_subset
    from cda.squeeze import train_classifier
    from cda.student import train_student

    script, out = tmp_path / "ddp.py", tmp_path / "ddp.pt"
    script.write_text(DDP_SCRIPT)
    _torchrun([str(script), str(tiny_teacher[2]), str(out)])
    got = torch.load(out)
    assert got["world"] == 2

    info = dataset_info("fashion_mnist")
    aug = AugConfig(epochs=2, batch_size=15, crop_scale=(0.3, 1.0), mix="cutmix")
    student = train_student(real_subset(tiny_data[0], 4), info, EvalConfig(arch="convnet3_w8_in", aug=aug),
                            tiny_teacher[0], progress=False)
    torch.manual_seed(0)
    model = train_classifier(create_model("convnet3_w8_in", 10, 1, 28), tiny_data[0],
                             SqueezeConfig(arch="convnet3_w8_in", epochs=1, batch_size=45, lr=0.05),
                             torch.device("cpu"), progress=False)
    for name, single in [("student", student), ("classifier", model)]:
        ref = single.state_dict()
        assert got[name].keys() == ref.keys()
        for key, value in ref.items():
            # Equal up to the order of float additions (the all-reduce sums two halves).
            torch.testing.assert_close(got[name][key], value, atol=2e-5, rtol=1e-4, msg=f"{name}.{key}")
    torch.manual_seed(0)
    init = create_model("convnet3_w8_in", 10, 1, 28).state_dict()
    assert not torch.allclose(init["classifier.weight"], got["classifier"]["classifier.weight"], atol=1e-3)


CUDD_OVERRIDES = ["recover.iterations=4", "recover.classes_per_group=5", "recover.groups_per_step=1",
                  "eval.arch=convnet3_w8_in"]


def test_torchrun_cudd_equals_single_process(tiny_teacher, tmp_path):
    """CUDD over 2 processes: stages sharded like recovery, curriculum students data-parallel. The
    first stage is bit for bit a single process's; later stages depend on a student trained with a
    different float summation order, so they may differ by rounding."""
    from cda.cli import main

    args = ["recover", "--preset", "smoke", "--teacher", str(tiny_teacher[2]), "--method", "cudd", "--ipc", "2",
            "--no-progress", *_sets(CUDD_OVERRIDES)]
    out = tmp_path / "two"
    run = _torchrun(["-m", "cda", *args, "--out", str(out)])
    assert "on 2 processes" in run.stdout
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    two, one = Distilled.load(out), Distilled.load(tmp_path / "one")
    assert two.meta["seeds"] == one.meta["seeds"] and two.meta["tiers"] == one.meta["tiers"]
    assert torch.equal(two.labels, one.labels)
    first = torch.arange(0, len(one.images), 2)  # class-major, IPC 2: slot 0 is the first stage
    assert torch.equal(two.images[first], one.images[first])
    diff = (two.images.int() - one.images.int()).abs()
    assert diff.max() <= 2 and (diff == 0).float().mean() > 0.99
