"""The second student protocol (cda.config.protocols): what it changes in a preset, that everything
upstream of the students keeps its cache key, where its results go, and the command line's --protocol."""
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from cda.config import ConfigError, preset
from cda.config.protocols import PLAIN_KD, PROTOCOLS, TUNED, get_protocol, protocol_of
from cda.paths import run_tag

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cache_keys  # noqa: E402  (tests/cache_keys.py: every artifact's key from a config)


@pytest.mark.parametrize("name", ["cpu", "digits", "smoke"])
def test_the_protocol_sets_the_recipe_and_keeps_architecture_budget_labels_and_flips(name):
    tuned, kd = preset(name), preset(name, protocol="kd")
    e, k = tuned.eval, kd.eval
    assert (k.temperature, k.t2_scale, k.optimizer, k.lr, k.weight_decay, k.warmup_epochs) == (4.0, True, "adamw", 1e-3,
                                                                                              0.01, 0)
    assert (k.aug.mix, k.aug.crop_scale) == ("none", (0.5, 1.0))
    assert (k.arch, k.labels, k.aug.epochs, k.aug.batch_size, k.aug.flip) == (e.arch, e.labels, e.aug.epochs,
                                                                             e.aug.batch_size, e.aug.flip)
    assert k != e, "the tuned recipes differ from plain KD in at least one knob"
    assert replace(kd, eval=e, cudd=tuned.cudd) == tuned  # nothing but the students (and CUDD's pin) moves
    assert kd.cudd.student == e  # CUDD's curriculum students keep the tuned recipe
    # other overrides apply on top of the protocol
    assert preset(name, protocol="kd", **{"eval.lr": 0.5}).eval.lr == 0.5


def test_the_paper_preset_loses_its_per_method_batches_under_the_protocol():
    assert preset("paper").method_eval and preset("paper", protocol="kd").method_eval == ()


def test_only_the_students_keys_move():
    """Teacher, full-data reference, every distilled set and CUDD's configs are the tuned run's (the cache
    serves them); every student is new."""
    tuned, kd = cache_keys.keys(preset("smoke")), cache_keys.keys(preset("smoke", protocol="kd"))
    assert tuned.keys() == kd.keys()
    moved = {k for k in tuned if tuned[k] != kd[k]}
    assert moved == {k for k in tuned if k.startswith("evaluation ")} and moved
    assert tuned["teacher"] == kd["teacher"] and tuned["full data"] == kd["full data"]


def test_results_of_a_protocol_go_beside_the_presets_own():
    assert run_tag("digits", {"protocol": "kd"}) == "digits-kd"
    assert run_tag("digits", {"protocol": "kd", "eval.lr": 0.1}).startswith("digits-kd-")
    assert run_tag("digits", {"eval.lr": 0.1}) == run_tag("digits", {"eval.lr": 0.1})  # unchanged without one
    assert run_tag("digits") == "digits" and not run_tag("digits", {"eval.lr": 0.1}).startswith("digits-kd")
    assert protocol_of("digits-kd") == "kd" and protocol_of("digits") == TUNED
    assert PROTOCOLS["kd"] is PLAIN_KD and get_protocol("kd").sources
    with pytest.raises(ConfigError, match=r"unknown student protocol 'nope'; choose one of \['kd'\]"):
        preset("smoke", protocol="nope")


def test_the_command_line_takes_protocol(capsys):
    from cda.cli import main

    assert main(["run", "--preset", "smoke", "--protocol", "kd", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "temperature: 4.0" in out and "t2_scale: true" in out and "mix: none" in out
    assert main(["run", "--preset", "smoke", "--protocol", "nope", "--print-config"]) == 2
    assert "unknown student protocol 'nope'" in capsys.readouterr().err
