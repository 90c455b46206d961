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
from pathlib import Path
from typing import Any, Callable

import torch

from .config import config_hash, to_dict
from dataclasses import is_dataclass


class ArtifactError(RuntimeError):
    """An artifact on disk is missing, corrupt, or was made by another config."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    """Artifact folders `<root>/<kind>/<hash>/`, reused when the same config asks again."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def folder(self, kind: str, *configs: Any) -> Path:
        return self.root / kind / config_hash(*configs)

    def get_or_make(self, kind: str, configs: tuple, make: Callable[[Path], Any], load: Callable[[Path], Any]) -> Any:
        """Load the finished artifact for `configs`, or build it with `make(tmp_folder)` and publish it.

        `make` writes into a fresh temporary folder that is renamed into place when it returns, then
        the done marker is written: an interrupted `make` leaves nothing behind that looks finished.
        """
        folder = self.folder(kind, *configs)
        if (folder / "done.json").is_file():
            return load(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            make(tmp)
            write_json({"kind": kind, "configs": [to_dict(c) if is_dataclass(c) else c for c in configs]},
                       tmp / "config.json")
            if folder.exists():  # an unfinished earlier attempt
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        write_json({"kind": kind}, folder / "done.json")
        return load(folder)
