"""Issue 28's student options: CUDD's `mse_gt` loss and validation during training (best and last)."""
import math
from dataclasses import replace

import pytest
import torch

from cda.config import AugConfig, ConfigError, DataConfig, EvalConfig, config_hash
from cda.data import load_split
from cda.models import create_model
from cda.recover import real_subset
from cda.student import evaluate, mse_gt_loss, train_student
from cda.student_validation import Validation
from cda.training import test_accuracy as accuracy_of

AUG = AugConfig(epochs=5, batch_size=16)


def test_new_fields_keep_every_cache_key():
    """At their defaults the new fields are left out of the hash: these are EvalConfig hashes measured
    at commit 55f67a3, before the fields existed."""
    assert config_hash(EvalConfig()) == "e0b6b67d88a5"
    assert config_hash(EvalConfig(arch="resnet18_modified", labels="stored", temperature=4.0)) == "b700f6a5bf25"
    assert config_hash(EvalConfig(loss="mse_gt")) != config_hash(EvalConfig())
    assert config_hash(EvalConfig(val_every=5)) != config_hash(EvalConfig())


@pytest.mark.parametrize("field, value, words", [
    ("loss", "mse", "choose 'kl' or 'mse_gt'"), ("ce_weight", -0.1, "must be >= 0"),
    ("val_every", -1, "val_every=-1"), ("val_every", 2.5, "val_every=2.5"),
])
def test_bad_values_are_refused(field, value, words):
    with pytest.raises(ConfigError, match=words):
        EvalConfig(**{field: value})


def test_mse_gt_loss_matches_a_hand_computed_value():
    """CUDD @0bf778c training/train_FKD.py:273: F.mse_loss(output, soft_label) + CE(output, target) * 0.1.
    By hand: squared differences 1, 0, 1, 1 -> MSE 3/4; CE of row 1 (logits 1, 2; class 1) = log(1 + e^-1),
    of row 2 (logits 0, 0; class 0) = log 2."""
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    labels = torch.tensor([1, 0])
    expected = 0.75 + 0.1 * (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert mse_gt_loss(student, teacher, labels).item() == pytest.approx(expected, rel=1e-6)
    assert mse_gt_loss(student, teacher, labels, ce_weight=0.0).item() == pytest.approx(0.75, rel=1e-6)


@pytest.mark.slow
def test_a_student_learns_with_mse_gt(tiny_teacher, tiny_data):
    """A short run with online teacher logits: it trains (beats chance clearly) and is not the KL student."""
    train, test = tiny_data
    teacher = tiny_teacher[0]
    d = real_subset(train, 10)
    cfg = EvalConfig(arch="convnet3_w8", aug=AugConfig(epochs=20, batch_size=32, crop_scale=(0.5, 1.0)), loss="mse_gt")
    metrics = evaluate(d, test, cfg, teacher, progress=False)
    assert metrics["top1"] > 20, metrics  # 10 classes: chance is 10% (25.5% measured; KL: 26.0%)
    short = replace(cfg, aug=AugConfig(epochs=2, batch_size=16))
    kl = train_student(real_subset(train, 2), train.info, replace(short, loss="kl"), teacher, progress=False)
    mse = train_student(real_subset(train, 2), train.info, short, teacher, progress=False)
    assert not torch.equal(kl.classifier.weight, mse.classifier.weight)


@pytest.fixture(scope="module")
def val_split():
    return load_split(DataConfig(train_per_class=40, test_per_class=20, validation=10), split="val")


@pytest.mark.slow
def test_validation_reports_best_and_last_without_changing_the_student(tiny_teacher, tiny_data, val_split):
    train, test = tiny_data
    d = real_subset(train, 4)
    cfg = EvalConfig(arch="convnet3_w8", aug=AUG)
    plain = evaluate(d, test, cfg, tiny_teacher[0], progress=False)
    checked = evaluate(d, test, replace(cfg, val_every=2), tiny_teacher[0], progress=False, val_split=val_split)
    # the last weights are the unvalidated student's, and the tables' top1 is theirs
    assert checked["top1"] == checked["last_top1"] == plain["top1"] and checked["top5"] == plain["top5"]
    assert [e for e, _ in checked["val_curve"]] == [2, 4, 5]  # every 2 epochs and the last
    best = max(checked["val_curve"], key=lambda p: p[1])
    assert checked["best_epoch"] == best[0] and checked["best_val_top1"] == best[1]
    if checked["best_epoch"] == 5:
        assert checked["best_top1"] == checked["last_top1"]
    assert "best_top1" not in plain and "val_curve" not in plain


def test_the_kept_weights_are_those_that_scored_best(tiny_teacher, tiny_data, val_split):
    train, _ = tiny_data
    v = Validation(val_split, every=1)
    student = train_student(real_subset(train, 4), train.info, EvalConfig(arch="convnet3_w8", aug=AUG),
                            tiny_teacher[0], progress=False, validation=v)
    assert len(v.curve) == AUG.epochs and all(t.device.type == "cpu" for t in v.best_state.values())
    fresh = create_model("convnet3_w8", 10, 1, 28)
    fresh.load_state_dict(v.best_state)
    assert accuracy_of(fresh, val_split, torch.device("cpu"))["top1"] == v.best_top1
    assert v.best_top1 == max(t for _, t in v.curve)
    assert student.training is False  # returned in eval mode, as without validation


def test_validation_needs_the_split(tiny_teacher, tiny_data):
    train, test = tiny_data
    with pytest.raises(ValueError, match="pass val_split=load_split"):
        evaluate(real_subset(train, 1), test, EvalConfig(arch="convnet3_w8", aug=AUG, val_every=2), tiny_teacher[0],
                 progress=False)


@pytest.mark.slow
def test_a_resumed_run_validates_as_an_uninterrupted_one(tiny_teacher, tiny_data, val_split, tmp_path, monkeypatch):
    """The progress checkpoint keeps the curve and the best weights: a run resumed from epoch 4 ends
    with the same curve, best epoch and best weights."""
    monkeypatch.setattr("cda.checkpoint.Resume.finish", lambda self: None)  # keep the last checkpoint, as a crash would
    train, _ = tiny_data
    d = real_subset(train, 4)
    cfg = EvalConfig(arch="convnet3_w8", aug=AUG)
    first = Validation(val_split, every=1)
    train_student(d, train.info, cfg, tiny_teacher[0], progress=False, progress_dir=tmp_path, checkpoint_every=2,
                  validation=first)
    saved = torch.load(tmp_path / "student_progress.pt", weights_only=True)
    assert saved["epoch"] == 4 and [e for e, _ in saved["validation"]["curve"]] == [1, 2, 3, 4]
    resumed = Validation(val_split, every=1)
    train_student(d, train.info, cfg, tiny_teacher[0], progress=False, progress_dir=tmp_path, validation=resumed)
    assert resumed.curve == first.curve and resumed.best_epoch == first.best_epoch
    assert all(torch.equal(resumed.best_state[k], v) for k, v in first.best_state.items())
    with pytest.raises(ValueError, match="saved by a run without validation"):
        train_student(d, train.info, cfg, tiny_teacher[0], progress=False, progress_dir=tmp_path / "plain",
                      checkpoint_every=2)
        train_student(d, train.info, cfg, tiny_teacher[0], progress=False, progress_dir=tmp_path / "plain",
                      validation=Validation(val_split, every=1))


@pytest.mark.slow
def test_the_workspace_validates_a_student_when_asked(tmp_path):
    """EvalConfig.val_every through the pipeline: the cached metrics hold the best and the last student."""
    from cda.config import preset
    from cda.pipeline import Workspace

    cfg = preset("smoke", cache_dir=str(tmp_path / "cache"), methods=["random"], ipcs=[1],
                 **{"data.validation": 20, "eval.val_every": 2, "eval.aug.epochs": 4, "squeeze.epochs": 1})
    m = Workspace(cfg, progress=False, log=lambda _: None).evaluation("random", 1)
    assert [e for e, _ in m["val_curve"]] == [2, 4] and m["top1"] == m["last_top1"]
    assert m["best_epoch"] in (2, 4) and 0 <= m["best_top1"] <= 100
