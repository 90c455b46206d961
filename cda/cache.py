"""Artifacts on disk: atomic writes, and folders keyed by the hash of the config that made them.

A folder is finished when its `done.json` exists; that marker is written last, atomically, so a
killed process never leaves a folder that a later run would take for a finished one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .config import config_hash, to_dict


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

    def folder(self, kind: str, *configs: Any) -> Path:
        return self.root / kind / config_hash(*configs)

    def get_or_make(self, kind: str, configs: tuple, make: Callable[[Path], Any], load: Callable[[Path], Any]) -> Any:
        """Load the finished artifact for `configs`, or build it with `make(partial_folder)` and publish it.

        The done marker is written last: an interrupted `make` leaves nothing that looks finished.
        """
        folder = self.folder(kind, *configs)
        if (folder / "done.json").is_file():
            return load(folder)
        partial = folder.with_name(folder.name + ".partial")
        try:
            partial.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot create {partial}: {err.strerror or err}") from err
        make(partial)
        write_json({"kind": kind, "configs": [to_dict(c) if is_dataclass(c) else c for c in configs]},
                   partial / "config.json")
        if folder.exists():  # a folder without done.json: an earlier attempt cut off while publishing
            shutil.rmtree(folder)
        os.replace(partial, folder)
        write_json({"kind": kind}, folder / "done.json")
        return load(folder)


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
