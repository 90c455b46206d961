"""`cda cache verify|repair`: check every artifact of a cache against its done.json, and move the damaged
ones aside (repair), as a run does with those it reads.

An artifact from before digests existed is checked by reading it: every JSON file parses and every
tensor file loads. `repair` records the digests of those that read correctly, so that later reads check
them. The step files that recovery shares between IPCs (`slots/`) have no done marker: each is checked by
loading it, and a damaged one is moved aside (recovery makes that step again).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from .cache import (
    DONE,
    ArtifactError,
    Cache,
    DamagedArtifactError,
    check_artifact,
    load_torch,
    manifest,
    read_json,
    set_aside,
    write_json,
)

STORES = ("slots",)  # kinds whose folders hold step files, not artifacts


def check_cache(root: str | os.PathLike, repair: bool = False, log: Callable[[str], None] = print) -> Counter:
    """Check (and with `repair`, mend) every artifact under `root`; log each damaged one and a summary.
    Counts of "verified", "unverified" (readable, no digest), "damaged", "steps" (readable step files),
    "unfinished", "set aside"."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no cache at {root}; a run creates it (its place, cda.paths.cache_dir: "
                                f"$CDA_CACHE_DIR, the project's .cache/cda, or <output root>/.cache/cda)")
    cache = Cache(root, log)
    counts: Counter = Counter()
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
            if ".damaged-" in entry.name:
                counts["set aside"] += 1
            elif entry.name.endswith(".partial"):
                counts["unfinished"] += 1
            elif kind_dir.name in STORES:
                _check_store(entry, repair, log, counts)
            else:
                with cache.lock(entry):
                    if entry.is_dir():  # another process may have moved it aside meanwhile
                        _check_artifact(entry, repair, log, counts)
    total = sum(counts[k] for k in ("verified", "unverified", "damaged"))
    what = "moved aside" if repair else "run `cda cache repair` to move them aside"
    log(f"{root}: {total} artifacts: {counts['verified']} match their digests, {counts['unverified']} from before "
        f"digests read correctly" + (" (digests now recorded)" if repair and counts["unverified"] else "")
        + f", {counts['damaged']} damaged" + (f" ({what})" if counts["damaged"] else "")
        + f"; {counts['steps']} recovery step files read correctly; {counts['unfinished']} unfinished"
        + f" (a run resumes them), {counts['set aside']} set aside earlier")
    return counts


def _check_artifact(folder: Path, repair: bool, log: Callable[[str], None], counts: Counter) -> None:
    try:
        record = check_artifact(folder)
        if not record.get("files"):
            _read_everything(folder)
    except ArtifactError as err:
        counts["damaged"] += 1
        log(f"damaged: {folder}: {err}")
        if repair:
            log(f"  moved aside to {set_aside(folder)}")
        return
    if record.get("files"):
        counts["verified"] += 1
        return
    counts["unverified"] += 1
    if repair:
        write_json({**record, "files": manifest(folder)}, folder / DONE)


def _read_everything(folder: Path) -> None:
    """Read every JSON and tensor file of an artifact without digests; ArtifactError at the first that fails."""
    if not (folder / "config.json").is_file():
        raise DamagedArtifactError(f"{folder / 'config.json'} is missing")
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".json":
            read_json(path)
        elif path.suffix == ".pt":
            load_torch(path)


def _check_store(folder: Path, repair: bool, log: Callable[[str], None], counts: Counter) -> None:
    for path in sorted(folder.glob("*.pt")):
        try:
            load_torch(path, what="recovery step file")
        except ArtifactError as err:
            counts["damaged"] += 1
            log(f"damaged: {err}")
            if repair:
                aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
                os.replace(path, aside)
                log(f"  moved aside to {aside}")
        else:
            counts["steps"] += 1
