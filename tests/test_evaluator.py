"""cda.evaluate_images on plain tensors, and the official SRe2L/CDA/CUDD layouts it reads.

The official layouts are rebuilt here in miniature from the official code's behaviour (VILA-Lab/SRe2L
`recover/data_synthesis.py` save_images, `relabel/generate_soft_label.py` and `utils_fkd.py`): image
trees `new{c:03d}/class{c:03d}_id{i:03d}.<ext>`, and FKD batch files `epoch_{e}/batch_{b}.tar` holding
[coords, flip_status, mix_index, mix_lam, mix_bbox, soft_label], drawn by a RandomSampler seeded 42,
cropped and flipped by torchvision, CutMixed by the official box convention.
"""
import argparse
import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from conftest import TINY
from PIL import Image
from torch.utils.data import BatchSampler, RandomSampler
from torchvision.transforms import InterpolationMode, RandomResizedCrop

import cda
from cda.cache import ArtifactError
from cda.config import AugConfig, EvalConfig, SqueezeConfig
from cda.data import dataset_info
from cda.official_formats import FKDLabels, LayoutError, load_image_folder
from cda.recover import Distilled, real_subset
from cda.relabel import batch_inputs
from cda.student import evaluate, train_student

INFO = dataset_info("fashion_mnist")
SMALL = EvalConfig(arch="convnet3_w8", aug=AugConfig(epochs=6, batch_size=16, crop_scale=(0.5, 1.0)))


def write_official_tree(root, images, labels, ext="png"):
    """The official save_images naming: one folder per class, one file per IPC index."""
    counts = {}
    for image, label in zip(images, labels.tolist()):
        i = counts.get(label, 0)
        counts[label] = i + 1
        folder = root / f"new{label:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(folder / f"class{label:03d}_id{i:03d}.{ext}")


def write_official_fkd(root, images, teacher, epochs, batch_size, scale, seed=42):
    """FKD labels as the official generator writes them; returns each batch's exact input tensor."""
    size = images.shape[-1]
    rng = np.random.default_rng(3)
    crop = RandomResizedCrop(size, scale=scale, interpolation=InterpolationMode.BILINEAR)
    sampler = RandomSampler(range(len(images)), generator=torch.Generator().manual_seed(seed))
    inputs = {}
    for e in range(epochs):
        (root / f"epoch_{e}").mkdir(parents=True)
        for b, idx in enumerate(BatchSampler(sampler, batch_size, drop_last=False)):
            coords, flips, views = [], [], []
            for i in idx:
                x = INFO.normalize(images[i:i + 1])[0]
                top, left, h, w = crop.get_params(x, crop.scale, crop.ratio)
                coords.append(torch.tensor([top / size, left / size, h / size, w / size]))
                view = TF.resized_crop(x, top, left, h, w, [size, size], InterpolationMode.BILINEAR, antialias=False)
                flips.append(bool(rng.uniform() < 0.5))
                views.append(TF.hflip(view) if flips[-1] else view)
            x = torch.stack(views)
            # CutMix as rand_bbox: the first pair slices dim 2 (rows), the second dim 3 (columns).
            perm = torch.as_tensor(rng.permutation(len(idx)))
            lam = float(rng.beta(1.0, 1.0))
            cut = int(size * np.sqrt(1 - lam))
            cr, cc = rng.integers(size), rng.integers(size)
            r1, c1 = np.clip(cr - cut // 2, 0, size), np.clip(cc - cut // 2, 0, size)
            r2, c2 = np.clip(cr + cut // 2, 0, size), np.clip(cc + cut // 2, 0, size)
            x[:, :, r1:r2, c1:c2] = x[perm, :, r1:r2, c1:c2]
            with torch.no_grad():
                logits = teacher(x).half()
            torch.save([torch.stack(coords), torch.tensor(flips), perm, lam, [r1, c1, r2, c2], logits],
                       root / f"epoch_{e}" / f"batch_{b}.tar")
            inputs[e, b] = x
    return inputs


@pytest.fixture(scope="module")
def official(tiny_data, tmp_path_factory):
    """20 real images (2 per class) as an official image tree."""
    d = real_subset(tiny_data[0], 2, seed=5)
    root = tmp_path_factory.mktemp("official") / "syn_data"
    write_official_tree(root, d.images, d.labels)
    return root, d


def test_official_image_tree_loads_in_imagefolder_order(official, tmp_path):
    root, d = official
    images, labels = load_image_folder(root, progress=False)
    assert images.dtype == torch.uint8 and images.shape == (20, 1, 28, 28)
    assert torch.equal(images, d.images) and torch.equal(labels, d.labels)  # class-major, id order: as saved
    # JPEG (what the official code writes): the same tree up to compression; RGB on request.
    write_official_tree(tmp_path / "jpg", d.images, d.labels, ext="jpg")
    jpg, jpg_labels = load_image_folder(tmp_path / "jpg", progress=False)
    assert torch.equal(jpg_labels, d.labels) and (jpg.float() - d.images.float()).abs().mean() < 6  # quality 75
    assert load_image_folder(root, channels=3, image_size=32, progress=False)[0].shape == (20, 3, 32, 32)


def test_image_tree_labels_and_layout_errors(official, tmp_path):
    root, d = official
    # A class with no images in the set: numbered folders keep their numbers (ImageFolder would shift them).
    keep = d.labels != 2
    write_official_tree(tmp_path / "gap", d.images[keep], d.labels[keep])
    assert load_image_folder(tmp_path / "gap", progress=False)[1].unique().tolist() == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    # Named class folders: ImageFolder's sorted positions.
    for name in ("cat", "ant"):
        (tmp_path / "named" / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "named" / name / "a.png")
    assert load_image_folder(tmp_path / "named", progress=False)[1].tolist() == [0, 1]
    (tmp_path / "gap" / "new002").mkdir()
    with pytest.raises(LayoutError, match="new002 holds no images"):
        load_image_folder(tmp_path / "gap", progress=False)
    (tmp_path / "gap" / "new002").rmdir()
    Image.new("L", (8, 8)).save(tmp_path / "gap" / "new001" / "class005_id009.png")
    with pytest.raises(LayoutError, match="named for class 5 but lies in new001"):
        load_image_folder(tmp_path / "gap", progress=False)
    (tmp_path / "gap" / "new001" / "class005_id009.png").rename(tmp_path / "gap" / "new001" / "class001_id009.png")
    with pytest.raises(LayoutError, match="pass image_size="):
        load_image_folder(tmp_path / "gap", progress=False)
    with pytest.raises(LayoutError, match="no class folders with images"):
        load_image_folder(tmp_path / "named" / "cat", progress=False)


def test_official_fkd_labels_replay_the_official_views(official, tiny_teacher, tmp_path):
    """The indices, crops, flips and CutMix boxes read from official FKD files rebuild the inputs
    the official generator labelled: exactly for whole-image crops, up to crop-border interpolation
    for random crops (where a transposed box would be far off)."""
    root, d = official
    images, _ = load_image_folder(root, progress=False)
    teacher = tiny_teacher[0].eval()
    whole = write_official_fkd(tmp_path / "whole", images, teacher, epochs=2, batch_size=8, scale=(1.0, 1.0))
    fkd = FKDLabels(tmp_path / "whole", num_images=20)
    assert (fkd.epochs, fkd.batch_size, fkd.num_images, fkd.num_classes, fkd.mix) == (2, 8, 20, 10, "cutmix")
    assert fkd.logits_dtype == torch.float16
    boxes = []
    for e in range(2):
        batches = fkd.epoch(e)
        assert [len(p.indices) for p, _ in batches] == [8, 8, 4]
        for b, (plan, _logits) in enumerate(batches):
            torch.testing.assert_close(batch_inputs(images, plan, INFO), whole[e, b], atol=1e-5, rtol=0)
            boxes.append(plan.mix.box)
    assert any(y1 != x1 for y1, _, x1, _ in boxes)  # rows and columns differ, so a transposition would show
    assert not np.array_equal(fkd.order(0)[0], fkd.order(1)[0])  # the sampler moves on between epochs
    fkd.validate(progress=False)

    cropped = write_official_fkd(tmp_path / "crops", images, teacher, epochs=1, batch_size=8, scale=(0.3, 1.0))
    gaps, swapped = [], []
    for b, (plan, _) in enumerate(FKDLabels(tmp_path / "crops").epoch(0)):
        gaps.append((batch_inputs(images, plan, INFO) - cropped[0, b]).abs().mean().item())
        plan.views.boxes = plan.views.boxes[:, [1, 0, 3, 2]]  # (left, top, width, height): a wrong reading
        swapped.append((batch_inputs(images, plan, INFO) - cropped[0, b]).abs().mean().item())
    assert max(gaps) < 0.02 and min(swapped) > 10 * max(gaps), (gaps, swapped)  # measured: <0.005, >0.35

    # .pth files read the same; a student must use the stored batch size and no more epochs.
    before = fkd.epoch(1)
    for f in (tmp_path / "whole" / "epoch_1").iterdir():
        f.rename(f.with_suffix(".pth"))
    after = FKDLabels(tmp_path / "whole").epoch(1)
    assert all(np.array_equal(p.indices, q.indices) and torch.equal(a, b) for (p, a), (q, b) in zip(before, after))
    with pytest.raises(ArtifactError, match=r"set AugConfig\(batch_size=8, epochs<=2\)"):
        fkd.check_fits(AugConfig(epochs=2, batch_size=16), 20)
    with pytest.raises(ArtifactError, match=r"are for 20 images \(3 batches of 8\), not 21"):
        FKDLabels(tmp_path / "whole", num_images=21)


def test_fkd_files_that_do_not_fit_are_named(official, tiny_teacher, tmp_path):
    images = load_image_folder(official[0], progress=False)[0]
    write_official_fkd(tmp_path / "l", images, tiny_teacher[0].eval(), epochs=1, batch_size=8, scale=(1.0, 1.0))
    with pytest.raises(ArtifactError, match="no epoch_<e>/ folders"):
        FKDLabels(tmp_path)
    blob = torch.load(tmp_path / "l" / "epoch_0" / "batch_1.tar", weights_only=False)
    torch.save(blob[:5], tmp_path / "l" / "epoch_0" / "batch_1.tar")
    with pytest.raises(ArtifactError, match="expected the list .*got list of 5"):
        FKDLabels(tmp_path / "l").epoch(0)
    blob[2] = torch.zeros(8, dtype=torch.long)
    torch.save(blob, tmp_path / "l" / "epoch_0" / "batch_1.tar")
    with pytest.raises(ArtifactError, match="mix_index is not a permutation"):
        FKDLabels(tmp_path / "l").epoch(0)
    (tmp_path / "l" / "epoch_0" / "batch_1.tar").write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError, match="batch_1.tar cannot be read: it is .*damaged"):
        FKDLabels(tmp_path / "l").epoch(0)
    torch.save([argparse.Namespace(a=1)], tmp_path / "l" / "epoch_0" / "batch_1.tar")  # pickled objects, not weights
    with pytest.raises(ArtifactError, match="batch_1.tar cannot be read: it is not a cda file") as err:
        FKDLabels(tmp_path / "l").epoch(0)
    assert "weights_only" not in str(err.value)  # never torch's advice to load it unsafely


def test_students_train_on_official_fkd_labels_matched_to_their_images(official, tiny_teacher, tmp_path):
    """Training from the FKD files gives the same student as training on the same views with the
    teacher's logits recomputed from cda's own rebuilt inputs: every stored label reaches its view."""
    images, labels = load_image_folder(official[0], progress=False)
    teacher = copy.deepcopy(tiny_teacher[0]).eval()
    write_official_fkd(tmp_path / "fkd", images, teacher, epochs=3, batch_size=8, scale=(1.0, 1.0))
    fkd = FKDLabels(tmp_path / "fkd")

    class Recomputed:
        def check_fits(self, aug, n):
            fkd.check_fits(aug, n)

        def epoch(self, e):
            with torch.no_grad():
                return [(plan, teacher(batch_inputs(images, plan, INFO)).half()) for plan, _ in fkd.epoch(e)]

    cfg = EvalConfig(arch="convnet3_w8", labels="stored", aug=AugConfig(epochs=3, batch_size=8))
    d = Distilled(images, labels)
    a = train_student(d, INFO, cfg, stored=fkd, progress=False)
    b = train_student(d, INFO, cfg, stored=Recomputed(), progress=False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(x.float(), y.float(), atol=1e-4, rtol=1e-4)
    out = cda.evaluate_images(images, labels, TINY, fkd_labels=tmp_path / "fkd", cfg=cfg, progress=False)
    assert out["labels"] == "stored" and out["ipc"] == 2 and 0 <= out["top1"] <= out["top5"] <= 100
    with pytest.raises(ArtifactError, match="batch_size=8"):
        cda.evaluate_images(images, labels, TINY, fkd_labels=tmp_path / "fkd", cfg=SMALL, progress=False)


def test_evaluate_images_matches_cdas_protocol_and_references(tiny_data, tiny_teacher):
    """Soft labels from a teacher (module or checkpoint) train the same students as cda.student; IOR
    and HLR are DD-Ranking's differences, in fractions; a random real subset is 0 better than itself."""
    train, test = tiny_data
    d = real_subset(train, 3, seed=0)
    expected = evaluate(d, test, SMALL, tiny_teacher[0], progress=False)
    out = cda.evaluate_images(d.images, d.labels, TINY, tiny_teacher[2], cfg=SMALL, random_real="compute",
                              full_data=80.0, progress=False)
    assert out["labels"] == "online" and out["ipc"] == 3
    assert out["top1"] == expected["top1"] and out["top5"] == expected["top5"]
    assert out["random_real_top1"] == out["top1"] and out["ior"] == 0.0  # seed 0 draws this very subset
    hard = evaluate(d, test, replace(SMALL, labels="hard"), progress=False)["top1"]
    assert out["hard_top1"] == hard and out["hlr"] == pytest.approx((80.0 - hard) / 100)
    assert out["lrs"] == pytest.approx((np.exp(-out["hlr"] / 2) - np.exp(-1)) / (np.e - np.exp(-1)))  # DD-Ranking's LRS
    # Float pixels, and normalized floats, are the same images.
    floats = cda.evaluate_images(d.images.float() / 255, d.labels, TINY, tiny_teacher[0], cfg=SMALL, progress=False)
    normed = cda.evaluate_images(INFO.normalize(d.images), d.labels, TINY, tiny_teacher[0], cfg=SMALL,
                                 normalized=True, progress=False)
    assert floats["top1"] == normed["top1"] == out["top1"]


def test_evaluate_images_hard_labels_and_computed_full_data(tiny_data):
    train, _ = tiny_data
    d = real_subset(train, 2, seed=1)
    out = cda.evaluate_images(d.images, d.labels, TINY, cfg=SMALL, seeds=(0, 1), random_real=25.0,
                              full_data="compute", full_data_recipe=SqueezeConfig(arch="convnet3_w8", epochs=2,
                                                                                  batch_size=32), progress=False)
    assert out["labels"] == "hard" and [r["seed"] for r in out["runs"]] == [0, 1]
    assert out["hard_top1"] == out["top1"] == pytest.approx(np.mean([r["top1"] for r in out["runs"]]))
    assert out["ior"] == pytest.approx((out["top1"] - 25.0) / 100)
    assert 10 < out["full_data_top1"] <= 100 and out["hlr"] == pytest.approx((out["full_data_top1"] - out["top1"]) / 100)
    assert -1 <= out["ior"] <= 1 and -1 <= out["hlr"] <= 1 and 0 < out["lrs"] < 1


def test_evaluate_images_refuses_bad_input(tiny_data):
    d = real_subset(tiny_data[0], 1)
    with pytest.raises(ValueError, match="fashion_mnist is 1x28x28"):
        cda.evaluate_images(d.images.repeat(1, 3, 1, 1), d.labels, TINY, progress=False)
    with pytest.raises(ValueError, match="pass normalized=True"):
        cda.evaluate_images(INFO.normalize(d.images), d.labels, TINY, progress=False)
    with pytest.raises(ValueError, match="classes 0..9"):
        cda.evaluate_images(d.images, d.labels + 5, TINY, progress=False)
    with pytest.raises(ValueError, match="random_real=140: give a top-1 accuracy in percent"):
        cda.evaluate_images(d.images, d.labels, TINY, random_real=140, progress=False)
    with pytest.raises(ValueError, match="1 to 2 per class"):
        keep = torch.cat([torch.arange(len(d.labels)), torch.tensor([0])])
        cda.evaluate_images(d.images[keep], d.labels[keep], TINY, random_real="compute", progress=False)
