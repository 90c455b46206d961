"""The method registry: one entry per method, read by the config, the pipeline and the tables."""
from dataclasses import dataclass

import pytest
import torch

from cda import methods
from cda.config import ConfigError, RecoverConfig, RunConfig, preset
from cda.recover import Distilled


def test_builtin_methods_are_listed_in_table_order():
    assert methods.list_methods()[:5] == ["random", "sre2l", "cda", "cudd", "nearest_mean"]
    assert [methods.label(m) for m in ("random", "sre2l", "cda", "cudd", "full")] == \
        ["Random real", "SRe2L", "CDA", "CUDD", "Full data"]


def test_unknown_method_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match="unknown method 'rded'.*'sre2l'"):
        methods.get("rded")
    with pytest.raises(ConfigError, match=r"unknown \['rded'\]"):
        methods.check_run(RunConfig(methods=("sre2l", "rded")))


def test_each_method_builds_its_options_from_the_run():
    run = preset("cpu")
    sre2l, cda = methods.options_for(run, "sre2l", 10), methods.options_for(run, "cda", 10)
    assert isinstance(sre2l, RecoverConfig) and sre2l.ipc == 10 and sre2l.curriculum.schedule == "none"
    assert cda.curriculum == run.curriculum and cda.lr == sre2l.lr
    assert methods.options_for(run, "cudd", 10).stages == (4, 10)
    assert methods.options_for(run, "random", 10).ipc == 10
    with pytest.raises(ConfigError, match="not recovered from noise"):
        methods.recover_for(run, "cudd", 10)


def test_one_stage_cudd_is_a_config_value_not_a_sentinel():
    from cda.config import CuddConfig, apply_overrides

    run = apply_overrides(preset("cpu"), {"cudd.stage_fractions": [1.0]})
    assert run.cudd_for(10).stages == (10,)
    with pytest.raises(ConfigError, match="ending at 1.0"):
        CuddConfig(stage_fractions=(0.5,))


def test_nearest_mean_picks_the_images_closest_to_their_class_mean(tiny_data):
    train = tiny_data[0]
    d = methods.get("nearest_mean").make(methods.Inputs(None, train), methods.options_for(preset("smoke"), "nearest_mean", 3))
    assert d.images.shape == (30, 1, 28, 28) and torch.equal(d.labels, torch.arange(10).repeat_interleave(3))
    for c in (0, 7):  # brute force over the class
        x = train.images[train.labels == c].float()
        dist = (x - x.mean(0)).flatten(1).pow(2).sum(1)
        best = x[dist.argsort()[:3]]
        assert torch.equal(d.images[d.labels == c].float(), best)


def test_a_new_method_is_one_registration_away_from_the_pipeline(tmp_path, monkeypatch):
    """A method registered anywhere is accepted by the run config and made and cached by the pipeline."""
    from cda.pipeline import Workspace

    @dataclass(frozen=True)
    class FirstImages:
        ipc: int

    made = []

    def make(inputs, o):
        made.append(o)
        split = inputs.train
        idx = torch.cat([torch.nonzero(split.labels == c).flatten()[:o.ipc] for c in range(split.info.num_classes)])
        return Distilled(split.take(idx.numpy()), split.labels[idx].clone())

    monkeypatch.setitem(methods.REGISTRY, "first", methods.Method("first", "First images",
                                                                  lambda run, ipc: FirstImages(ipc), make))
    cfg = preset("smoke", methods=["first"], cache_dir=str(tmp_path))
    ws = Workspace(cfg, progress=False, log=lambda s: None)
    monkeypatch.setattr(ws, "teacher", lambda *a: (None, {}))  # this method needs no teacher
    d = ws.distilled("first", 2)
    again = ws.distilled("first", 2)
    assert len(made) == 1 and torch.equal(d.images, again.images)  # made once, then from the cache
    assert d.meta["method"] == "first" and d.images.shape == (20, 1, 28, 28)
