"""The other device-sensitive paths on the device that `pytest --device` names (cpu by default; a GPU
machine runs them with `--device cuda`, as scripts/gpu_check.py does): stored labels (full FKD and
compact top-k) made on the device and a student trained from them there, bf16 autocast of recovery
and students, a CUDD run, and a recovery ended hard at a checkpoint that resumes on the device.
On the CPU these are quick consistency checks; on a GPU each compares with the CPU reference."""
import copy
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cda.config import AugConfig, CuddConfig, EvalConfig, RecoverConfig, RelabelConfig
from cda.data import dataset_info
from cda.recover import PROGRESS_FILE, real_subset, recover
from cda.relabel import relabel
from cda.runtime import Speed
from cda.student import train_student

INFO = dataset_info("fashion_mnist")
AUG = AugConfig(epochs=2, batch_size=16, crop_scale=(0.5, 1.0), mix="cutmix")


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_stored_labels_full_and_compact_on_the_device(device, tiny_teacher, tiny_data, tmp_path):
    """Labels made on `device` hold the teacher's logits (compared with the CPU's) and train a
    student there, from the full and the compact format."""
    d = real_subset(tiny_data[0], 3)
    teacher = copy.deepcopy(tiny_teacher[0])
    made = {k: relabel(teacher, d.images, INFO, RelabelConfig(aug=AUG, topk=k), tmp_path / f"top{k}", device,
                       progress=False) for k in (0, 3)}
    cpu = relabel(tiny_teacher[0], d.images, INFO, RelabelConfig(aug=AUG), tmp_path / "cpu", "cpu", progress=False)
    for e in range(AUG.epochs):
        for (plan, logits), (cplan, clogits), (_, compact) in zip(made[0].epoch(e), cpu.epoch(e), made[3].epoch(e)):
            assert np.array_equal(plan.indices, cplan.indices)
            # TF32 convolutions on a GPU: close to the CPU's fp32 logits, not equal
            torch.testing.assert_close(logits.float(), clogits.float(), rtol=2e-2, atol=2e-2)
            # the same three classes kept (int8 rounding may reorder near-equal ones)
            assert torch.equal(compact.float().topk(3).indices.sort(1).values,
                               logits.float().topk(3).indices.sort(1).values)
    for k, stored in made.items():
        student = train_student(d, INFO, EvalConfig(arch="convnet3_w8", aug=AUG, labels="stored"), stored=stored,
                                device=device, progress=False)
        assert {p.device.type for p in student.parameters()} == {torch.device(device).type}, k
        assert all(torch.isfinite(p).all() for p in student.parameters()), k


def test_bf16_autocast_recovery_and_student_on_the_device(device, tiny_teacher, tiny_data):
    """amp=True (bf16 autocast; on the CPU it takes effect only with amp_cpu) gives finite images and
    weights close to the fp32 run's: the same images up to rounding, far closer than another seed's."""
    teacher = tiny_teacher[0]
    cfg = RecoverConfig(ipc=1, iterations=15, lr=0.1, amp=False)
    last, fast = Speed(channels_last=True), Speed(channels_last=True, amp_cpu=True)
    fp32 = recover(copy.deepcopy(teacher), INFO, cfg, device=device, progress=False, speed=last)
    bf16 = recover(copy.deepcopy(teacher), INFO, replace(cfg, amp=True), device=device, progress=False, speed=fast)
    other = recover(copy.deepcopy(teacher), INFO, replace(cfg, seed=1), device=device,
                    progress=False, speed=last)
    assert _gap(bf16.images, fp32.images) < 0.5 * _gap(other.images, fp32.images)
    ecfg = EvalConfig(arch="convnet3_w8", amp=True, aug=AugConfig(epochs=2, batch_size=16, crop_scale=(0.5, 1.0)))
    student = train_student(real_subset(tiny_data[0], 2), INFO, ecfg, copy.deepcopy(teacher), device=device,
                            progress=False, speed=fast)
    assert all(torch.isfinite(p).all() for p in student.parameters())


def test_cudd_runs_on_the_device(device, tiny_teacher, tiny_data):
    from cda.cudd import distill_cudd

    cfg = CuddConfig(recover=RecoverConfig(ipc=2, iterations=8, lr=0.1, r_bn=0.05, amp=False),
                     student=EvalConfig(arch="convnet3_w8", amp=False,
                                        aug=AugConfig(batch_size=16, crop_scale=(0.5, 1.0))),
                     stages=(1, 2), student_epochs=2)
    d = distill_cudd(copy.deepcopy(tiny_teacher[0]), tiny_data[0], INFO, cfg, device=device, progress=False)
    assert d.images.shape == (20, 1, 28, 28) and d.images.dtype == torch.uint8 and d.images.device.type == "cpu"
    assert torch.equal(d.labels, torch.arange(10).repeat_interleave(2))
    if device == "cpu":
        return
    # the first stage starts from the teacher's picks of real images: the same picks as on the CPU
    ref = distill_cudd(tiny_teacher[0], tiny_data[0], INFO, cfg, device="cpu", progress=False)
    assert d.meta["seeds"][::2] == ref.meta["seeds"][::2]


# Recovery in a child process on a device, ended hard after its second checkpoint, then resumed.
RESUME = RecoverConfig(ipc=1, iterations=40, lr=0.1, amp=False)
CHILD = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(2)  # as the parent (conftest): the same float sums on the CPU
    from cda.checkpoint import load_checkpoint
    from cda.recover import recover
    from tests.test_device_paths import INFO, RESUME
    teacher, _ = load_checkpoint(sys.argv[1])
    recover(teacher, INFO, RESUME, device=sys.argv[3], progress=False, progress_dir=sys.argv[2], checkpoint_every=10)
    print("finished")
""")


@pytest.mark.slow  # a child process and two recoveries: seconds alone, a minute or more on busy shared cores
def test_killed_recovery_resumes_on_the_device(device, tiny_teacher, tmp_path):
    from conftest import exit_after_checkpoints  # here: the child imports this module without tests/ on the path

    state = exit_after_checkpoints(CHILD, [str(tiny_teacher[2]), str(tmp_path), device], tmp_path / PROGRESS_FILE, n=2)
    assert 0 < state["iteration"] < RESUME.iterations
    resumed = recover(copy.deepcopy(tiny_teacher[0]), INFO, RESUME, device=device, progress=False,
                      progress_dir=tmp_path, checkpoint_every=10)
    straight = recover(copy.deepcopy(tiny_teacher[0]), INFO, RESUME, device=device, progress=False)
    if device == "cpu":
        assert torch.equal(resumed.images, straight.images)
    else:  # cuDNN may pick other kernels in another process: equal up to rounding, not another seed
        other = recover(copy.deepcopy(tiny_teacher[0]), INFO, replace(RESUME, seed=1),
                        device=device, progress=False)
        assert _gap(resumed.images, straight.images) < 0.2 * _gap(other.images, straight.images)
    assert not list(tmp_path.glob(".*.tmp"))


def test_torchrun_recovery_over_two_gpus_with_nccl(device, request, tmp_path):
    """torchrun over 2 GPUs (nccl): the sharded recovery gives a single GPU's images up to rounding.
    Runs only with `--device cuda` on a machine with 2 GPUs or more."""
    if not device.startswith("cuda") or torch.cuda.device_count() < 2:
        pytest.skip("needs --device cuda and 2 GPUs (nccl)")
    from cda.cli import main

    tiny_teacher = request.getfixturevalue("tiny_teacher")  # only where the test runs
    root = Path(__file__).resolve().parents[1]
    sets = [x for o in ("recover.iterations=20", "recover.classes_per_group=5", "recover.groups_per_step=1",
                        "recover.lr=0.1", "recover.amp=false") for x in ("--set", o)]
    args = ["recover", "--preset", "smoke", "--device", "cuda", "--teacher", str(tiny_teacher[2]), "--method", "cda",
            "--ipc", "2", "--no-progress", *sets]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "cda", *args, "--out", str(tmp_path / "two")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "on 2 processes" in run.stdout
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    from cda.recover import Distilled

    two, one = Distilled.load(tmp_path / "two"), Distilled.load(tmp_path / "one")
    assert torch.equal(two.labels, one.labels)
    assert _gap(two.images, one.images) < 2.0  # uint8 levels: equal up to TF32 rounding
