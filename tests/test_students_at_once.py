"""RunConfig.students_at_once: the studies' and `cda tune`'s students that share a recipe (but for the
seed), an architecture and a set size train in one pass (cda.students_batched), under the keys that one
at a time uses; the others still train one at a time. Real Fashion-MNIST at the smoke preset."""
from dataclasses import replace

import pytest

from cda.cells import Context
from cda.config import preset
from cda.paths import run_tag
from cda.pipeline import Workspace

SEEDS = (0, 1, 2)


def _ws(tmp_path, name, at_once, log=None, **over):
    cfg = preset("smoke", cache_dir=str(tmp_path / name), eval_seeds=SEEDS, students_at_once=at_once, **over)
    return Workspace(cfg, progress=False, log=log or (lambda m: None))


def _top1(rows):
    return [r["value"] for r in rows if r["metric"] == "top1"]


@pytest.mark.slow  # ~20 s: a smoke teacher, one set, six students
def test_a_study_trains_its_seeds_at_once_as_it_would_one_at_a_time(tmp_path):
    lines = []
    together = Context(_ws(tmp_path, "a", 3, lines.append), deferred=True)
    rows = together.cells("random", 2)
    noisy = together.noisy_cells("random", 2, (0.0,))  # another kind of student: never in a pass
    assert together.train_at_once() == 3
    assert sum("3 convnet3_w16 students at once" in line for line in lines) == 1
    assert together.train_at_once() == 0  # now cached: nothing left to train
    lines.clear()
    got = together.resolve(rows)
    assert not any("evaluate:" in line for line in lines)  # resolve loaded all three
    together.resolve(noisy)
    assert sum("robustness:" in line for line in lines) == 3

    alone = Context(_ws(tmp_path, "b", 1), deferred=True)
    expect = alone.resolve(alone.cells("random", 2))
    assert alone.train_at_once() == 0  # students_at_once=1: never in a pass
    # the same students up to float rounding: at most one of the 200 test images on the other side
    for a, b in zip(_top1(got), _top1(expect)):
        assert abs(a - b) <= 100 / 200 + 1e-9
    assert len(set(_top1(expect))) > 1  # the seeds give different students, so the check can fail
    assert [r["metric"] for r in got] == [r["metric"] for r in expect]  # the same metrics, in order
    secs = [r["value"] for r in got if r["metric"] == "seconds"]
    assert len(set(secs)) == 1 and secs[0] > 0  # each student's share of the pass


@pytest.mark.slow
def test_tune_and_run_cells_train_their_seeds_at_once_and_others_alone(tmp_path):
    lines = []
    ws = _ws(tmp_path, "c", 2, lines.append)
    ctx = Context(ws)  # not deferred, as `cda tune` and `cda run`
    ctx.cells("random", 2)  # 3 seeds at most 2 at once: a pass of 2, then one alone
    assert sum("2 convnet3_w16 students at once" in line for line in lines) == 1
    assert sum(line.startswith("evaluate: convnet3_w16 on random") for line in lines) == 1
    lines.clear()
    e = replace(ws.cfg.eval, arch="convnet3_none")  # no BatchNorm: not stackable, one at a time
    ctx.cells("random", 2, e)
    assert not any("at once" in line for line in lines)
    assert sum(line.startswith("evaluate: convnet3_none") for line in lines) == 3


def test_what_cannot_share_a_pass():
    from cda.config import EvalConfig
    from cda.students_batched import batchable

    e = EvalConfig(arch="convnet3")
    assert batchable(e) and batchable(replace(e, arch="convnet4_w16_bn"))
    for other in (dict(arch="convnet3_none"), dict(arch="convnet3_in"), dict(arch="vit_p4_d4_w128"),
                  dict(arch="resnet18"), dict(loss="mse_gt"), dict(labels="hard"), dict(labels="stored"),
                  dict(val_every=10), dict(schedule="onecycle"), dict(ema_decay=0.99), dict(label_smoothing=0.1)):
        assert not batchable(replace(e, **other)), other


def test_the_knob_is_runtime_only():
    assert run_tag("cpu", {"students_at_once": 5}) == "cpu"
    assert run_tag("cpu", {"speeds.student.channels_last": True}) == "cpu"
    assert run_tag("cpu", {"eval.lr": 0.1}) != "cpu"
    with pytest.raises(ValueError, match="students_at_once=0: must be >= 1"):
        preset("smoke", students_at_once=0)
