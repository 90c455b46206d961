"""The options for students that converge in fewer epochs (EvalConfig.schedule, ema_decay,
label_smoothing): each checked by hand, in the student loop, and off by default."""
import math

import pytest
import torch
from torch import nn

import cda.student as student_mod
from cda.config import AugConfig, ConfigError, EvalConfig
from cda.data import dataset_info
from cda.recover import real_subset
from cda.student import smoothed, soft_label_loss, train_student
from cda.students_batched import BatchedStudentsError, check_batchable
from cda.training import onecycle_lr
from cda.weight_ema import WeightEMA, ema_decay_at

INFO = dataset_info("fashion_mnist")
AUG = AugConfig(epochs=2, batch_size=4, crop_scale=(0.5, 1.0))


def test_onecycle_lr_by_hand_and_as_torch():
    # 10 steps, pct 0.3: up over steps 0..2, down over 2..9; start lr/25, end lr/25e4
    assert onecycle_lr(0, 10, 1.0) == pytest.approx(0.04)
    assert onecycle_lr(1, 10, 1.0) == pytest.approx(0.04 + 0.96 * 0.5)  # half-way up the cosine
    assert onecycle_lr(2, 10, 1.0) == pytest.approx(1.0)
    assert onecycle_lr(9, 10, 1.0) == pytest.approx(4e-6)
    opt = torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=37, cycle_momentum=False)
    for step in range(37):
        assert onecycle_lr(step, 37, 0.01) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()


def test_label_smoothing_of_a_given_distribution():
    p = torch.tensor([[0.7, 0.2, 0.1]])
    torch.testing.assert_close(smoothed(p, 0.3), torch.tensor([[0.59, 0.24, 0.17]]))
    student, teacher = torch.tensor([[1.0, 0.0, -1.0]]), torch.log(p)  # teacher at T=1 gives p exactly
    q = torch.softmax(student, 1)
    t = torch.tensor([0.59, 0.24, 0.17])
    expected = float((t * (t.log() - q.log())).sum())
    assert float(soft_label_loss(student, teacher, 1.0, smoothing=0.3)) == pytest.approx(expected, rel=1e-5)
    assert float(soft_label_loss(student, teacher, 1.0)) != pytest.approx(expected, rel=1e-2)  # it matters


def test_ema_of_two_steps_by_hand():
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    w = model[0].weight
    with torch.no_grad():
        w.fill_(1.0)
        model[1].running_mean.fill_(0.0)
    ema = WeightEMA(model, decay=0.1)  # d_t = min(0.1, (1+t)/(10+t)) = 0.1 for t = 1, 2
    with torch.no_grad():
        w.fill_(3.0)
        model[1].running_mean.fill_(2.0)
        model[1].num_batches_tracked.fill_(1)
    ema.update(model)  # 0.1 * 1 + 0.9 * 3 = 2.8; the mean: 0.9 * 2 = 1.8
    with torch.no_grad():
        w.fill_(5.0)
        model[1].num_batches_tracked.fill_(2)
    ema.update(model)  # 0.1 * 2.8 + 0.9 * 5 = 4.78; the mean: 0.1 * 1.8 + 0.9 * 2 = 1.98
    assert float(ema.model[0].weight) == pytest.approx(4.78)
    assert float(ema.model[1].running_mean) == pytest.approx(1.98)
    assert int(ema.model[1].num_batches_tracked) == 2  # copied, not averaged
    assert float(w.detach()) == 5.0 and not ema.model[0].weight.requires_grad
    assert ema_decay_at(0.999, 1) == pytest.approx(2 / 11) and ema_decay_at(0.999, 10_000) == 0.999


def test_onecycle_sets_the_lr_of_every_step(tiny_data, monkeypatch):
    seen = []
    real = student_mod.set_lr
    monkeypatch.setattr(student_mod, "set_lr", lambda opt, lr: (seen.append(lr), real(opt, lr)))
    d = real_subset(tiny_data[0], 1)  # 10 images, batch 4: 3 steps per epoch, 6 in all
    train_student(d, INFO, EvalConfig(arch="convnet3_w8", labels="hard", aug=AUG, lr=0.01, schedule="onecycle"),
                  progress=False)
    assert seen == [onecycle_lr(s, 6, 0.01) for s in range(6)]


def test_ema_student_is_the_average_and_decay_near_zero_is_the_live_student(tiny_data):
    d = real_subset(tiny_data[0], 1)
    base = EvalConfig(arch="convnet3_w8", labels="hard", aug=AUG, lr=0.01)
    live = train_student(d, INFO, base, progress=False)
    near = train_student(d, INFO, EvalConfig(**{**base.__dict__, "ema_decay": 1e-9}), progress=False)
    avg = train_student(d, INFO, EvalConfig(**{**base.__dict__, "ema_decay": 0.9}), progress=False)
    for (name, a), b in zip(live.state_dict().items(), near.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    gap = max(float((a.float() - c.float()).abs().max()) for a, c in zip(live.state_dict().values(),
                                                                          avg.state_dict().values()))
    assert gap > 1e-3  # the average of 6 steps is not the last step
    assert not avg.training


def test_smoothing_changes_a_hard_label_student(tiny_data):
    d = real_subset(tiny_data[0], 1)
    base = EvalConfig(arch="convnet3_w8", labels="hard", aug=AUG, lr=0.01)
    a = train_student(d, INFO, base, progress=False)
    b = train_student(d, INFO, EvalConfig(**{**base.__dict__, "label_smoothing": 0.2}), progress=False)
    assert any(not torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("fields, words", [
    ({"schedule": "step"}, "EvalConfig.schedule='step': choose one of"),
    ({"schedule": "onecycle", "warmup_epochs": 5}, "one-cycle warms up by itself"),
    ({"ema_decay": 1.0}, "EvalConfig.ema_decay=1.0: must lie in [0, 1)"),
    ({"ema_decay": -0.1}, "EvalConfig.ema_decay=-0.1"),
    ({"label_smoothing": 1.0}, "EvalConfig.label_smoothing=1.0: must lie in [0, 1)"),
    ({"label_smoothing": 0.1, "loss": "mse_gt"}, "with loss='mse_gt'"),
])
def test_bad_options_get_one_line_errors(fields, words):
    with pytest.raises(ConfigError) as err:
        EvalConfig(**fields)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_defaults_change_nothing_and_batched_students_refuse_the_options():
    e = EvalConfig()
    assert (e.schedule, e.ema_decay, e.label_smoothing) == ("cosine", 0.0, 0.0)
    check_batchable([e, EvalConfig(seed=1)])
    for fields in ({"schedule": "onecycle"}, {"ema_decay": 0.99}, {"label_smoothing": 0.1}):
        with pytest.raises(BatchedStudentsError, match=next(iter(fields))):
            check_batchable([EvalConfig(**fields)])
    assert math.isclose(soft_label_loss(torch.zeros(1, 3), torch.ones(1, 3), 4.0, smoothing=0.0), 0.0, abs_tol=1e-7)
