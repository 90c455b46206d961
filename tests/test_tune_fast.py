"""`cda tune --stages fast` on the validation split (that the stage joins only when asked for is in
tests/test_tuning.py, with the other stages' command line)."""
import json

import pandas as pd
import pytest

from cda.config import preset
from cda.tuning import TuneConfig, tune


@pytest.mark.slow  # trains the smoke teacher in its own cache: ~45 s on this shared machine
def test_tune_runs_the_fast_stage_on_the_validation_split(tmp_path):
    cfg = preset("smoke", cache_dir=str(tmp_path / "cache"), **{"data.validation": 5})
    tc = TuneConfig(ipc=1, seeds=(0, 1), protocol=(), recovery=(), cudd=(), methods=("random",),
                    fast=(("ema_decay", (0.0, 0.9)),), min_gain=-100.0)  # any value beats the preset's
    out = tune(cfg, tc, tmp_path / "fast.csv", progress=False, log=lambda m: None)
    df = pd.read_csv(tmp_path / "fast.csv")
    fast = df[(df.stage == "fast") & (df.knob == "ema_decay")]
    assert len(fast) == 4 and set(fast.method) == {"random"} and set(fast.value_text) == {"0", "0.9"}
    prov = json.loads((tmp_path / "fast.json").read_text())
    assert prov["tune"]["fast_grid"] == [["ema_decay", ["0", "0.9"]]]
    assert prov["winners"]["fast"]["ema_decay"] in ("0", "0.9")
    moved = out["fast"]["ema_decay"] != 0.0
    assert moved == ("eval.ema_decay" in out["overrides"])
