"""CUDD: initial-image filters, the adversarial term, stages and the pipeline, on stubs and on real
Fashion-MNIST images."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cda.config import AugConfig, ConfigError, CuddConfig, EvalConfig, RecoverConfig, RunConfig, from_dict, to_dict
from cda.cudd import adversarial_loss, distill_cudd, select_initial
from cda.data import DatasetInfo, TensorSplit, dataset_info
from cda.models import create_model
from cda.recover import recover

INFO = dataset_info("fashion_mnist")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# (a) The filters, with stub models whose predictions are set per image.

STUB_INFO = DatasetInfo("stub", 3, 4, 1, (0.0,), (1.0,), True)


class IndexedPredictor(nn.Module):
    """Predicts `preds[i]` for the image whose first pixel is i (the stub split's images)."""

    def __init__(self, preds):
        super().__init__()
        self.preds = torch.as_tensor(preds)

    def forward(self, x):
        index = (x[:, 0, 0, 0] * 255).round().long()
        return F.one_hot(self.preds[index], 3).float() * 10


def stub_split():
    """Three classes of six images; image i has first pixel i."""
    images = torch.zeros(18, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(18)
    return TensorSplit(images, torch.arange(3).repeat_interleave(6), STUB_INFO)


# Class 0 (images 0-5): 0 both right, 1-2 teacher right / student wrong (medium), 3 both wrong (hard),
# 4 teacher wrong / student right, 5 both right.
# Class 1 (images 6-11): 6 both predict class 0 (hard: wrong against the true class 1, though the
# official code, comparing with class 0, would call both right), 7 both wrong (hard), 8-11 both right.
# Class 2 (images 12-17): 12-13 medium, 14-17 teacher right / student right.
TEACHER = [0, 0, 0, 1, 2, 0, 0, 2, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
STUDENT = [0, 1, 2, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 2, 2, 2, 2]


def select(per_class, student=STUDENT, used=(), seed=0, batch_size=256):
    return select_initial(stub_split(), IndexedPredictor(TEACHER), student and IndexedPredictor(student),
                          per_class, set(used), np.random.default_rng(seed), batch_size=batch_size)


def test_first_stage_takes_images_the_teacher_gets_right():
    idx, tiers = select(3, student=None)
    assert set(idx[0]) <= {0, 1, 2, 5} and set(idx[1]) <= {8, 9, 10, 11} and set(idx[2]) <= set(range(12, 18))
    assert (tiers == "simple").all()
    idx, tiers = select(5, student=None)  # class 0 has four teacher-right images: the fifth is "other"
    assert set(idx[0][:4]) == {0, 1, 2, 5} and idx[0][4] in (3, 4)
    assert list(tiers[0]) == ["simple"] * 4 + ["other"] and (tiers[2] == "simple").all()


def test_later_stages_prefer_medium_then_hard_then_anything():
    for batch_size in (256, 2):  # scanning in chunks that stop early gives the same tiers
        idx, tiers = select(2, batch_size=batch_size)
        assert set(idx[0]) == {1, 2} and set(idx[2]) == {12, 13} and (tiers[[0, 2]] == "medium").all()
        assert set(idx[1]) == {6, 7} and (tiers[1] == "hard").all()  # judged against the true class
        idx, tiers = select(4, batch_size=batch_size)
        assert set(idx[0][:2]) == {1, 2} and idx[0][2] == 3 and idx[0][3] in (0, 4, 5)
        assert list(tiers[0]) == ["medium", "medium", "hard", "other"]
        assert list(tiers[1]) == ["hard", "hard", "other", "other"] and set(idx[1][2:]) <= {8, 9, 10, 11}
        assert list(tiers[2]) == ["medium", "medium", "other", "other"]


def test_used_images_are_skipped_and_every_class_gets_its_images():
    used = {1, 2, 6, 12, 13, 14}
    idx, tiers = select(3, used=used)
    assert idx.shape == (3, 3) and len(set(idx.ravel())) == 9 and not set(idx.ravel()) & used
    assert idx[0][0] == 3 and list(tiers[0]) == ["hard", "other", "other"]  # no medium left in class 0
    assert idx[1][0] == 7 and list(tiers[1]) == ["hard", "other", "other"]
    assert set(idx[2]) == {15, 16, 17} and (tiers[2] == "other").all()
    with pytest.raises(ValueError, match="class 2 has 2 unused training images, fewer than the 3"):
        select(3, used={12, 13, 14, 15})


def test_selection_is_deterministic_for_a_seed():
    a, b, c = select(4, seed=1), select(4, seed=1), select(4, seed=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(a[1], c[1])  # another seed: another scan order, the same tiers


# ---------------------------------------------------------------------------------------------
# (b) The adversarial term.

def test_adversarial_loss_matches_hand_computation_and_masks_teacher_mistakes():
    student = torch.tensor([[2.0, 0.5, -1.0], [0.3, 1.0, 0.0], [0.0, 0.0, 3.0]], requires_grad=True)
    teacher = torch.tensor([[5.0, 0, 0], [0, 0, 5.0], [0, 0, 5.0]])  # right, wrong, right
    targets = torch.tensor([0, 1, 2])
    loss = adversarial_loss(student, teacher, targets)
    p = F.softmax(student.detach(), 1)
    expected = (-torch.log(1 - p[0, 0]) - torch.log(1 - p[2, 2])) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.equal(student.grad[1], torch.zeros(3)) and student.grad[0].abs().sum() > 0

    student.grad = None
    all_wrong = adversarial_loss(student, torch.tensor([[0, 5.0, 0]] * 3), torch.tensor([0, 2, 2]))
    all_wrong.backward()
    assert all_wrong.item() == 0 and torch.equal(student.grad, torch.zeros(3, 3))


def test_label_smoothing_changes_the_target():
    student = torch.tensor([[2.0, 0.5, -1.0]])
    teacher, targets, eps = torch.tensor([[5.0, 0, 0]]), torch.tensor([0]), 0.3
    p = F.softmax(student, 1)[0]
    p_smooth = (1 - eps) * p[0] + eps / 3 * p.sum()
    torch.testing.assert_close(adversarial_loss(student, teacher, targets, eps), -torch.log(1 - p_smooth))
    assert adversarial_loss(student, teacher, targets, eps) < adversarial_loss(student, teacher, targets)


def test_minimizing_the_adversarial_term_lowers_the_students_true_class_probability():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    targets = torch.tensor([0, 3, 5, 7])
    teacher_logits = F.one_hot(targets, 10).float()  # the teacher is right on every image
    optimizer = torch.optim.Adam([x], lr=0.02)

    def true_class_probability():
        with torch.no_grad():
            return F.softmax(student(x), 1)[torch.arange(4), targets]

    before = true_class_probability()
    for _ in range(10):
        optimizer.zero_grad()
        adversarial_loss(student(x), teacher_logits, targets).backward()
        optimizer.step()
    assert (true_class_probability() < 0.5 * before).all()


# ---------------------------------------------------------------------------------------------
# (c) Stages on real images, with a small random teacher (fast).

def _random_teacher():
    torch.manual_seed(0)
    model = create_model("convnet3_w8", 10, 1, 28).train()
    with torch.no_grad():
        for _ in range(2):  # non-trivial BatchNorm running statistics
            model(torch.randn(32, 1, 28, 28))
    return model.eval()


def _cfg(stages, iterations=3, **kw):
    return CuddConfig(recover=RecoverConfig(ipc=stages[-1], iterations=iterations, lr=0.1, r_bn=0.05),
                      student=EvalConfig(arch="convnet3_w8", aug=AugConfig(batch_size=32, crop_scale=(0.5, 1.0))),
                      stages=stages, student_epochs=1, **kw)


def test_stages_never_reuse_a_real_image_and_record_seeds_and_tiers(tiny_data):
    train = tiny_data[0]
    d = distill_cudd(_random_teacher(), train, INFO, _cfg((1, 2, 4)), progress=False)
    seeds, tiers = np.array(d.meta["seeds"]), np.array(d.meta["tiers"])
    assert d.images.shape == (40, 1, 28, 28) and torch.equal(d.labels, torch.arange(10).repeat_interleave(4))
    assert len(set(seeds)) == 40 and torch.equal(train.labels[torch.as_tensor(seeds)], d.labels)
    slot = np.tile(np.arange(4), 10)
    assert set(tiers[slot == 0]) <= {"simple", "other"} and set(tiers[slot > 0]) <= {"medium", "hard", "other"}
    assert [s["slots"] for s in d.meta["stages"]] == [[0, 1], [1, 2], [2, 4]]
    assert sum(sum(s["tiers"].values()) for s in d.meta["stages"]) == 40


def test_adversarial_term_changes_only_the_stages_that_have_a_student(tiny_data):
    teacher, train = _random_teacher(), tiny_data[0]
    with_adv = distill_cudd(teacher, train, INFO, _cfg((1, 2)), progress=False)
    without = distill_cudd(teacher, train, INFO, _cfg((1, 2), adv=0.0), progress=False)
    assert with_adv.meta["seeds"] == without.meta["seeds"]  # same student, so same filters
    assert torch.equal(with_adv.images[0::2], without.images[0::2])  # stage 1: no student, deterministic
    assert not torch.equal(with_adv.images[1::2], without.images[1::2])
    assert max(with_adv.history["stage1_adv"]) == 0 and min(with_adv.history["stage2_adv"]) > 0
    assert max(without.history["stage2_adv"]) == 0


def test_l2_term_holds_images_near_their_real_seeds(tiny_data):
    teacher, train = _random_teacher(), tiny_data[0]

    def distance(l2):
        d = distill_cudd(teacher, train, INFO, _cfg((1,), iterations=6, l2=l2), progress=False)
        return (d.images.float() - train.take(d.meta["seeds"]).float()).abs().mean()

    assert distance(20.0) < 0.8 * distance(0.0)


def test_noise_init_ablation(tiny_data):
    d = distill_cudd(_random_teacher(), tiny_data[0], INFO, _cfg((1,), real_init=False, iterations=2), progress=False)
    assert set(d.meta["seeds"]) == {-1} and set(d.meta["tiers"]) == {"noise"}


# ---------------------------------------------------------------------------------------------
# (d) A full two-stage run with a trained teacher.

def test_two_stage_run_on_real_images(tiny_data, tiny_teacher):
    teacher, train = tiny_teacher[0], tiny_data[0]
    cfg = CuddConfig(recover=RecoverConfig(ipc=2, iterations=20, lr=0.1, r_bn=0.05),
                     student=EvalConfig(arch="convnet3_w16", aug=AugConfig(batch_size=32, crop_scale=(0.5, 1.0))),
                     stages=(1, 2), student_epochs=3)
    d = distill_cudd(teacher, train, INFO, cfg, progress=False)
    assert d.images.dtype == torch.uint8 and d.images.shape == (20, 1, 28, 28)
    assert torch.equal(d.labels, torch.arange(10).repeat_interleave(2)) and d.meta["method"] == "cudd"
    sre2l = recover(teacher, INFO, cfg.recover, progress=False)
    stage2 = d.images[1::2].float()
    seeds = train.take(np.array(d.meta["seeds"])[1::2]).float()
    # Started from real images and held by the L2 term: far closer to them than SRe2L's images are.
    assert (stage2 - seeds).abs().mean() < 0.5 * (sre2l.images[1::2].float() - seeds).abs().mean()
    assert not torch.equal(d.images[1::2], sre2l.images[1::2])
    with torch.no_grad():
        accuracy = (teacher(INFO.normalize(d.images)).argmax(1) == d.labels).float().mean()
    assert accuracy >= 0.8  # the teacher's CE keeps the images teacher-consistent
    assert min(d.history["stage2_adv"]) > 0 and d.meta["stages"][0]["seconds_student"] > 0


# ---------------------------------------------------------------------------------------------
# (e) Configuration, and the run's and command line's CUDD settings.

@pytest.mark.parametrize("kw, message", [
    (dict(stages=(2, 2)), r"stages=\(2, 2\): boundaries must strictly increase"),
    (dict(stages=(3, 1)), "must strictly increase"),
    (dict(stages=(0, 2)), "must be positive"),
    (dict(stages=(1, 3), recover=RecoverConfig(ipc=2)), r"must end at recover.ipc=2"),
    (dict(l2=-1.0), "must not be negative"),
    (dict(label_smoothing=1.0), r"must lie in \[0, 1\)"),
    (dict(student_epochs=0), "student_epochs=0: must be positive"),
    (dict(student=EvalConfig(labels="stored")), "online soft labels or hard labels"),
])
def test_bad_cudd_configs_are_named(kw, message):
    with pytest.raises(ConfigError, match=message):
        CuddConfig(**kw)


def test_run_config_derives_complete_cudd_configs():
    run = RunConfig()
    assert run.cudd_for(50).stages == (20, 50) and run.cudd_for(1).stages == (1,) and run.cudd_for(2).stages == (1, 2)
    c = run.cudd_for(10)
    assert c.recover.ipc == 10 and c.recover.curriculum.schedule == "none" and c.student == run.eval
    with pytest.raises(ConfigError, match="must end at the IPC asked for"):
        RunConfig(cudd=CuddConfig(stages=(2, 5))).cudd_for(10)
    assert from_dict(RunConfig, to_dict(RunConfig(cudd=c))) == RunConfig(cudd=c)
    assert RunConfig().methods == ("random", "sre2l", "cda")
    with pytest.raises(ConfigError, match="needs recover, student and stages"):
        distill_cudd(nn.Identity(), None, INFO, CuddConfig())


def test_cli_recovers_a_cudd_set(tiny_teacher, tmp_path):
    from cda.cli import main
    from cda.recover import Distilled

    out = tmp_path / "cudd"
    assert main(["recover", "--preset", "smoke", "--no-progress", "--teacher", str(tiny_teacher[2]),
                 "--method", "cudd", "--ipc", "2", "--set", "eval.arch=convnet3_w8", "--out", str(out)]) == 0
    d = Distilled.load(out)
    assert d.meta["method"] == "cudd" and d.images.shape == (20, 1, 28, 28) and len(set(d.meta["seeds"])) == 20
    assert len(list((out / "images").rglob("*.png"))) == 20


def test_curriculum_students_are_warm_started_at_the_lower_lr_for_their_epochs(tiny_data, monkeypatch):
    """The wiring of CUDD's curriculum students (papers.md 6.7): stage k's student continues from
    stage k-1's, at `student_lr_warm`, for `student_epochs`, on every image made so far."""
    import cda.cudd as cudd

    calls = []
    real = cudd.train_student

    def spy(distilled, info, cfg, teacher=None, *args, init=None, **kw):
        calls.append({"n": len(distilled.images), "lr": cfg.lr, "epochs": cfg.aug.epochs, "init": init})
        model = real(distilled, info, cfg, teacher, *args, init=init, **kw)
        calls[-1]["out"] = model
        return model

    monkeypatch.setattr(cudd, "train_student", spy)
    cfg = replace(_cfg((1, 2, 3)), student_epochs=2, student_lr_warm=3e-4)
    distill_cudd(_random_teacher(), tiny_data[0], INFO, cfg, progress=False)
    assert [c["n"] for c in calls] == [10, 20]  # a student after each stage but the last, on all images so far
    assert [c["epochs"] for c in calls] == [2, 2]
    assert calls[0]["init"] is None and calls[0]["lr"] == cfg.student.lr  # the first starts cold
    assert calls[1]["init"] is calls[0]["out"] and calls[1]["lr"] == 3e-4  # the next continues, at the lower lr
    calls.clear()
    distill_cudd(_random_teacher(), tiny_data[0], INFO, replace(cfg, warm_start=False), progress=False)
    assert calls[1]["init"] is None and calls[1]["lr"] == cfg.student.lr
