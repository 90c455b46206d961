"""The speed settings (layout, CPU precision, compilation) live in the runtime, not in the stages'
configs; a non-default one still names what it computes (cda.cache.stamped), and saved configs and
overrides that name the old place are mapped onto the runtime."""
from dataclasses import fields

import pytest

from cda.cache import Cache, stamped
from cda.config import (
    ConfigError,
    CuddConfig,
    EvalConfig,
    RecoverConfig,
    RunConfig,
    SqueezeConfig,
    _hashed,
    apply_overrides,
    config_hash,
    from_dict,
    preset,
    to_dict,
)
from cda.runtime import Speed, Speeds


def test_the_stage_configs_hold_no_speed_settings():
    for cls in (SqueezeConfig, RecoverConfig, EvalConfig):
        assert not {"channels_last", "amp_cpu", "compile"} & {f.name for f in fields(cls)}, cls.__name__


def test_a_non_default_speed_is_in_the_key_as_it_was_in_the_config():
    r = RecoverConfig(ipc=3)
    # the payload the field made when it sat in RecoverConfig: the hashed dict plus the key
    before = config_hash({**_hashed(r), "channels_last": True})
    assert config_hash(stamped(r, Speeds(recover=Speed(channels_last=True)))) == before
    assert config_hash(stamped(r, Speeds())) == config_hash(r), "default speeds leave the key as it is"
    assert config_hash(stamped(r, Speeds(student=Speed(amp_cpu=True)))) == config_hash(r), "another stage's"
    cudd = preset("smoke").cudd_for(2)
    fast = Speeds(student=Speed(channels_last=True))
    assert stamped(cudd, fast)["student"]["channels_last"] is True, "CUDD's students take the run's student's"
    assert "channels_last" not in stamped(cudd, fast)["recover"]
    cache = Cache("/nonexistent")
    assert (Cache("/nonexistent", speeds=fast).folder("evaluation", EvalConfig()) !=
            cache.folder("evaluation", EvalConfig()))


def test_old_saved_configs_and_overrides_map_onto_the_runtime():
    old = to_dict(preset("smoke"))
    old["recover"]["channels_last"], old["eval"]["compile"], old["squeeze"]["amp_cpu"] = True, True, False
    cfg = from_dict(RunConfig, old)
    assert cfg.speeds == Speeds(recover=Speed(channels_last=True), student=Speed(compile=True))
    over = apply_overrides(preset("smoke"), {"eval.amp_cpu": True, "cudd.recover.channels_last": True})
    assert over.speeds.student == Speed(amp_cpu=True)
    assert over.speeds.of("cudd_recover") == Speed(channels_last=True) and over.speeds.recover == Speed()
    assert apply_overrides(preset("smoke"), {"speeds.teacher.channels_last": True}).speeds.teacher.channels_last
    assert preset("paper").speeds.recover.channels_last and preset("paper").speeds.student.channels_last


def test_only_students_compile():
    with pytest.raises(ConfigError, match="only students are compiled"):
        apply_overrides(preset("smoke"), {"recover.compile": True})
    assert CuddConfig().recover is None


def test_the_workspace_resolves_its_runtime_before_any_key(tmp_path, monkeypatch):
    from cda import speed
    from cda.pipeline import Workspace

    monkeypatch.setattr(speed, "choose", lambda task, *a, **k: {"channels_last": True, "amp_cpu": False,
                                                                 "compile": task == "train"})
    ws = Workspace(preset("smoke", speed="auto", cache_dir=str(tmp_path)), progress=False, log=lambda _: None)
    cfg = ws.cfg
    assert ws.cache.speeds == ws.runtime.speeds == cfg.speeds and cfg.speeds.recover == Speed(channels_last=True)
    assert cfg.recover == preset("smoke").recover, "the stage configs are as written"
    plain = Cache(tmp_path, speeds=preset("smoke").speeds)
    assert ws.cache.folder("distilled", cfg.recover) != plain.folder("distilled", cfg.recover)
    assert ws.cache.folder("distilled", cfg.recover) == plain.folder("distilled", stamped(cfg.recover, cfg.speeds))
