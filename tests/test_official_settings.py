"""Every preset is held to results/paper/official_settings.csv: each field that changes a result
equals the official value read from its source, or its row says why not."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cda import config, official_settings
from cda.config import preset
from cda.methods import check_run

ROOT = Path(__file__).resolve().parents[1]

# The fields each (preset, method) must have a row for: the student recipe and the tables' cells for
# every method, recovery for the methods that synthesize, the curriculum for CDA, the stages for CUDD.
EVERY = ("squeeze.arch", "ipcs", "students", "eval.aug.batch_size", "eval.aug.epochs", "eval.labels", "eval.amp")
SYNTH = ("recover.lr", "recover.iterations")
OWN = {"cda": ("recover.curriculum.schedule",), "cudd": ("cudd.stage_fractions",)}
STUDENT = ("eval.optimizer", "eval.lr", "eval.weight_decay", "eval.temperature", "eval.t2_scale", "eval.aug.mix",
           "eval.aug.flip")  # where an official student script exists (not imagenet21k, not random at paper)


@pytest.fixture(scope="module")
def table():
    return official_settings.read()


def test_every_preset_matches_the_official_settings_or_names_its_departure(table):
    assert official_settings.problems(table) == []


@pytest.mark.parametrize("name", official_settings.PRESETS)
@pytest.mark.parametrize("method", official_settings.METHODS)
def test_every_preset_and_method_has_rows_for_the_fields_that_change_a_result(table, name, method):
    rows = table[(table.preset == name) & (table.method == method)]
    need = EVERY + (SYNTH if method != "random" else ()) + OWN.get(method, ())
    if name != "imagenet21k" and not (name == "paper" and method == "random"):
        need += STUDENT
    missing = [f for f in need if f not in set(rows.field)]
    assert not missing, f"{name}/{method}: no row for {missing}"
    assert not rows.duplicated(["field"]).any(), rows[rows.duplicated(["field"], keep=False)]
    # a row either cites its source or says in `departure` that none was found
    assert ((rows.source != "") | (rows.departure != "")).all()


def test_a_preset_field_changed_without_a_row_saying_why_fails(table, monkeypatch):
    original = config.PRESETS["paper"]
    monkeypatch.setitem(config.PRESETS, "paper",
                        lambda: replace(original(), recover=replace(original().recover, lr=0.1)))
    found = official_settings.problems(table)
    assert any(p.startswith("paper/cda/recover.lr:") and "no departure says why" in p for p in found), found
    assert all(p.startswith("paper/") for p in found)
    # the same change with the csv updated but no departure named still fails
    fixed = table.copy()
    fixed.loc[(fixed.preset == "paper") & (fixed.field == "recover.lr"), "cda"] = "0.1"
    found = official_settings.problems(fixed)
    assert any("paper/sre2l/recover.lr" in p and "no departure says why" in p for p in found), found
    # and with a departure named it holds
    fixed.loc[(fixed.preset == "paper") & (fixed.field == "recover.lr"), "departure"] = "a test's reason"
    assert official_settings.problems(fixed) == []


def test_cdas_batch_changed_back_to_sre2ls_fails(table, monkeypatch):
    original = config.PRESETS["paper"]
    monkeypatch.setitem(config.PRESETS, "paper", lambda: replace(original(), method_eval=()))
    found = official_settings.problems(table)
    assert any(p.startswith("paper/cda/eval.aug.batch_size") for p in found), found
    assert any(p.startswith("paper/cudd/relabel.aug.batch_size") for p in found), found


def test_a_departure_that_no_longer_departs_is_flagged(table):
    t = table.copy()
    row = (t.preset == "paper") & (t.method == "sre2l") & (t.field == "eval.aug.batch_size")
    t.loc[row, "departure"] = "stale reason"
    assert any("names a departure" in p for p in official_settings.problems(t))


def test_each_method_trains_its_own_papers_students_on_labels_made_at_that_batch():
    cfg = preset("paper")
    assert cfg.eval_for("sre2l").aug.batch_size == 1024
    for method in ("cda", "cudd"):
        e = cfg.eval_for(method)
        assert e.aug.batch_size == 128 and cfg.relabel_for(e).aug.batch_size == 128
        assert e.labels == "stored" and e.aug.epochs == 300
    assert 200 in cfg.ipcs and "resnet101" in cfg.students
    tiny = preset("tiny_imagenet")
    assert tiny.students == ("resnet18_modified", "resnet50_modified", "resnet101_modified")
    assert tiny.data.test_crop_ratio == 1.0 and tiny.eval.warmup_epochs == 5


def test_method_eval_rejects_unknown_methods_and_fields():
    with pytest.raises(config.ConfigError, match="method_eval"):
        check_run(replace(preset("smoke"), method_eval=(("nope", "aug.batch_size", 8),)))
    with pytest.raises(config.ConfigError, match="no field"):
        replace(preset("smoke"), method_eval=(("cda", "aug.batchsize", 8),))


def test_tiny_imagenets_test_view_is_the_plain_image(tmp_path):
    from PIL import Image

    from cda.data import FolderSplit, dataset_info

    pixels = torch.randint(0, 256, (64, 64, 3), dtype=torch.uint8)
    (tmp_path / "n0").mkdir()
    Image.fromarray(pixels.numpy()).save(tmp_path / "n0" / "a.png")
    info = dataset_info("tiny_imagenet")
    plain = FolderSplit(tmp_path, info, train=False, workers=0, test_crop_ratio=1.0).take([0])[0]
    assert torch.equal(plain, pixels.permute(2, 0, 1))
    cropped = FolderSplit(tmp_path, info, train=False, workers=0).take([0])[0]  # Resize(73) + CenterCrop(64)
    assert cropped.shape == plain.shape and not torch.equal(cropped, plain)


def test_the_departures_table_is_generated_from_the_file():
    from cda import paper_numbers

    page = (ROOT / "docs" / "presets.md").read_text()  # the site's presets page (once the README's)
    assert "<!-- paper:departures -->" in page
    assert paper_numbers.render(page) == page, "docs/presets.md is stale: run scripts/readme_numbers.py"
    assert "| paper: sre2l | `code:eval.accumulation` | 2 | 1 |" in page
