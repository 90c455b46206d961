"""The papers' own settings end to end: `cda run --preset paper` on a small ImageNet-shaped stand-in
(224-px JPEG ImageFolder), every method (CUDD included), stored FKD labels, ResNet-18, on the CPU,
with a tiny budget (a few iterations, one epoch)."""
import json

import pandas as pd
import pytest
import torch

from cda.cli import main
from cda.recover import Distilled
from cda.standin import make_standin

pytestmark = pytest.mark.slow
METHODS = ("random", "sre2l", "cda", "cudd")


def test_paper_preset_runs_every_method_on_a_224px_standin(tmp_path):
    root, out, cache = tmp_path / "standin", tmp_path / "out", tmp_path / "cache"
    make_standin(root, classes=4, size=224, train_per_class=6, val_per_class=2, progress=False)
    sets = ["data.name=imagefolder", f"data.root={root}", "data.workers=0", "squeeze.pretrained=null",
            "squeeze.epochs=1", "squeeze.batch_size=8", "recover.iterations=2", "eval.aug.epochs=1",
            "eval.aug.batch_size=8", "method_eval=[[cda,aug.batch_size,8],[cudd,aug.batch_size,8]]", "students=[resnet18]",
            "cudd.student_epochs=1", "cudd.student.aug.batch_size=8", "ipcs=[2]",
            f"methods=[{','.join(METHODS)}]", f"cache_dir={cache}", f"out_dir={out}"]
    code = main(["run", "--preset", "paper", "--device", "cpu", "--no-progress",
                 *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    df = pd.read_csv(out / "results.csv")
    top1 = df[df.metric == "top1"]
    assert set(top1.method) == {"teacher", *METHODS}
    assert set(top1[top1.method != "teacher"].student) == {"resnet18"}
    assert set(top1[top1.method != "teacher"].labels) == {"stored"}
    assert top1.value.between(0, 100).all()
    prov = json.loads((out / "results.json").read_text())
    assert prov["config"]["recover"]["jitter"] == 32 and prov["config"]["recover"]["amp"] is False
    assert (out / "table.md").is_file() and (out / "distilled_images.png").is_file()
    # every distilled set: 2 images per class, 224 px RGB, saved as a tensor and an ImageFolder of PNGs
    made = {json.loads((f / "meta.json").read_text())["method"]: f for f in (cache / "distilled").iterdir()
            if (f / "done.json").is_file()}
    assert set(made) == {"sre2l", "cda", "cudd"}
    for _method, folder in made.items():
        d = Distilled.load(folder)
        assert d.images.shape == (8, 3, 224, 224) and d.images.dtype == torch.uint8
        assert torch.equal(d.labels, torch.arange(4).repeat_interleave(2))
        assert len(list((folder / "images").rglob("*.png"))) == 8
        assert not list(folder.glob("*progress*")) and not list(folder.glob("step-*"))  # no checkpoint left
    assert len(made["cudd"].joinpath("meta.json").read_text()) and \
        json.loads((made["cudd"] / "meta.json").read_text())["cudd"]["stages"] == [1, 2]
    # stored FKD labels: one epoch file per set that was relabeled (random real, SRe2L, CDA, CUDD)
    labels = [f for f in (cache / "labels").iterdir() if (f / "done.json").is_file()]
    assert len(labels) == 4 and all(len(list(f.glob("epoch_*.pt"))) == 1 for f in labels)
