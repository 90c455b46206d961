"""Issue 28's student studies: students without BatchNorm (CDA Table 20) and transformer/MLP students
(CDA Table 15, CUDD's timm students). Their students' normalization and family are read right, their
claims compare what they say, and both studies run at the smoke preset with fewer seeds for the slow
students when asked."""
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from cda import studies
from cda.models import create_model
from cda.studies.cda_students_without_bn import gap_table, no_bn_students, norm_of
from cda.studies.cda_transformer_students import PAPER_STUDENTS, family, transformer_students
from cda.verdicts import claim_rows

INFO = SimpleNamespace(num_classes=10, channels=1, image_size=28)


@pytest.mark.parametrize("arch, norm", [("convnet3_w8", "batch"), ("convnet3_w8_in", "instance"),
                                        ("convnet3_w8_none", "none"), ("vit_p4_d1_w32", "layer"),
                                        ("mixer_p4_d1_w32", "layer"), ("resmlp_p4_d1_w32", "none"),
                                        ("resnet18_modified", "batch")])
def test_a_students_normalization_is_read_from_the_model(arch, norm):
    assert norm_of(arch, INFO) == norm


def test_small_mlp_students_take_any_patch_that_divides_the_image():
    for name in ("mixer_p4_d1_w32", "resmlp_p2_d1_w16"):
        for size in (8, 28):
            out = create_model(name, 10, 1, size)(torch.randn(2, 1, size, size))
            assert out.shape == (2, 10)
    resmlp = create_model("resmlp_p4_d1_w32", 10, 1, 28)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in resmlp.modules())  # affine only, as ResMLP
    with pytest.raises(ValueError, match="mixer_p3: the patch size must divide the image size 28"):
        create_model("mixer_p3_d1_w32", 10, 1, 28)


def test_families_and_default_students_by_image_size():
    assert [family(a) for a in ("convnet3", "vit_p4_d4_w128", "timm/deit_tiny_patch16_224", "mixer_p4_d4_w128",
                                "timm/resmlp_24_224", "resnet18")] == \
        ["convnet", "transformer", "transformer", "mlp", "mlp", "other"]

    def ctx(name, size, arch="convnet3", data="fashion_mnist"):
        cfg = SimpleNamespace(eval=SimpleNamespace(arch=arch), data=SimpleNamespace(name=data))
        return SimpleNamespace(preset=name, cfg=cfg, ws=SimpleNamespace(info=SimpleNamespace(image_size=size)))

    assert transformer_students(ctx("paper", 224)) == PAPER_STUDENTS  # the timm names where 16-px patches fit
    assert transformer_students(ctx("cpu", 28)) == ("vit_p4_d4_w128", "mixer_p4_d4_w128", "resmlp_p4_d4_w128")
    assert transformer_students(ctx("smoke", 28))[0] == "vit_p4_d1_w32"
    assert no_bn_students(ctx("cpu", 28)) == ("convnet3_in", "convnet3_none", "vit_p4_d4_w128")
    assert no_bn_students(ctx("paper", 224, "resnet18", "imagenet1k")) == ("alexnet", "timm/deit_base_patch16_224")
    with pytest.raises(ValueError, match="'resnet18' is no ConvNet.*pass `students`"):
        no_bn_students(ctx("cpu", 28, "resnet18"))


def _results(gains: dict[str, float], cda_minus_sre2l: float = 1.0) -> pd.DataFrame:
    """top1 rows: random real at 50 + seed, each recovered set `gains[norm]` above it (CDA one point
    more than SRe2L), three seeds, with a per-seed wobble."""
    rows = []
    for norm, gain in gains.items():
        for seed, wobble in enumerate((0.2, -0.1, -0.1)):
            for method, value in (("random", 50 + seed), ("sre2l", 50 + seed + gain + wobble),
                                  ("cda", 50 + seed + gain + wobble + cda_minus_sre2l)):
                rows.append(dict(dataset="fashion_mnist", method=method, ipc=10, teacher="convnet3",
                                 student=f"s_{norm}", labels="online", seed=seed, metric="top1", value=value,
                                 norm=norm))
    return pd.DataFrame(rows)


def test_the_no_bn_claims_compare_what_they_say():
    a, b = studies.get("cda_students_without_bn").claims
    df = _results({"batch": 10.0, "instance": 4.0, "none": 12.0})
    # (a) CDA - SRe2L on the students without BatchNorm only
    rows = claim_rows(a, df)
    assert {r["cell"] for r in rows} == {"ipc=10, student=s_instance", "ipc=10, student=s_none"}
    assert all(r["difference"] == pytest.approx(1.0) and r["verdict"] == "holds" for r in rows)
    # (b) the gain over random real images at the BatchNorm student minus without it: it shrinks with
    # instance norm here (+6 points, holds) and grows with no norm (-2, does not hold)
    rows = {r["cell"]: r for r in claim_rows(b, df)}
    shrink = rows["ipc=10, norm=instance, vs method=sre2l, change from norm=batch"]
    grow = rows["ipc=10, norm=none, vs method=cda, change from norm=batch"]
    assert shrink["difference"] == pytest.approx(6.0) and shrink["verdict"] == "holds"
    assert grow["difference"] == pytest.approx(-2.0) and grow["verdict"] == "does not hold"
    assert len(rows) == 4  # two norms x two recovered sets; the BatchNorm reference is no cell
    assert "ours" in b.source and b.paper_ref is None and a.paper_ref is None


def test_the_gap_table_pairs_seeds_and_counts_them():
    table = gap_table(_results({"batch": 10.0, "none": 4.0}), "random")
    assert list(table.columns) == ["sre2l − random", "cda − random", "cda − sre2l", "seeds"]
    assert table.loc["s_none (none)", "cda − random"] == pytest.approx(5.0)
    assert table.loc["s_batch (batch)", "cda − sre2l"] == pytest.approx(1.0)
    assert (table["seeds"] == 3).all()


@pytest.mark.slow
def test_both_studies_run_at_smoke_with_fewer_seeds_for_the_slow_students(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_CACHE_DIR", str(tmp_path / "cache"))
    overrides = {"ipcs": [1], "eval_seeds": [0, 1], "squeeze.epochs": 1, "eval.aug.epochs": 1, "full_data": False,
                 "data.train_per_class": 10, "data.test_per_class": 5}
    quiet = dict(root=tmp_path, progress=False, log=lambda m: None)
    nobn = studies.run("cda_students_without_bn", "smoke", overrides, slow_seeds=1, **quiet).df
    top = nobn[nobn.metric == "top1"]
    seeds = top.groupby("student").seed.nunique().to_dict()
    assert seeds == {"convnet3_w16": 2, "convnet3_w16_in": 2, "convnet3_w16_none": 2, "vit_p4_d1_w32": 1}
    assert top.groupby("student").norm.first().to_dict() == {
        "convnet3_w16": "batch", "convnet3_w16_in": "instance", "convnet3_w16_none": "none", "vit_p4_d1_w32": "layer"}
    assert set(top.method) == {"random", "sre2l", "cda"} and top.value.between(0, 100).all()
    assert len(studies.tables("cda_students_without_bn", nobn, tmp_path)) == 3

    built = len(list((tmp_path / "cache" / "evaluation").glob("*/done.json")))
    mlp = studies.run("cda_transformer_students", "smoke", overrides, slow_seeds=1, **quiet).df
    top = mlp[mlp.metric == "top1"]
    assert top.groupby("student").family.first().to_dict() == {
        "convnet3_w16": "convnet", "vit_p4_d1_w32": "transformer", "mixer_p4_d1_w32": "mlp", "resmlp_p4_d1_w32": "mlp"}
    # the ConvNet's and the ViT's cells come from the first study's cache: only Mixer and ResMLP train
    assert len(list((tmp_path / "cache" / "evaluation").glob("*/done.json"))) == built + 2 * 3


def test_the_notebooks_quote_measured_seconds_per_student():
    from cda.studies.cda_students_without_bn import student_seconds

    text = student_seconds(("convnet3", "no_such_student"))
    assert text.startswith("`convnet3` ") and text.endswith("`no_such_student` not measured yet")
