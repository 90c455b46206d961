"""Faults: a killed process (here: one ended hard from inside at a chosen checkpoint) resumes to the same
result; failed writes keep what was there."""
import errno
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from cda.cache import Cache, OutputError, save_progress, save_torch
from cda.checkpoint import load_checkpoint
from cda.config import AugConfig, CuddConfig, EvalConfig, RecoverConfig
from cda.data import dataset_info
from cda.recover import PROGRESS_FILE, real_subset, recover, step_name
from cda.student import train_student
from cda.training import NonFiniteLossError

INFO = dataset_info("fashion_mnist")
# Short runs: the child stops itself at a chosen checkpoint (exit_after_checkpoints), no timing involved.
RECOVER = RecoverConfig(ipc=2, iterations=100, lr=0.1)
STUDENT = EvalConfig(arch="convnet3_w8", aug=AugConfig(epochs=12, batch_size=16, crop_scale=(0.3, 1.0)))

CHILD = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(2)
    from cda.checkpoint import load_checkpoint
    from cda.data import DataConfig, dataset_info, load_split
    from tests.test_resume import RECOVER, STUDENT, INFO, subset
    from cda.recover import recover
    from cda.student import train_student
    teacher, _ = load_checkpoint(sys.argv[2])
    if sys.argv[1] == "recover":
        recover(teacher, INFO, RECOVER, progress=False, progress_dir=sys.argv[3], checkpoint_every=25)
    elif sys.argv[1] == "cudd":
        from cda.cudd import distill_cudd
        from tests.test_resume import CUDD, subset_split
        distill_cudd(teacher, subset_split(), INFO, CUDD, progress=False, progress_dir=sys.argv[3], checkpoint_every=25)
    else:
        train_student(subset(), INFO, STUDENT, teacher=teacher, progress=False, progress_dir=sys.argv[3],
                      checkpoint_every=3)
    print("finished")
""")


def subset_split():
    from cda.data import DataConfig, load_split

    return load_split(DataConfig(train_per_class=40, test_per_class=20), train=True)


def subset():
    return real_subset(subset_split(), 5)


# Two stages, so that a kill can land after the first stage's file and inside the second stage.
CUDD = CuddConfig(recover=RecoverConfig(ipc=2, iterations=100, lr=0.1, r_bn=0.05, groups_per_step=1),
                  student=EvalConfig(arch="convnet3_w8", aug=AugConfig(batch_size=16, crop_scale=(0.5, 1.0))),
                  stages=(1, 2), student_epochs=3)


def _exit_at_checkpoint(kind: str, teacher_path: Path, folder: Path, progress_file: str, n: int = 1,
                        part: str = "") -> dict:
    from conftest import exit_after_checkpoints  # here: the children import this module without tests/ on the path

    return exit_after_checkpoints(CHILD, [kind, str(teacher_path), str(folder)], folder / progress_file, n, part)


def test_killed_recovery_resumes_to_the_same_images(tiny_teacher, tmp_path):
    teacher, _, path = tiny_teacher
    state = _exit_at_checkpoint("recover", path, tmp_path, PROGRESS_FILE, n=2)
    assert state["step"] == step_name([(0, np.arange(10)), (1, np.arange(10))])  # the first (and only) step
    assert 0 < state["iteration"] < RECOVER.iterations  # killed part-way
    teacher, _ = load_checkpoint(path)
    resumed = recover(teacher, INFO, RECOVER, progress=False, progress_dir=tmp_path, checkpoint_every=25)
    straight = recover(teacher, INFO, RECOVER, progress=False)
    assert torch.equal(resumed.images, straight.images)
    assert resumed.history["loss"] == pytest.approx(straight.history["loss"], rel=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written file survives the kill


def test_killed_student_training_resumes_across_an_epoch_boundary(tiny_teacher, tmp_path):
    from cda.student import PROGRESS_FILE as STUDENT_FILE

    _, _, path = tiny_teacher
    state = _exit_at_checkpoint("student", path, tmp_path, STUDENT_FILE, n=2)
    assert 0 < state["epoch"] < STUDENT.aug.epochs and state["epoch"] % 3 == 0
    teacher, _ = load_checkpoint(path)
    resumed = train_student(subset(), INFO, STUDENT, teacher=teacher, progress=False, progress_dir=tmp_path,
                            checkpoint_every=3)
    straight = train_student(subset(), INFO, STUDENT, teacher=teacher, progress=False)
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_killed_cudd_run_resumes_to_the_same_set(tiny_teacher, tmp_path):
    from cda.cudd import STAGE_FILE, distill_cudd

    _, _, path = tiny_teacher
    # Killed at the second stage's first checkpoint: after the first stage's file, inside the second stage.
    live = _exit_at_checkpoint("cudd", path, tmp_path, f"stage2/{PROGRESS_FILE}", part="stage2/")
    assert 0 < live["iteration"] < CUDD.recover.iterations
    stage1 = torch.load(tmp_path / STAGE_FILE.format(1), weights_only=True)
    assert stage1["images"].shape[:2] == (1, 10) and stage1["student"] is not None
    assert not (tmp_path / STAGE_FILE.format(2)).exists()
    teacher, _ = load_checkpoint(path)
    resumed = distill_cudd(teacher, subset_split(), INFO, CUDD, progress=False, progress_dir=tmp_path)
    straight = distill_cudd(teacher, subset_split(), INFO, CUDD, progress=False)
    assert torch.equal(resumed.images, straight.images)
    assert resumed.meta["seeds"] == straight.meta["seeds"] and resumed.meta["tiers"] == straight.meta["tiers"]
    assert resumed.history["stage2_adv"] == pytest.approx(straight.history["stage2_adv"], rel=1e-6)


@pytest.mark.parametrize("ipc", [1, 3])
def test_checkpoint_holds_the_live_step_only(tiny_teacher, tmp_path, ipc):
    """The live progress file holds one step (its size does not grow with the IPC or the slots
    done); each finished step is written once, to its own file."""
    teacher = tiny_teacher[0]
    cfg = RecoverConfig(ipc=ipc, iterations=30, lr=0.1, groups_per_step=1)
    sizes = []

    def spy(path, key, state):
        sizes.append(len(state["x"]))
        return save_progress(path, key, state)

    import cda.checkpoint as rec  # the live file is saved through cda.checkpoint.Resume
    original = rec.save_progress
    rec.save_progress = lambda path, key, state: spy(path, key, state) if "x" in state else original(path, key, state)
    try:
        recover(teacher, INFO, cfg, progress=False, progress_dir=tmp_path, checkpoint_every=10)
    finally:
        rec.save_progress = original
    assert sizes and set(sizes) == {10}  # one group of 10 classes, whatever the IPC
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == sorted(
        step_name([(i, np.arange(10))]) for i in range(ipc))
    assert not (tmp_path / PROGRESS_FILE).exists()  # nothing live once finished


def test_a_larger_ipc_reuses_the_slots_a_smaller_one_made(tiny_teacher, tmp_path):
    teacher = tiny_teacher[0]
    small = recover(teacher, INFO, RecoverConfig(ipc=1, iterations=5, groups_per_step=1), progress=False,
                    store_dir=tmp_path)
    made = (tmp_path / step_name([(0, np.arange(10))])).stat().st_mtime_ns
    big = recover(teacher, INFO, RecoverConfig(ipc=2, iterations=5, groups_per_step=1), progress=False,
                  store_dir=tmp_path)
    assert (tmp_path / step_name([(0, np.arange(10))])).stat().st_mtime_ns == made  # loaded, not rewritten
    assert torch.equal(big.images[0::2], small.images)
    fresh = recover(teacher, INFO, RecoverConfig(ipc=2, iterations=5, groups_per_step=1), progress=False)
    assert torch.equal(big.images, fresh.images)


def test_progress_of_another_config_is_refused(tiny_teacher, tmp_path):
    teacher = tiny_teacher[0]
    recover(teacher, INFO, RecoverConfig(ipc=1, iterations=4), progress=False, progress_dir=tmp_path)
    with pytest.raises(Exception, match="another config"):
        recover(teacher, INFO, RecoverConfig(ipc=1, iterations=5), progress=False, progress_dir=tmp_path)


def test_interrupted_cache_entry_is_never_taken_for_finished(tmp_path):
    cache = Cache(tmp_path)
    calls = []

    def broken(folder):
        (folder / "half.txt").write_text("half")
        calls.append(folder)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_make("thing", ({"a": 1},), broken, lambda f: "loaded")
    assert not (cache.folder("thing", {"a": 1}) / "done.json").exists()

    def finish(folder):
        assert (folder / "half.txt").read_text() == "half"  # the partial work is there to resume from
        (folder / "result.txt").write_text("ok")

    assert cache.get_or_make("thing", ({"a": 1},), finish, lambda f: (f / "result.txt").read_text()) == "ok"
    assert cache.get_or_make("thing", ({"a": 1},), broken, lambda f: (f / "result.txt").read_text()) == "ok"


def test_disk_full_keeps_the_earlier_file(tmp_path, monkeypatch):
    target = tmp_path / "labels.pt"
    save_torch({"v": torch.ones(3)}, target)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OutputError, match="No space left on device.*free space"):
        save_torch({"v": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["v"], torch.ones(3))
    assert not list(tmp_path.glob(".*.tmp"))


def test_unwritable_output_folder_is_named(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write .*not-a-folder"):
        save_torch({}, blocker / "x.pt")


def test_non_finite_recovery_loss_stops_with_advice(tiny_teacher):
    import copy

    teacher = copy.deepcopy(tiny_teacher[0])
    bn = [m for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    bn.running_var.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="lower the lr"):
        recover(teacher, INFO, RecoverConfig(ipc=1, iterations=3), progress=False)


def test_the_resume_helper_saves_when_due_resumes_and_cleans_up(tmp_path):
    from cda.checkpoint import Resume

    done, path = [], tmp_path / "p.pt"

    def step(i):
        done.append(i)
        if i == 4:
            raise KeyboardInterrupt  # interrupted after steps 0..3 (the save after step 3 is on disk)

    r = Resume(path, "k", every=2)
    with pytest.raises(KeyboardInterrupt):
        r.run(10, step, lambda n: {"n": n}, lambda saved: saved["n"])
    assert torch.load(path, weights_only=True)["n"] == 4 and done == [0, 1, 2, 3, 4]
    done.clear()
    Resume(path, "k", every=2).run(10, done.append, lambda n: {"n": n}, lambda saved: saved["n"])
    assert done == [4, 5, 6, 7, 8, 9] and not path.exists()  # resumed at step 4; the file goes at the end
    save_progress(path, "another config", {"n": 1})
    with pytest.raises(Exception, match="another config"):
        Resume(path, "k").saved()
