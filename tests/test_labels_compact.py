import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cda.config import AugConfig, ConfigError, EvalConfig, RelabelConfig
from cda.data import dataset_info
from cda.labels_compact import bytes_per_view, compress, decompress, from_rows, to_rows
from cda.recover import real_subset
from cda.relabel import _pack, epoch_plan, relabel
from cda.student import train_student

INFO = dataset_info("fashion_mnist")
AUG = AugConfig(epochs=2, batch_size=16, crop_scale=(0.3, 1.0), mix="cutmix")


def _logits(n, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g) * 3
    z[torch.arange(n), torch.randint(c, (n,), generator=g)] += 6  # a clear winner, as a teacher's
    return z


def _kl(z, r, t):
    return F.kl_div(F.log_softmax(r / t, 1), F.softmax(z / t, 1), reduction="batchmean").item()


@pytest.mark.parametrize("c,k", [(10, 3), (1000, 10), (1000, 100)])
@pytest.mark.parametrize("quant", ["fp16", "int8"])
def test_round_trip_keeps_the_top_k_and_bounds_the_error(c, k, quant):
    z = _logits(512, c)
    blob = compress(z, k, quant, temperature=20.0)
    r = decompress(blob, c)
    top = z.topk(k, dim=1)
    assert torch.equal(blob["indices"].long(), top.indices)  # the right classes, largest first
    kept = r.gather(1, top.indices)
    if quant == "fp16":
        bound = top.values.abs() * 2 ** -10 + 1e-3
    else:  # half a quantization step, plus fp16 rounding of the offset and the scale
        step = blob["scale"].float()[:, None]
        bound = step / 2 + top.values.abs() * 2 ** -10 + 255 * step * 2 ** -10 + 1e-3
    assert ((kept - top.values).abs() <= bound).all()
    # Dropped classes sit below every kept one, so the order and the arg-max survive.
    dropped = r.scatter(1, top.indices, float("inf"))
    assert (dropped.min(1).values >= r.min(1).values).all() and (r.max(1).values == kept.max(1).values).all()
    assert (dropped.min(1).values <= kept.min(1).values).all()
    clear = top.values[:, 0] - top.values[:, 1] > 0.1  # no near-tie that rounding may flip
    assert clear.float().mean() > 0.8 and torch.equal(r.argmax(1)[clear], z.argmax(1)[clear])


def test_fill_keeps_the_dropped_mass_and_beats_naive_fills():
    c, k, t = 100, 10, 4.0
    z = _logits(256, c, seed=1)
    r = decompress(compress(z, k, "fp16", temperature=t), c)
    top = z.topk(k, dim=1).indices
    mask = torch.ones_like(z, dtype=torch.bool).scatter(1, top, False)
    p, q = F.softmax(z / t, 1), F.softmax(r / t, 1)
    torch.testing.assert_close((q * mask).sum(1), (p * mask).sum(1), atol=2e-3, rtol=2e-2)
    kl = _kl(z, r, t)
    # Kept probabilities are exact, so the KL is the dropped mass M times KL(dropped | uniform over C - k).
    m = (p * mask).sum(1, keepdim=True)
    expected = torch.where(mask, p * torch.log(p * (c - k) / m), torch.zeros(())).sum(1).mean().item()
    assert kl == pytest.approx(expected, rel=0.05, abs=1e-3)
    # The mass-matching fill is the KL-optimal constant: better than the k-th value or the dropped mean.
    for naive in (z.gather(1, top[:, -1:]).squeeze(1), (z * mask).sum(1) / (c - k)):
        other = torch.where(mask, naive[:, None], z)
        assert kl < _kl(z, other, t)


def test_kl_at_the_students_temperature_is_small():
    for c, k in [(10, 3), (1000, 10), (1000, 100)]:
        z = _logits(512, c)
        assert _kl(z, decompress(compress(z, k, "int8", 20.0), c), 20.0) < 0.02
        # More classes kept, less divergence.
    z = _logits(512, 1000)
    kls = [_kl(z, decompress(compress(z, k, "int8", 20.0), 1000), 20.0) for k in (10, 50, 200)]
    assert kls[0] > kls[1] > kls[2]


def _saved_size(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def test_bytes_per_view_layout_and_measured_for_1000_classes():
    # Layout: full FKD-style = plan (33 B + per batch) + 2 B per class; compact top-10 int8 = 36 B.
    full, compact = bytes_per_view(1000, 0, batch_size=1024), bytes_per_view(1000, 10, "int8")
    assert compact == 10 * (1 + 2) + 6 and full > 2033
    assert full / compact > 50
    assert bytes_per_view(10, 0, batch_size=64) / bytes_per_view(10, 3, "int8") > 4
    # Measured: one epoch of 1024 views with synthetic logits, saved with torch.save.
    n, c = 1024, 1000
    z = _logits(n, c)
    plans = epoch_plan(AugConfig(batch_size=128), n, 224, 0)
    full_bytes = _saved_size(_pack(plans, [z[i:i + 128].half() for i in range(0, n, 128)]))
    blob = compress(z, 10, "int8")
    rows = to_rows(blob, c, 10, "int8")
    assert rows.shape == (n, bytes_per_view(c, 10, "int8"))
    back = from_rows(rows, c, 10, "int8")
    assert all(torch.equal(back[name], blob[name]) for name in blob)
    for k, quant in [(1, "int8"), (1, "fp16"), (3, "fp16")]:  # k = 1 must keep its [N, 1] shape
        small = compress(z[:8], k, quant)
        assert torch.equal(decompress(from_rows(to_rows(small, c, k, quant), c, k, quant), c), decompress(small, c))
    compact_bytes = _saved_size(rows)
    assert compact_bytes / n == pytest.approx(bytes_per_view(c, 10, "int8"), rel=0.05)
    assert full_bytes / n == pytest.approx(bytes_per_view(c, 0, batch_size=128), rel=0.05)
    assert full_bytes / compact_bytes > 20


def test_compact_stored_labels_regenerate_the_plan_and_train_a_student(tiny_teacher, tiny_data, tmp_path):
    teacher = tiny_teacher[0]
    d = real_subset(tiny_data[0], 5)
    full = relabel(teacher, d.images, INFO, RelabelConfig(aug=AUG), tmp_path / "full", progress=False)
    compact = relabel(teacher, d.images, INFO, RelabelConfig(aug=AUG, topk=3), tmp_path / "compact",
                      progress=False)
    for e in range(AUG.epochs):
        for (plan, logits), (cplan, clogits) in zip(full.epoch(e), compact.epoch(e)):
            assert np.array_equal(plan.indices, cplan.indices) and np.array_equal(plan.views.boxes, cplan.views.boxes)
            assert torch.equal(logits.float().topk(3).indices, clogits.float().topk(3).indices)
            assert _kl(logits.float(), clogits.float(), 20.0) < 0.01
    assert compact.bytes_per_view() < full.bytes_per_view()
    student = train_student(d, INFO, EvalConfig(arch="convnet3_w8", aug=AUG, labels="stored"), stored=compact,
                            progress=False)
    assert all(torch.isfinite(p).all() for p in student.parameters())
    # A plan that does not regenerate identically is refused.
    blob = torch.load(tmp_path / "compact" / "epoch_0000.pt")
    blob["plan_digest"] = "0" * 16
    torch.save(blob, tmp_path / "compact" / "epoch_0000.pt")
    with pytest.raises(Exception, match="regenerated augmentation plan differs"):
        compact.epoch(0)


def test_topk_cannot_exceed_the_classes():
    with pytest.raises(ValueError, match="topk"):
        compress(torch.randn(2, 10), 11)


def test_all_classes_in_int8_store_no_indices_and_round_within_half_a_step():
    c = 10
    z = _logits(256, c)
    blob = compress(z, c, "int8")
    assert "indices" not in blob and "fill" not in blob
    rows = to_rows(blob, c, c, "int8")
    assert rows.shape == (256, bytes_per_view(c, c, "int8")) == (256, c + 4)
    r = decompress(from_rows(rows, c, c, "int8"), c)
    step = blob["scale"].float()[:, None]
    assert ((r - z).abs() <= step / 2 + z.abs() * 2 ** -10 + 255 * step * 2 ** -10 + 1e-3).all()
    assert _kl(z, r, 20.0) < 1e-5


def test_a_pool_of_labelled_epochs_is_cycled(tiny_teacher, tiny_data, tmp_path):
    teacher = tiny_teacher[0]
    d = real_subset(tiny_data[0], 3)
    aug = AugConfig(epochs=5, batch_size=16, crop_scale=(0.3, 1.0))
    every = relabel(teacher, d.images, INFO, RelabelConfig(aug=aug, topk=10), tmp_path / "every", progress=False)
    pool = relabel(teacher, d.images, INFO, RelabelConfig(aug=aug, topk=10, label_epochs=2), tmp_path / "pool",
                   progress=False)
    assert len(list((tmp_path / "pool").glob("epoch_*.pt"))) == 2
    for e in range(aug.epochs):  # training epoch e sees labelled epoch e mod 2, views and logits
        for (plan, z), (pplan, pz) in zip(every.epoch(e % 2), pool.epoch(e)):
            assert np.array_equal(plan.indices, pplan.indices) and np.array_equal(plan.views.boxes, pplan.views.boxes)
            assert torch.equal(z, pz)
    assert pool.bytes_per_view() == pytest.approx(every.bytes_per_view() * 2 / 5, rel=0.01)
    student = train_student(d, INFO, EvalConfig(arch="convnet3_w8", aug=aug, labels="stored"), stored=pool,
                            progress=False)
    assert all(torch.isfinite(p).all() for p in student.parameters())
    with pytest.raises(ConfigError, match="label_epochs"):
        RelabelConfig(label_epochs=-1)


def test_relabel_sharded_by_epochs_writes_the_same_files(tiny_teacher, tiny_data, tmp_path):
    images = real_subset(tiny_data[0], 2).images
    aug = AugConfig(epochs=3, batch_size=8, crop_scale=(0.3, 1.0))
    for topk in (0, 3):
        cfg = RelabelConfig(aug=aug, topk=topk)
        single = relabel(tiny_teacher[0], images, INFO, cfg, tmp_path / f"one{topk}", progress=False)
        for rank in range(2):  # what two torchrun ranks do, one after the other
            relabel(tiny_teacher[0], images, INFO, cfg, tmp_path / f"two{topk}", progress=False, rank=rank,
                    world_size=2)
        for e in range(3):
            a = torch.load(tmp_path / f"one{topk}" / f"epoch_{e:04d}.pt")
            b = torch.load(tmp_path / f"two{topk}" / f"epoch_{e:04d}.pt")
            assert a.keys() == b.keys() and all(
                torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
        assert single.nbytes() > 0
