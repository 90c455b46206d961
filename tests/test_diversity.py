"""cda.diversity: spread (mean within-class cosine distance) and coverage/density (Naeem et al. 2020)."""
import numpy as np
import pytest
import torch

from cda.diversity import coverage, penultimate_features, set_diversity, spread
from cda.models import create_model


def _sets(test, per_class: int = 10, sigma: float = 0.1, seed: int = 0):
    """Distinct real images (the first `per_class` of each class) and noisy copies of one image per class."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.nonzero(test.labels == c)[:per_class, 0] for c in range(10)])
    distinct, labels = test.images[idx], test.labels[idx]
    firsts = distinct[::per_class].repeat_interleave(per_class, 0).float() / 255
    noisy = ((firsts + sigma * torch.randn(firsts.shape, generator=gen)).clamp(0, 1) * 255).round().to(torch.uint8)
    return distinct, noisy, labels


def test_identical_images_score_the_minimum_and_distinct_ones_beat_noisy_copies(tiny_teacher, tiny_data):
    train, test = tiny_data
    teacher, info = tiny_teacher[0], train.info
    distinct, noisy, labels = _sets(test)
    same = distinct[::10].repeat_interleave(10, 0)
    d = set_diversity(distinct, labels, teacher, info, real=train, real_per_class=20)
    n = set_diversity(noisy, labels, teacher, info, real=train, real_per_class=20)
    s = set_diversity(same, labels, teacher, info, real=train, real_per_class=20)
    assert s["spread"] == pytest.approx(0, abs=1e-6) and min(s["spread_per_class"].values()) >= -1e-6
    assert d["spread"] > n["spread"] > s["spread"]
    assert d["coverage"] > n["coverage"] and d["coverage"] > s["coverage"]
    assert 0 <= s["coverage"] <= 1 and 0 <= d["coverage"] <= 1


def test_the_measures_do_not_depend_on_image_order(tiny_teacher, tiny_data):
    train, test = tiny_data
    distinct, _, labels = _sets(test)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    a = set_diversity(distinct, labels, tiny_teacher[0], train.info, real=train, real_per_class=20)
    b = set_diversity(distinct[perm], labels[perm], tiny_teacher[0], train.info, real=train, real_per_class=20)
    assert a["spread"] == pytest.approx(b["spread"], rel=1e-9)
    assert a["coverage"] == b["coverage"] and a["density"] == pytest.approx(b["density"], rel=1e-9)


def test_coverage_and_density_are_prdc_s_per_class():
    """The same values as clovaai/prdc 0.2 `compute_prdc` on each class's features."""
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2, 60, 8)).astype(np.float32)
    fake = (rng.normal(size=(2, 15, 8)) * np.array([[[1.0]], [[0.4]]]) + 0.3).astype(np.float32)
    labels_r, labels_f = np.repeat([0, 1], 60), np.repeat([0, 1], 15)
    ours = coverage(torch.from_numpy(real.reshape(-1, 8)), torch.from_numpy(labels_r),
                    torch.from_numpy(fake.reshape(-1, 8)), torch.from_numpy(labels_f), k=5)
    for c in (0, 1):
        ref = prdc.compute_prdc(real[c], fake[c], nearest_k=5)
        assert ours["per_class"][c] == pytest.approx((ref["coverage"], ref["density"]), rel=1e-6)
    # the real images themselves cover their own manifold entirely
    full = coverage(torch.from_numpy(real[0]), torch.zeros(60), torch.from_numpy(real[0]), torch.zeros(60), k=5)
    assert full["coverage"] == 1.0


def test_spread_is_the_mean_pairwise_cosine_distance():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    out = spread(f, labels)
    # class 0: pairs at 90, 45 and 45 degrees; class 1: orthogonal
    assert out["per_class"][0] == pytest.approx(1 - (0 + 2 * 2 ** -0.5) / 3)
    assert out["per_class"][1] == pytest.approx(1.0)


def test_features_are_the_last_linear_layer_s_input(tiny_data):
    model = create_model("convnet3_w8", 10, 1, 28).eval()
    x = tiny_data[1].images[:7]
    feats = penultimate_features(model, x, tiny_data[1].info, batch_size=3, amp=False)
    with torch.no_grad():
        expected = torch.flatten(model.features(tiny_data[1].info.normalize(x)), 1)
    torch.testing.assert_close(feats, expected)


def test_bad_input_is_refused_plainly(tiny_teacher, tiny_data):
    train, test = tiny_data
    one = test.images[:10]
    labels = torch.arange(10)
    with pytest.raises(ValueError, match="with 1 image per class only coverage applies"):
        set_diversity(one, labels, tiny_teacher[0], train.info)
    with pytest.raises(ValueError, match="class 0 has 1 image"):
        spread(torch.randn(3, 4), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="needs at least 6|at least 6"):
        coverage(torch.randn(4, 3), torch.zeros(4), torch.randn(2, 3), torch.zeros(2), k=5)
    with pytest.raises(ValueError, match="labels range over"):
        set_diversity(one, labels + 5, tiny_teacher[0], train.info)
    with pytest.raises(ValueError, match="no nn.Linear layer"):
        penultimate_features(torch.nn.Conv2d(1, 2, 3), one, train.info)
