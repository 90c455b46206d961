"""Per-machine speed settings (cda.speed): measured once, remembered, and written into every stage's
config before any cache key is made."""
import json

import pytest
import torch

from cda import speed
from cda.config import ConfigError, RunConfig, preset
from cda.data import dataset_info
from cda.runtime import Speed


def test_candidates_start_with_the_plain_settings():
    cpu = torch.device("cpu")
    rec = speed.candidates(cpu, "recover")
    assert rec[0] == {"compile": False, "channels_last": False, "amp_cpu": False}
    assert not any(c["compile"] for c in rec), "recovery is never compiled"
    train = speed.candidates(cpu, "train")
    assert len(train) == 2 * len(rec) and sum(c["compile"] for c in train) == len(rec)
    assert speed.candidates(cpu, "train", compile_ok=False) == rec
    assert any(c["amp_cpu"] for c in rec) == speed.cpu_has_bf16()


def test_choose_measures_once_then_reads_the_file(tmp_path, monkeypatch):
    calls = []

    def fake(task, *args, **kwargs):
        calls.append(task)
        return {"contiguous + fp32": 1.0, "channels_last + fp32": 0.5, "contiguous + bf16": 0.9,
                "channels_last + bf16": 0.8}

    monkeypatch.setattr(speed, "measure", fake)
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: True)
    first = speed.choose("recover", "convnet3", 10, 1, 28, 10, "cpu", tmp_path, log=lambda m: None)
    assert first == {"compile": False, "channels_last": True, "amp_cpu": False}
    again = speed.choose("recover", "convnet3", 10, 1, 28, 10, "cpu", tmp_path, log=lambda m: None)
    assert again == first and calls == ["recover"], "the second call must read speed.json, not time again"
    saved = json.loads((tmp_path / speed.SPEED_FILE).read_text())
    (entry,) = saved.values()
    assert entry["seconds_per_step"]["channels_last + fp32"] == 0.5
    # another shape is another measurement
    speed.choose("recover", "convnet3", 10, 1, 32, 10, "cpu", tmp_path, log=lambda m: None)
    assert calls == ["recover", "recover"]


def test_a_gain_within_the_noise_keeps_the_plain_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(speed, "measure", lambda *a, **k: {"contiguous + fp32": 1.0, "channels_last + fp32": 0.97})
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: False)
    got = speed.choose("recover", "convnet3", 10, 1, 28, 10, "cpu", tmp_path, log=lambda m: None)
    assert got == {"compile": False, "channels_last": False, "amp_cpu": False}


def test_measure_times_every_candidate_on_a_real_model():
    times = speed.measure("recover", "convnet3_w16", 10, 1, 16, 10, torch.device("cpu"), seconds=0.05)
    assert set(times) == {speed._name(c) for c in speed.candidates(torch.device("cpu"), "recover")}
    assert all(0 < t < 5 for t in times.values())


def test_resolve_fills_every_stage_of_the_runtime(monkeypatch):
    fixed = preset("smoke")
    info = dataset_info("fashion_mnist")
    assert speed.resolve(fixed, info) is fixed.speeds, "speed='fixed': the runtime's settings as written"
    asked = []

    def fake(task, arch, classes, channels, size, batch, device, cache_dir, compile_ok, log):
        asked.append((task, arch, batch, compile_ok))
        return {"compile": compile_ok, "channels_last": True, "amp_cpu": task == "train"}

    monkeypatch.setattr(speed, "choose", fake)
    auto = preset("smoke", speed="auto")
    got = speed.resolve(auto, info)
    assert got.teacher == Speed(channels_last=True, amp_cpu=True)
    assert got.recover == Speed(channels_last=True)
    assert got.student == Speed(channels_last=True, amp_cpu=True, compile=True)
    assert got.of("cudd_recover") == got.recover and got.of("cudd_student") == got.student
    assert auto.recover == preset("smoke").recover, "the stages' configs are left as they are"
    assert ("recover", "convnet3_w16", 20, False) in asked, \
        "recovery is timed at its step's batch (every group of the largest IPC), never compiled"
    assert ("train", "convnet3_w16", 64, False) in asked, "the teacher is timed at its batch, never compiled"
    assert ("train", "convnet3_w16", 32, True) in asked


def test_unknown_speed_is_refused():
    with pytest.raises(ConfigError, match="RunConfig.speed='fast'.*fixed"):
        RunConfig(speed="fast")
