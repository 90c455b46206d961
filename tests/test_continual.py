"""cda.continual: class-incremental training on an image set, SRe2L-CL's protocol."""
import numpy as np
import pytest

from cda.config import AugConfig, EvalConfig
from cda.continual import class_incremental, class_order
from cda.recover import Distilled, real_subset

CFG = EvalConfig(arch="convnet3_w8", aug=AugConfig(epochs=4, batch_size=8))


def test_the_class_order_is_the_official_permutation():
    np.random.seed(0)  # zeyuanyin/SRe2L-CL@bdccefb main.py:109-110
    assert class_order(200, 0) == np.random.permutation(200).tolist()
    np.random.seed(42)  # MIV-XJTU/CUDD@0bf778c training/utils.py:111-112 (CLImageFolder)
    assert class_order(1000, 42) == np.random.permutation(1000).tolist()


def test_five_steps_of_two_classes(tiny_teacher, tiny_data):
    """One accuracy per step, each on the seen classes' test images only (20 per class here), with
    the teacher's soft labels."""
    train, test = tiny_data
    out = class_incremental(real_subset(train, 4), test, CFG, tiny_teacher[0], steps=5, progress=False)
    order = class_order(10, 0)
    assert out["class_order"] == order and len(out["steps"]) == len(out["top1"]) == 5
    for s, step in enumerate(out["steps"], 1):
        assert step["step"] == s and step["classes"] == sorted(order[:2 * s])
        assert step["new_classes"] == order[2 * s - 2:2 * s]
        assert step["num_images"] == 4 * 2 * s and step["num_test"] == 20 * 2 * s
        assert 0 <= step["top1"] <= step["top5"] <= 100


def test_a_student_of_the_right_images_beats_chance_at_step_1(tiny_data):
    """Step 1 sees 2 classes: guessing among them gives 50% (70% measured with this recipe)."""
    train, test = tiny_data
    hard = EvalConfig(arch="convnet3_w8", labels="hard", lr=5e-3, aug=AugConfig(epochs=10, batch_size=6))
    out = class_incremental(real_subset(train, 6), test, hard, steps=5, progress=False)
    assert out["top1"][0] > 60, out["top1"]


def test_bad_input_is_refused_plainly(tiny_data):
    train, test = tiny_data
    d = real_subset(train, 1)
    with pytest.raises(ValueError, match="steps=3 must divide the 10 classes"):
        class_incremental(d, test, CFG, steps=3, progress=False)
    with pytest.raises(ValueError, match="labels='stored'"):
        class_incremental(d, test, EvalConfig(labels="stored"), steps=5, progress=False)
    with pytest.raises(ValueError, match=r"no images of class\(es\) \[9\]"):
        class_incremental(Distilled(d.images[:9], d.labels[:9]), test, CFG, steps=5, progress=False)


def test_each_step_trains_with_the_speed_its_key_holds(tiny_data, monkeypatch):
    """The cache stamps the run's student speed settings into a continual result's key
    (cda.cache.stamped), so every step's student must train with them."""
    import cda.continual as continual
    from cda.runtime import Speed

    train, test = tiny_data
    seen = []
    monkeypatch.setattr(continual, "evaluate", lambda *a, **k: seen.append(k["speed"]) or {"top1": 50.0, "top5": 90.0})
    fast = Speed(channels_last=True)
    class_incremental(real_subset(train, 1), test, CFG, steps=5, progress=False, speed=fast)
    assert seen == [fast] * 5
