from collections import namedtuple

import pytest

from cda.config import preset
from cda.labels_compact import bytes_per_view
from cda.plan import InsufficientDiskError, Shape, dataset_shape, make_plan, measure_rate, model_memory

Usage = namedtuple("Usage", "total used free")


def _paper(**overrides):
    return preset("paper", **{"ipcs": [10], "methods": ["random", "sre2l", "cda", "cudd"], **overrides})


def test_the_imagenet_plan_needs_no_data_and_scales_with_ipc_and_classes():
    cfg = _paper()
    assert dataset_shape(cfg) == Shape(1000, 3, 224)  # known shape, no data root
    p10, p20 = make_plan(cfg, measure=False), make_plan(_paper(ipcs=[20]), measure=False)
    labels = "stored soft labels (FKD format)"
    for key in ("distilled sets, uint8 tensors", "distilled sets, PNG trees (estimate)", labels):
        assert p20.disk[key] == pytest.approx(2 * p10.disk[key])
    for key in ("recovery image-iterations", "student image-epochs", "relabel image-epochs"):
        assert p20.work[key] == pytest.approx(2 * p10.work[key])
    # 3 synthesized sets of 10 x 1000 uint8 images; 4 labelled sets (random too) x 300 epochs of FKD views
    assert p10.disk["distilled sets, uint8 tensors"] == 3 * 10 * 1000 * 3 * 224 * 224
    assert p10.disk[labels] == pytest.approx(4 * 10 * 1000 * 300 * bytes_per_view(1000, 0, batch_size=1024))
    # 10 x 1000 images x 4000 iterations, per synthesized set
    assert p10.work["recovery image-iterations"] == 3 * 10 * 1000 * 4000
    half = make_plan(cfg, Shape(500, 3, 224), measure=False)
    assert half.disk["distilled sets, uint8 tensors"] * 2 == p10.disk["distilled sets, uint8 tensors"]
    assert half.work["recovery image-iterations"] * 2 == p10.work["recovery image-iterations"]
    assert half.disk[labels] < p10.disk[labels] / 2  # fewer logits per view as well
    online = make_plan(_paper(**{"eval.labels": "online"}), measure=False)
    assert labels not in online.disk and online.work["relabel image-epochs"] == 0


def test_memory_is_measured_from_what_autograd_keeps():
    m = model_memory("convnet3", Shape(10, 1, 28))
    # per image: conv output (kept by BN), ReLU output (in place on BN's), pool output, at 28, 14, 7 px
    by_hand = 4 * 64 * (2 * 784 + 196 + 2 * 196 + 49 + 2 * 49 + 9)
    assert m.saved_per_image == pytest.approx(by_hand, rel=0.01)
    plan = make_plan(_paper())
    assert plan.memory["recovery step"] < plan.memory["CUDD recovery step"]
    big = make_plan(_paper(**{"recover.groups_per_step": 4}))
    assert big.memory["recovery step"] > 3 * plan.memory["recovery step"]


def test_refuses_when_the_disk_cannot_hold_the_output(monkeypatch, tmp_path):
    plan = make_plan(_paper(cache_dir=str(tmp_path / "cache")), measure=False)
    monkeypatch.setattr("cda.plan.shutil.disk_usage", lambda p: Usage(10 ** 12, 0, int(plan.disk_total) - 1))
    with pytest.raises(InsufficientDiskError, match=r"needs \d+\.\d GB of disk .* cache_dir="):
        plan.check_disk()
    monkeypatch.setattr("cda.plan.shutil.disk_usage", lambda p: Usage(10 ** 12, 0, int(plan.disk_total) + 1))
    plan.check_disk()


def test_time_projection_and_a_measured_rate():
    cfg = preset("smoke")
    plan = make_plan(cfg)
    t = plan.project(recover_images_per_s=2.0, student_images_per_s=10.0)
    assert t["recovery"] == plan.work["recovery image-iterations"] / 2 and t["total"] == t["recovery"] + t["students"]
    assert "Time at the measured rates" in plan.render({"recover_images_per_s": 2.0})
    rate = measure_rate(cfg, dataset_shape(cfg), iterations=2)
    assert rate["recover_images_per_s"] > 0 and rate["images_per_step"] == 20  # smoke: all 2 x 10 in one step


def test_cli_plan_prints_and_refuses(monkeypatch, tmp_path, capsys):
    from cda.cli import main

    args = ["plan", "--preset", "paper", "--set", "ipcs=[50]", "--set", f"cache_dir={tmp_path}"]
    monkeypatch.setattr("cda.plan.shutil.disk_usage", lambda p: Usage(10 ** 13, 0, 10 ** 13))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "imagenet1k (1000 classes, 3x224x224)" in out and "stored soft labels" in out
    monkeypatch.setattr("cda.plan.shutil.disk_usage", lambda p: Usage(10 ** 13, 0, 10 ** 9))
    assert main(args) == 1
    assert "Nothing was started" in capsys.readouterr().err
    assert main(["plan", "--preset", "paper", "--dataset", "imagefolder", "--classes", "30", "--size", "64",
                 "--set", "ipcs=[50]", "--set", f"cache_dir={tmp_path}"]) == 0  # an ImageFolder tree not at hand: its shape given
    assert "imagefolder (30 classes, 3x64x64)" in capsys.readouterr().out


def test_every_registered_method_can_be_planned():
    """A method that picks real images (random, nearest_mean) has no recovery work; planning a run
    with it used to stop with "not recovered from noise" (found by scripts/gpu_check.py's paper part)."""
    from cda.methods import list_methods

    every = make_plan(_paper(methods=list_methods()), measure=False)
    noise = make_plan(_paper(methods=["sre2l", "cda", "cudd"]), measure=False)
    assert every.work["recovery image-iterations"] == noise.work["recovery image-iterations"] > 0
