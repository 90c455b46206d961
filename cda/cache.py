"""Artifacts on disk: atomic writes, and folders keyed by the hash of the config that made them.

A folder is finished when its `done.json` exists; that marker is written last, atomically, so a
killed process never leaves a folder that a later run would take for a finished one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .config import config_hash, to_dict


# The version of the code that makes each kind of artifact, hashed into its key. Bump a kind's
# number when a change of code changes what it makes (not only how fast), so that artifacts made
# by the older code are never reused as if the new code had made them. Version 1 hashes as the keys
# did before versions existed.
CODE_VERSIONS = {
    "teacher": 2, "distilled": 3, "slots": 3, "labels": 3, "evaluation": 3, "robustness": 3,
}  # 2: crops resampled inside their box (augment.apply_views), as torchvision does;
#    3: recovery's BatchNorm statistics in one fused pass (the same loss, other float rounding)


def artifact_key(kind: str, *configs: Any) -> str:
    """The cache key of an artifact: the hash of its configs and of its kind's code version."""
    version = CODE_VERSIONS.get(kind, 1)
    return config_hash(*configs) if version == 1 else config_hash(*configs, {"code_version": version})


class ArtifactError(RuntimeError):
    """An artifact on disk is missing, corrupt, or was made by another config."""


class OutputError(ArtifactError):
    """An output could not be written (disk full, no permission, not a folder, ...)."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    A failed write leaves any earlier file at `path` untouched and no temporary file behind.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed writer
            stale.unlink()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}. Check the free space and the permissions "
                          f"of {path.parent}; nothing finished before was changed.") from err
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink()


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike, what: str = "artifact") -> Any:
    """Load a tensor file without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ArtifactError(f"{what} {path} cannot be read ({type(err).__name__}: {err}); it is truncated, "
                            f"corrupt or not a cda file. Delete it and run the step again.") from err


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


class Cache:
    """Artifact folders `<root>/<kind>/<hash>/`, reused when the same config asks again.

    An artifact is built in `<hash>.partial/`, which survives an interrupted run so that `make` can
    resume from the progress it saved there; it is renamed to `<hash>/` when finished.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        # every artifact this object has handed out: {folder name: {"kind", "seconds", "cached"}}
        self.ledger: dict[str, dict] = {}
        self._nested: list[float] = []  # seconds spent in inner builds, per build in progress

    def folder(self, kind: str, *configs: Any) -> Path:
        return self.root / kind / artifact_key(kind, *configs)

    def get_or_make(self, kind: str, configs: tuple, make: Callable[[Path], Any], load: Callable[[Path], Any]) -> Any:
        """Load the finished artifact for `configs`, or build it with `make(partial_folder)` and publish it.

        The done marker is written last: an interrupted `make` leaves nothing that looks finished. It
        records how long the build took, not counting artifacts built inside it (they have their own); for a
        build resumed after an interruption, only the attempt that finished it.
        """
        folder = self.folder(kind, *configs)
        done = folder / "done.json"
        if self._record_finished(folder, kind):
            return load(folder)
        partial = folder.with_name(folder.name + ".partial")
        try:
            partial.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot create {partial}: {err.strerror or err}") from err
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            make(partial)
        finally:
            inner = self._nested.pop()
        total = time.perf_counter() - start
        if self._nested:
            self._nested[-1] += total
        seconds = round(total - inner, 2)
        write_json({"kind": kind, "code_version": CODE_VERSIONS.get(kind, 1),
                    "configs": [to_dict(c) if is_dataclass(c) else c for c in configs]}, partial / "config.json")
        if folder.exists():  # a folder without done.json: an earlier attempt cut off while publishing
            shutil.rmtree(folder)
        os.replace(partial, folder)
        write_json({"kind": kind, "seconds": seconds}, done)
        self._record(folder, kind, seconds, cached=False)
        return load(folder)

    def note(self, kind: str, configs: tuple) -> None:
        """Count a finished artifact in the ledger without loading it: one that a cached result was
        built from (a student's distilled set and teacher)."""
        self._record_finished(self.folder(kind, *configs), kind)

    def _record_finished(self, folder: Path, kind: str) -> bool:
        """Put a finished artifact in the ledger with its recorded build time; False if unfinished."""
        done = folder / "done.json"
        if not done.is_file():
            return False
        self._record(folder, kind, json.loads(done.read_text()).get("seconds"), cached=True)
        return True

    def _record(self, folder: Path, kind: str, seconds: float | None, cached: bool) -> None:
        self.ledger.setdefault(f"{kind}/{folder.name}", {"kind": kind, "seconds": seconds, "cached": cached})

    def cost(self) -> dict:
        """What the artifacts handed out so far cost to build, when they were built (seconds, each
        artifact once), and how many were built now or loaded from the cache."""
        entries = self.ledger.values()
        known = [e["seconds"] for e in entries if e["seconds"] is not None]
        return {"build_seconds": round(sum(known), 1),
                "artifacts_built": sum(not e["cached"] for e in entries),
                "artifacts_from_cache": sum(e["cached"] for e in entries),
                "artifacts_untimed": len(entries) - len(known),
                "artifacts": dict(sorted(self.ledger.items()))}


def save_progress(path: str | os.PathLike, key: str, state: dict) -> None:
    """Checkpoint a loop's state; `key` identifies the config that made it."""
    save_torch({**state, "key": key}, path)


def load_progress(path: str | os.PathLike, key: str) -> dict | None:
    """The saved state of an interrupted loop with the same config, or None to start afresh."""
    path = Path(path)
    if not path.is_file():
        return None
    state = load_torch(path, what="progress file")
    if state.get("key") != key:
        raise ArtifactError(f"{path} holds the progress of a run with another config; delete it, or write "
                            f"to another folder")
    return state
