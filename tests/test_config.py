import pytest

from cda.config import (
    AugConfig,
    ConfigError,
    CurriculumConfig,
    RecoverConfig,
    RunConfig,
    apply_overrides,
    config_hash,
    from_dict,
    parse_override,
    preset,
    to_dict,
)
from cda.methods import check_run, recover_for


def test_round_trip_and_hash_are_stable():
    cfg = preset("cpu")
    again = from_dict(RunConfig, to_dict(cfg))
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(apply_overrides(cfg, {"recover.lr": 0.2})) != config_hash(cfg)


def test_options_added_later_keep_old_hashes_at_their_defaults():
    from dataclasses import fields, replace

    from cda.config import EvalConfig, RelabelConfig, _hashed

    def added_to(cls):
        return {f.name for f in fields(cls) if "hash_default" in f.metadata}

    assert {"split", "loss", "val_every"} <= added_to(EvalConfig)
    assert {"label_epochs", "amp"} <= added_to(RelabelConfig)
    cfg = preset("cpu")
    # Cached artifacts were keyed without these fields: at their defaults they are left out ...
    assert not added_to(EvalConfig) & set(_hashed(cfg.eval))
    assert not added_to(RelabelConfig) & set(_hashed(RelabelConfig()))
    assert set(_hashed(cfg.eval)) == set(to_dict(cfg.eval)) - added_to(EvalConfig)
    # ... and any other value changes the key.
    assert config_hash(replace(cfg.eval, split="val")) != config_hash(cfg.eval)
    assert config_hash(RelabelConfig(label_epochs=3)) != config_hash(RelabelConfig())


def test_overrides_are_typed_and_validated():
    cfg = apply_overrides(preset("smoke"), dict([parse_override("recover.iterations=7"),
                                                 parse_override("ipcs=[1, 3]")]))
    assert cfg.recover.iterations == 7 and cfg.ipcs == (1, 3)
    with pytest.raises(ConfigError, match="no field 'nope'"):
        apply_overrides(cfg, {"recover.nope": 1})
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(cfg, {"recover.iterations": "many"})


@pytest.mark.parametrize("make, message", [
    (lambda: RecoverConfig(ipc=0), "ipc=0: must be positive"),
    (lambda: RecoverConfig(iterations=-5), "iterations=-5: must be positive"),
    (lambda: AugConfig(epochs=0), "epochs=0: must be positive"),
    (lambda: AugConfig(crop_scale=(0.0, 1.0)), r"crop scales must lie in \(0, 1\]"),
    (lambda: AugConfig(crop_scale=(0.9, 0.5)), "must not exceed"),
    (lambda: CurriculumConfig(schedule="exp"), "choose one of"),
    (lambda: CurriculumConfig(milestone=1.5), r"must lie in \[0, 1\]"),
    (lambda: RunConfig(ipcs=(0,)), "must be positive"),
    (lambda: check_run(RunConfig(methods=("magic",))), "unknown"),
])
def test_bad_values_are_named(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_temperature_must_be_positive():
    from cda.config import EvalConfig

    with pytest.raises(ConfigError, match="temperature=0"):
        EvalConfig(temperature=0)


def test_method_configs():
    cfg = preset("cpu")
    assert recover_for(cfg, "sre2l", 10).curriculum.schedule == "none"
    cda = recover_for(cfg, "cda", 50)
    assert cda.curriculum.schedule == "cosine" and cda.ipc == 50


def test_the_curriculum_is_still_read_under_its_old_name_cda():
    cfg = apply_overrides(preset("smoke"), {"cda.milestone": 0.5})  # an override written before the rename
    assert cfg.curriculum.milestone == 0.5 and not hasattr(cfg, "cda")
    old = to_dict(preset("smoke"))
    old["cda"] = dict(old.pop("curriculum"), schedule="linear")  # a config saved before the rename
    assert from_dict(RunConfig, old).curriculum.schedule == "linear"
    with pytest.raises(ConfigError, match="no field 'nope'"):
        apply_overrides(preset("smoke"), {"cda.nope": 1})
