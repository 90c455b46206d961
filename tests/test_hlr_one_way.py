"""HLR is computed one way: cda.evaluator's full-data reference is the pipeline's (the teacher recipe
on the student's arch under the next seed, cda.config.full_data_recipe), so a set gets the same HLR
from evaluate_images as from the studies' Workspace path."""
from dataclasses import replace

import pytest

from cda.config import SqueezeConfig, full_data_recipe, preset
from cda.ddranking import hard_label_recovery
from cda.evaluator import evaluate_images
from cda.pipeline import Workspace


def test_one_definition_of_the_full_data_reference():
    cfg = preset("smoke")
    assert cfg.full_data_recipe() == replace(cfg.squeeze, arch=cfg.eval.arch, seed=cfg.squeeze.seed + 1)
    assert full_data_recipe(SqueezeConfig(pretrained="IMAGENET1K_V1"), "resnet18").pretrained is None


@pytest.mark.slow
def test_the_evaluator_and_the_studies_give_the_same_hlr(tmp_path):
    cfg = preset("smoke", cache_dir=str(tmp_path), ipcs=(1,), methods=("random",))
    ws = Workspace(cfg, progress=False, log=lambda _: None)
    hard = replace(cfg.eval, labels="hard")
    d = ws.distilled("random", 1)
    full = ws.full_data()["top1"]
    studies = hard_label_recovery(full, ws.evaluation("random", 1, hard)["top1"])
    out = evaluate_images(d.images, d.labels, ws.cfg.data, cfg=hard, seeds=(hard.seed,), full_data="compute",
                          full_data_recipe=cfg.squeeze, progress=False)
    assert out["full_data_top1"] == full, "the same full-data model"
    assert out["hlr"] == studies
