"""Nothing global changes outside a block the caller enters: TF32, threads, the RNG; and opening a
workspace reads nothing."""
import torch

from cda.config import preset
from cda.data import dataset_info
from cda.recover import real_subset
from cda.runtime import Runtime
from cda.student import train_student
from cda.training import resolve_device, seeded


def test_resolving_a_device_changes_no_global_flag():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    resolve_device("cpu")
    with Runtime("cuda", tf32=not before[0]).applied():  # the flags move inside the block only
        assert torch.backends.cuda.matmul.allow_tf32 == (not before[0])
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_runtime_threads_are_put_back():
    n = torch.get_num_threads()
    with Runtime(threads=1).applied():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


def test_seeded_blocks_leave_the_callers_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)  # as if the block had not run
    with seeded(7):
        assert torch.equal(torch.rand(3), inside)  # and the block itself is reproducible


def test_train_student_leaves_the_global_rng_as_it_was(tiny_data):
    from cda.config import AugConfig, EvalConfig

    info = dataset_info("fashion_mnist")
    cfg = EvalConfig(arch="convnet3_w8", labels="hard", aug=AugConfig(epochs=1, batch_size=16))
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = train_student(real_subset(tiny_data[0], 1), info, cfg, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)  # another caller state: the student does not depend on it
    b = train_student(real_subset(tiny_data[0], 1), info, cfg, progress=False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


def test_opening_a_workspace_reads_no_data_and_runs_no_git(tmp_path, monkeypatch):
    from cda import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "load_split", lambda *a, **k: calls.append("load_split"))
    monkeypatch.setattr(pipeline, "git_commit", lambda *a, **k: calls.append("git"))
    ws = pipeline.Workspace(preset("smoke", cache_dir=str(tmp_path)), progress=False, log=lambda _: None)
    assert calls == [] and not list(tmp_path.iterdir())
    assert ws.info.num_classes == 10 and calls == []  # the dataset's shape needs no data either
    assert ws.train is None  # the monkeypatched loader
    assert calls == ["load_split"]
