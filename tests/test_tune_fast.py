"""`cda tune --stages fast`: the options for faster convergence join the tuning space only when asked
for, so the default tuning (and the committed results/tuning/) keeps its meaning."""
import json

import pandas as pd
import pytest

from cda.config import preset
from cda.tuning import DEFAULT_STAGES, FAST_GRID, TUNE_STAGES, TuneConfig, tune


def test_fast_stage_is_off_by_default_and_on_when_asked(tmp_path, monkeypatch):
    import cda.cli as cli
    from cda import tuning

    assert TuneConfig().fast == () and "fast" in TUNE_STAGES and "fast" not in DEFAULT_STAGES
    assert {k for k, _ in FAST_GRID} >= {"schedule", "ema_decay", "label_smoothing", "lr", "aug.batch_size"}
    seen = {}

    def fake_tune(cfg, tc, csv, progress=True):
        seen.update(tc=tc, csv=csv)
        raise SystemExit(0)

    monkeypatch.setattr(tuning, "tune", fake_tune)
    with pytest.raises(SystemExit):
        cli.main(["tune", "--preset", "smoke", "--output-root", str(tmp_path), "--no-progress"])
    assert seen["tc"].fast == () and seen["csv"].name == "smoke.csv"  # the default run, as before
    with pytest.raises(SystemExit):
        cli.main(["tune", "--preset", "smoke", "--output-root", str(tmp_path), "--stages", "fast", "--no-progress"])
    assert seen["tc"].fast == FAST_GRID and seen["tc"].protocol == () and seen["csv"].name == "smoke-fast.csv"


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
