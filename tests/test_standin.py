import hashlib
import json

import numpy as np
import pytest
import torch

from cda.config import DataConfig
from cda.data import load_split
from cda.standin import make_standin, palette, standin_classes


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.JPEG")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_tree_layout_size_and_determinism(tmp_path):
    from PIL import Image

    meta = make_standin(tmp_path / "a", classes=23, size=40, train_per_class=2, val_per_class=1, progress=False)
    root = tmp_path / "a"
    train, val = sorted((root / "train").iterdir()), sorted((root / "val").iterdir())
    assert len(train) == len(val) == 23 and [p.name for p in train] == [p.name for p in val]
    assert train[0].name == "0000_tshirt" and train[22].name == "0022_pullover"
    assert all(len(list(p.glob("*.JPEG"))) == 2 for p in train) and all(len(list(p.glob("*.JPEG"))) == 1 for p in val)
    image = Image.open(next(train[5].glob("*.JPEG")))
    assert image.size == (40, 40) and image.mode == "RGB"
    assert json.loads((root / "standin.json").read_text())["classes"] == 23 and meta["bytes"] > 0
    make_standin(tmp_path / "b", classes=23, size=40, train_per_class=2, val_per_class=1, progress=False)
    assert _digest(root) == _digest(tmp_path / "b")
    make_standin(tmp_path / "c", classes=23, size=40, train_per_class=2, val_per_class=1, seed=1, progress=False)
    assert _digest(root) != _digest(tmp_path / "c")
    with pytest.raises(FileExistsError, match="already holds"):
        make_standin(root, classes=23, size=40, progress=False)


def test_colour_pairs_are_distinct_and_spread():
    for n in (20, 200, 1000, 10450):
        specs = standin_classes(n)
        keys = {(c.garment, c.foreground, c.background) for c in specs}
        assert len(keys) == n and all(c.foreground != c.background for c in specs)
    colours = palette(11)  # ImageNet-1K's 100 colour pairs
    gaps = np.linalg.norm(colours[:, None] - colours[None], axis=-1) + np.eye(11) * 9
    assert gaps.min() >= 0.5


def test_it_loads_as_a_paper_dataset_and_its_classes_are_learnable(tmp_path):
    """20 classes at 32 px through cda's folder loader (ImageNet normalization); a nearest-class-mean
    classifier on the pixels, fitted on train/, is far above chance (5%) on val/."""
    make_standin(tmp_path, classes=20, size=32, train_per_class=30, val_per_class=10, progress=False)
    cfg = DataConfig(name="imagefolder", root=str(tmp_path), image_size=32, workers=0)
    train, val = load_split(cfg, train=True), load_split(cfg, train=False)
    assert train.info.num_classes == 20 and train.info.mean == (0.485, 0.456, 0.406)
    xt, yt = train.take(range(len(train))), train.labels  # val-style resize + centre crop (ratio 0.875)
    xv, yv = val.take(range(len(val))), val.labels
    assert xt.shape == (600, 3, 32, 32) and xv.shape == (200, 3, 32, 32)
    means = torch.stack([train.info.normalize(xt[yt == c]).mean(0).flatten() for c in range(20)])
    pred = torch.cdist(train.info.normalize(xv).flatten(1), means).argmin(1)
    accuracy = (pred == yv).float().mean().item()
    assert accuracy > 0.5, accuracy
