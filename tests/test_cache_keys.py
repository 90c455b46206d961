"""Refactors keep every cache key: the keys of each preset's artifacts equal those recorded from the
code before (tests/cache_keys.py; re-record only for a change that means to move keys, and say so)."""
import json
from pathlib import Path

from cache_keys import all_keys

RECORDED = Path(__file__).parent / "expectations" / "cache_keys.json"


def test_every_preset_keeps_its_cache_keys():
    recorded, now = json.loads(RECORDED.read_text()), all_keys()
    moved = [f"{p}: {k}" for p in recorded for k in recorded[p] if now.get(p, {}).get(k) != recorded[p][k]]
    assert not moved, f"{len(moved)} cache keys moved, e.g. {moved[:5]}"
    assert now.keys() == recorded.keys() and all(now[p].keys() == recorded[p].keys() for p in now)
