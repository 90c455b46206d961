"""K students at once (cda.students_batched) against K separate train_student runs on real Fashion-MNIST.

Tolerance: 1e-4 absolute on every weight, BatchNorm statistic and test logit. The grouped convolutions
and the one teacher forward over K batches add in another order than K separate calls, so every step
differs by float32 rounding (~1e-7 relative); a few dozen AdamW steps grow that to the ~1e-5 measured
here. Students of different seeds differ by ~0.1-1, so the check separates "the same student" from
"another student" by three orders of magnitude.
"""
from dataclasses import replace

import pytest
import torch

from cda.config import AugConfig, EvalConfig, seeded_eval
from cda.recover import real_subset
from cda.runtime import Speed
from cda.student import train_student
from cda.students_batched import BatchedStudentsError, train_students
from cda.training import test_accuracy as accuracy

TOL = 1e-4


def _compare(separate, batched, test):
    x = test.info.normalize(test.take(list(range(len(test)))))
    for a, b in zip(separate, batched):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.allclose(sa[name].float(), sb[name].float(), atol=TOL, rtol=0), name
        with torch.no_grad():
            assert torch.allclose(a(x), b(x), atol=TOL, rtol=0)
        acc_a = accuracy(a, test, torch.device("cpu"), amp=False)["top1"]
        acc_b = accuracy(b, test, torch.device("cpu"), amp=False)["top1"]
        assert abs(acc_a - acc_b) <= 100 / len(test) + 1e-9  # at most one test image on the other side
    # the check can fail: two seeds give students far apart
    differ = max((p - q).abs().max().item() for p, q in zip(separate[0].parameters(), separate[1].parameters()))
    assert differ > 100 * TOL


@pytest.mark.slow  # ~10 s on 2 free cores: six students
def test_three_seeds_at_once_equal_three_runs(tiny_data, tiny_teacher):
    """The cpu preset's student recipe (CutMix, crops 0.25-1, flips, T 20, AdamW at 2e-3, cosine) at a
    tiny scale: three seeds of one cell."""
    train, test = tiny_data
    teacher = tiny_teacher[0]
    d = real_subset(train, 10)
    base = EvalConfig(arch="convnet3_w16", lr=0.002, aug=AugConfig(epochs=3, batch_size=32, crop_scale=(0.25, 1.0)))
    cfgs = [seeded_eval(base, s) for s in range(3)]
    separate = [train_student(d, train.info, c, teacher, progress=False) for c in cfgs]
    batched = train_students(d, train.info, cfgs, teacher, progress=False)
    _compare(separate, batched, test)


@pytest.mark.slow
def test_one_seed_on_several_sets_digits_recipe(tiny_data, tiny_teacher):
    """The digits preset's recipe (no flips, crops 0.5-1, T 1, lr 4e-3) with a warm-up, on three different
    sets of one size: each student trains on its own set."""
    train, test = tiny_data
    teacher = tiny_teacher[0]
    sets = [real_subset(train, 5, seed=s) for s in range(3)]
    cfg = EvalConfig(arch="convnet3_w16", temperature=1.0, lr=0.004, warmup_epochs=1,
                     aug=AugConfig(epochs=3, batch_size=32, crop_scale=(0.5, 1.0), flip=False))
    cfgs = [cfg, seeded_eval(cfg, 1), seeded_eval(cfg, 2)]
    separate = [train_student(d, train.info, c, teacher, progress=False) for d, c in zip(sets, cfgs)]
    batched = train_students(sets, train.info, cfgs, teacher, progress=False)
    _compare(separate, batched, test)


@pytest.mark.parametrize("change, names", [
    (dict(labels="hard"), "labels='hard'"),
    (dict(speed=Speed(channels_last=True)), "speed channels_last"),
    (dict(arch="convnet3_w16_in"), "BatchNorm"),
    (dict(arch="resnet18_modified"), "ConvNet"),
])
def test_refuses_what_it_does_not_support(tiny_data, tiny_teacher, change, names):
    train, _ = tiny_data
    change = dict(change)
    speed = change.pop("speed", Speed())
    cfg = replace(EvalConfig(arch="convnet3_w16", aug=AugConfig(epochs=1, batch_size=32)), **change)
    with pytest.raises(BatchedStudentsError) as err:
        train_students(real_subset(train, 2), train.info, [cfg, seeded_eval(cfg, 1)], tiny_teacher[0], progress=False,
                       speed=speed)
    assert names in str(err.value) and "\n" not in str(err.value)


def test_refuses_recipes_that_differ_beyond_the_seeds(tiny_data, tiny_teacher):
    train, _ = tiny_data
    cfg = EvalConfig(arch="convnet3_w16", aug=AugConfig(epochs=1, batch_size=32))
    with pytest.raises(BatchedStudentsError, match="differs from student 0's in lr"):
        train_students(real_subset(train, 2), train.info, [cfg, replace(cfg, lr=0.01)], tiny_teacher[0],
                       progress=False)
    with pytest.raises(BatchedStudentsError, match="sets of one size"):
        train_students([real_subset(train, 2), real_subset(train, 3)], train.info, [cfg, seeded_eval(cfg, 1)],
                       tiny_teacher[0], progress=False)
