"""The cifar10 and cifar100 presets (SRe2L's small-data scripts) end to end on a stand-in of CIFAR's
shape, written in torchvision's pickle layout (cifar-10-batches-py / cifar-100-python)."""
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from torchvision.datasets import cifar

from cda.cli import main
from cda.config import preset
from cda.data import load_split
from cda.methods import recover_for


def write_cifar(root, classes: int, per_class: int, seed: int = 0) -> None:
    """Random 32-px images in torchvision's CIFAR layout (the files torchvision reads, not the real data)."""
    rng = np.random.default_rng(seed)
    ten = classes == 10
    folder = root / ("cifar-10-batches-py" if ten else "cifar-100-python")
    folder.mkdir(parents=True)
    key = "labels" if ten else "fine_labels"

    def batch(name, n_per_class):
        labels = np.repeat(np.arange(classes), n_per_class)
        data = rng.integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels.tolist()}, f)

    if ten:
        for i in range(1, 6):
            batch(f"data_batch_{i}", per_class)
        batch("test_batch", per_class)
        meta = ("batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    else:
        batch("train", per_class)
        batch("test", per_class)
        meta = ("meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    with open(folder / meta[0], "wb") as f:
        pickle.dump(meta[1], f)


@pytest.fixture
def no_md5(monkeypatch):
    # torchvision checks the real files' md5 sums; the stand-in has the layout, not the bytes
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_the_preset_reads_torchvisions_layout(tmp_path, no_md5, name, classes):
    write_cifar(tmp_path, classes, per_class=1)
    cfg = preset(name, **{"data.root": str(tmp_path)})
    train = load_split(cfg.data, train=True)
    assert train.info.num_classes == classes and tuple(train.images.shape[1:]) == (3, 32, 32)
    assert len(train) == classes * (5 if classes == 10 else 1)
    r = recover_for(cfg, "sre2l", 50)
    assert r.classes_per_group * r.bn_groups == 100  # the official batch of 100 images


@pytest.mark.slow
@pytest.mark.parametrize("name,classes", [("cifar10", 10)])  # cifar100's recipe is the same but for the data
def test_the_preset_runs_every_method_on_a_stand_in(tmp_path, no_md5, name, classes):
    write_cifar(tmp_path / "data", classes, per_class=1)
    out = tmp_path / "out"
    sets = [f"data.root={tmp_path / 'data'}", "squeeze.epochs=1", "recover.iterations=2", "eval.aug.epochs=1",
            "cudd.student_epochs=1", "cudd.student.aug.epochs=1", "ipcs=[1]", "methods=[random,sre2l,cda,cudd]",
            f"cache_dir={tmp_path / 'cache'}", f"out_dir={out}"]
    code = main(["run", "--preset", name, "--device", "cpu", "--no-progress", *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    df = pd.read_csv(out / "results.csv")
    top1 = df[df.metric == "top1"]
    assert set(top1.method) == {"teacher", "random", "sre2l", "cda", "cudd"}
    assert set(top1[top1.method != "teacher"].student) == {"resnet18_modified"}
    assert set(top1[top1.method != "teacher"].labels) == {"online"}
