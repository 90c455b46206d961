"""The cache keys of every artifact a preset's run makes, from its config alone (no data, no compute).

`python tests/cache_keys.py > tests/expectations/cache_keys.json` records them; test_cache_keys.py
compares the current code against the recording, so a refactor that moves any key fails. Each preset
is keyed twice: as written, and with speed="auto" choosing every fast setting (channels_last, bf16 on
the CPU, compile), so the non-default runtime's keys are pinned too. The speed settings live in the
runtime (cda.runtime.Speeds); the cache stamps a stage's non-default ones into its key (cda.cache.stamped).
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from unittest import mock

PRESETS = ("smoke", "cpu", "digits", "paper", "tiny_imagenet", "imagenet21k", "cifar10", "cifar100")
FAST = {"channels_last": True, "amp_cpu": True, "compile": True}


def _options(cfg, method, ipc):
    from cda import methods

    return methods.options_for(cfg, method, ipc)


def _resolve(cfg):
    """`cfg` and its runtime's speed settings as the workspace resolves them under speed="auto"."""
    from cda import speed
    from cda.data import info_for

    with mock.patch.object(speed, "choose", lambda *a, **k: dict(FAST)):
        return cfg, speed.resolve(replace(cfg, speed="auto"), info_for(cfg.data), log=lambda _: None)


def keys(cfg, speeds=None) -> dict[str, str]:
    """{artifact: key} of one run config (and its runtime's speeds, default the config's): teachers,
    sets, slots, labels, students, CUDD's configs."""
    from cda import methods
    from cda.cache import Cache

    speeds = speeds or cfg.speeds
    cache = Cache("/nonexistent", speeds=speeds)  # keys only: nothing is read or written

    def key(kind, *parts):
        return cache.folder(kind, *parts).name

    from cda.cache import stamped
    from cda.config import config_hash

    out = {"teacher": key("teacher", cfg.data, cfg.squeeze),
           "squeeze progress": config_hash(stamped(cfg.squeeze, speeds), cfg.data.name, 0)}
    out["full data"] = key("teacher", cfg.data, cfg.full_data_recipe())
    for ipc in cfg.ipcs:
        out[f"cudd_for {ipc}"] = config_hash(stamped(cfg.cudd_for(ipc), speeds))
        for method in methods.list_methods():
            opts = _options(cfg, method, ipc)
            at = f"{method} ipc{ipc}"
            out[f"distilled {at}"] = key("distilled", cfg.data, cfg.squeeze, opts, [])
            if hasattr(opts, "curriculum"):
                out[f"slots {at}"] = key("slots", cfg.data, cfg.squeeze, replace(opts, ipc=1), [])
            for seed in cfg.eval_seeds:
                for arch in cfg.students or (cfg.eval.arch,):
                    e = replace(cfg.eval_for(method), arch=arch)
                    e, o = cfg.for_seed(seed, e, None if cfg.seed_scope == "student" else opts)
                    source = (cfg.data, cfg.squeeze, method, ipc, o if o is not None else opts, cfg.recover.seed)
                    out[f"evaluation {at} seed{seed} {arch}"] = key("evaluation", *source, e)
                    if e.labels == "stored":
                        out[f"labels {at} seed{seed} {arch}"] = key("labels", *source, cfg.relabel_for(e))
    return out


def all_keys() -> dict[str, dict[str, str]]:
    from cda.config import preset

    out = {}
    for name in PRESETS:
        cfg = preset(name)
        out[name] = keys(cfg)
        out[f"{name} fast"] = keys(*_resolve(cfg))
    return out


if __name__ == "__main__":
    json.dump(all_keys(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
