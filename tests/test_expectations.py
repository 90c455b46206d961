"""Silent changes: the smoke preset's numbers against stored expectations, within tolerances.

The preset runs with more teacher and student epochs than its own (seconds more), so that the
students are above chance and their accuracy can move.

Every run computes afresh, in a cache of its own: a warm cache would hand it artifacts made by older code.
A change that moves the teacher, the recovery losses or the students by more than float noise
fails here, even where every other test still passes. When a change is meant to move them, bump
the stage's version in cda.cache.CODE_VERSIONS and rewrite the expectations:

    CDA_UPDATE_EXPECTATIONS=1 pytest tests/test_expectations.py
"""
import json
import os
from pathlib import Path

import pytest

from cda.cache import CODE_VERSIONS
from cda.config import preset
from cda.pipeline import Workspace

STORED = Path(__file__).parent / "expectations" / "smoke.json"
TOLERANCE = {"teacher_top1": 3.0, "student_top1": 6.0, "loss_rtol": 0.03}


def measure(cache_dir: str) -> dict:
    cfg = preset("smoke", cache_dir=cache_dir, **{"squeeze.epochs": 8, "eval.aug.epochs": 40,
                                                  "recover.iterations": 30})
    ws = Workspace(cfg, progress=False, log=lambda m: None)
    _, meta = ws.teacher()
    out = {"code_versions": dict(CODE_VERSIONS), "teacher_top1": meta["metrics"]["top1"], "recovery": {},
           "student_top1": {}}
    for method in ("sre2l", "cda"):
        h = ws.distilled(method, 2).history
        out["recovery"][method] = {t: [h[t][0], h[t][-1]] for t in ("loss", "ce", "bn")}
    for method in ("random", "sre2l", "cda"):
        out["student_top1"][method] = ws.evaluation(method, 2)["top1"]
    return out


@pytest.mark.slow
def test_smoke_numbers_match_the_stored_expectations(tmp_path, monkeypatch):
    # A cache of its own, never $CDA_CACHE_DIR's: artifacts made by older code would be loaded and
    # pass after exactly the kind of change this test exists to catch.
    monkeypatch.delenv("CDA_CACHE_DIR", raising=False)
    got = measure(str(tmp_path / "cache"))
    if os.environ.get("CDA_UPDATE_EXPECTATIONS"):
        STORED.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"expectations rewritten: {STORED}")
    want = json.loads(STORED.read_text())
    assert got["code_versions"] == want["code_versions"], (
        "the code versions moved: rewrite the expectations (see this file's docstring)")
    assert abs(got["teacher_top1"] - want["teacher_top1"]) <= TOLERANCE["teacher_top1"], (got, want)
    for method, terms in want["recovery"].items():
        for term, (first, last) in terms.items():
            g_first, g_last = got["recovery"][method][term]
            assert g_first == pytest.approx(first, rel=TOLERANCE["loss_rtol"]), (method, term, "first")
            assert g_last == pytest.approx(last, rel=TOLERANCE["loss_rtol"]), (method, term, "last")
    for method, top1 in want["student_top1"].items():
        assert abs(got["student_top1"][method] - top1) <= TOLERANCE["student_top1"], (method, got, want)
