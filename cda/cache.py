"""Artifacts on disk: atomic writes, and folders keyed by the hash of the config that made them.

An artifact is built in `<hash>.partial/`; its `done.json` (with every file's size and sha256) is
written last, and the folder is renamed to `<hash>/` in one step, so a killed process never leaves a
folder that a later run would take for a finished one. Reading an artifact checks its files against
`done.json` (check_artifact); a damaged one is moved aside and rebuilt. One process builds an
artifact while the others wait on its lock (`<hash>.lock`).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from filelock import FileLock, Timeout

from .config import CuddConfig, EvalConfig, RecoverConfig, SqueezeConfig, config_hash, to_dict
from .config.io import _hashed
from .runtime import Speeds

# The version of the code that makes each kind of artifact, hashed into its key. Bump a kind's
# number when a change of code changes what it makes (not only how fast), so that artifacts made
# by the older code are never reused as if the new code had made them. Version 1 hashes as the keys
# did before versions existed.
CODE_VERSIONS = {
    "teacher": 2, "distilled": 3, "slots": 3, "labels": 3, "evaluation": 3, "robustness": 3, "continual": 2,
}  # 2: crops resampled inside their box (augment.apply_views), as torchvision does;
#    3: recovery's BatchNorm statistics in one fused pass (the same loss, other float rounding);
#    continual 2: its students take the run's student speed settings, which its key always held


def artifact_key(kind: str, *configs: Any) -> str:
    """The cache key of an artifact: the hash of its configs and of its kind's code version."""
    version = CODE_VERSIONS.get(kind, 1)
    return config_hash(*configs) if version == 1 else config_hash(*configs, {"code_version": version})


def stamped(part: Any, speeds: Speeds | None, dump: Callable[[Any], Any] = _hashed) -> Any:
    """A key part with its stage's non-default speed settings (cda.runtime) merged into its dict:
    a teacher's (SqueezeConfig), a recovery's (RecoverConfig), a student's (EvalConfig), and CUDD's
    own recovery and students inside a CuddConfig. The payload is the one these fields made when
    they sat in the stages' configs, so the keys are those of before. Other parts pass as they are."""
    if speeds is None or not isinstance(part, (SqueezeConfig, RecoverConfig, EvalConfig, CuddConfig)):
        return part
    if isinstance(part, CuddConfig):
        out = dump(part)
        for name in ("recover", "student"):
            if getattr(part, name) is not None:
                out[name] = {**out[name], **speeds.of(f"cudd_{name}").hashed()}
        return out
    stage = {SqueezeConfig: "teacher", RecoverConfig: "recover", EvalConfig: "student"}[type(part)]
    return {**dump(part), **speeds.of(stage).hashed()}


class ArtifactError(RuntimeError):
    """An artifact on disk is missing, corrupt, or was made by another config."""


class OutputError(ArtifactError):
    """An output could not be written (disk full, no permission, not a folder, ...)."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds.

    A failed write leaves any earlier file at `path` untouched and no temporary file behind. The file
    gets the permissions of a plain `open` under the user's umask (mkstemp's are owner-only).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}. Check the free space and the permissions "
                          f"of {path.parent}; nothing finished before was changed.") from err
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink()


def make_folder(folder: Path) -> None:
    """mkdir -p, or an OutputError naming the folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create {folder}: {err.strerror or err}") from err


_HOST = socket.gethostname().replace("/", "_")


def current_umask() -> int:
    """The process's umask (Linux reports it; elsewhere it is read by setting it and back)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files of `path` left by killed writers: those of a process of this host
    that no longer runs (or of the older unnamed kind). A live writer's file, here or on another host
    sharing the folder, is left alone."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        writer = stale.name[len(path.name) + 2:]
        pid, _, rest = writer.partition("@")
        if rest and (not pid.isdigit() or rest.rsplit(".", 2)[0] != _HOST or _alive(int(pid))):
            continue
        stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike, what: str = "artifact") -> Any:
    """Load a tensor file without executing pickled code (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ArtifactError(f"{what} {path} cannot be read: {_why_unreadable(err)}") from err


def _why_unreadable(err: Exception) -> str:
    """Why torch.load failed, in our words: torch's own message for a file that holds other objects
    than tensors advises loading it unsafely, which is never the fix here."""
    text = str(err)
    if "weights_only" in text or "Unpickl" in type(err).__name__:
        return ("it is not a cda file (it holds objects other than tensors and plain containers, or is not a "
                "torch file at all), or it is damaged")
    if "zip archive" in text or isinstance(err, EOFError):
        return "it is truncated or damaged (not a complete torch file)"
    return f"it is damaged or not a cda file ({type(err).__name__}: {text.splitlines()[0][:200] if text else ''})"


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """A JSON file's content; an error that names the file when it is missing, unreadable or not JSON."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise ArtifactError(f"{what} {path} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{what} {path} cannot be read: {getattr(err, 'strerror', None) or err}") from err
    try:
        return json.loads(text)
    except ValueError as err:
        raise ArtifactError(f"{what} {path} is not valid JSON ({err}); it is damaged or was not written by cda") from err


# ---------------------------------------------------------------------------------------------
# What a finished artifact holds: every file's size and sha256, recorded in done.json. sha256 is in
# the standard library and has CPU instructions on x86 (SHA-NI) and ARMv8, 1.5 GB/s on this project's
# CPU machine: a ResNet-50 teacher (100 MB) in 0.1 s, a distilled ImageNet-1K set at IPC 50 (uint8,
# 7.5 GB) in 5 s, each checked once per process.

DONE = "done.json"
_verified: dict[tuple, str] = {}  # (path, size, mtime, inode) -> sha256, files this process has checked


def sha256_of(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _verified:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        _verified[key] = h.hexdigest()
    return _verified[key]


def manifest(folder: Path) -> dict[str, dict]:
    """{relative path: {"bytes", "sha256"}} of every file of an artifact folder but done.json."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != DONE)
    return {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files}


class DamagedArtifactError(ArtifactError):
    """A finished artifact's files differ from what its done.json records, or done.json is unreadable."""


def check_artifact(folder: Path) -> dict:
    """The done.json of a finished artifact whose files match it (an old one, without "files", is taken
    as it is); DamagedArtifactError naming the first file that does not."""
    try:
        record = read_json(folder / DONE, what="done marker")
    except ArtifactError as err:
        raise DamagedArtifactError(str(err)) from err
    if not isinstance(record, dict):
        raise DamagedArtifactError(f"done marker {folder / DONE} is not a JSON object")
    for name, want in (record.get("files") or {}).items():
        path = folder / name
        if not path.is_file():
            raise DamagedArtifactError(f"{path} is missing")
        size = path.stat().st_size
        if size != want["bytes"]:
            raise DamagedArtifactError(f"{path} has {size} bytes, {want['bytes']} were written")
        if sha256_of(path) != want["sha256"]:
            raise DamagedArtifactError(f"{path} differs from what was written (sha256)")
    return record


def set_aside(folder: Path) -> Path:
    """Move a damaged artifact folder to `<hash>.damaged-<time>/` beside it; its new path."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = folder.with_name(f"{folder.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = folder.with_name(f"{folder.name}.damaged-{stamp}-{n}")
    os.replace(folder, aside)
    return aside


_MISSING = object()


class Cache:
    """Artifact folders `<root>/<kind>/<hash>/`, reused when the same config asks again.

    An artifact is built in `<hash>.partial/`, which survives an interrupted run so that `make` can
    resume from the progress it saved there; it is renamed to `<hash>/` when finished. Every reader
    and builder of an artifact holds its lock `<hash>.lock`, so two processes never build the same
    one; the lock of a killed process is released by the OS, and the next builder resumes.
    """

    def __init__(self, root: str | os.PathLike, log: Callable[[str], None] = print, speeds: Speeds | None = None):
        self.root = Path(root)
        self.log = log
        self.speeds = speeds  # the run's per-stage speed settings, stamped into the keys (see `stamped`)
        # every artifact this object has handed out: {folder name: {"kind", "seconds", "cached"}}
        self.ledger: dict[str, dict] = {}
        self._nested: list[float] = []  # seconds spent in inner builds, per build in progress

    def folder(self, kind: str, *configs: Any) -> Path:
        return self.root / kind / artifact_key(kind, *(stamped(c, self.speeds) for c in configs))

    @contextmanager
    def lock(self, folder: Path):
        """Hold the artifact's lock; say so when another process holds it and this one waits."""
        make_folder(folder.parent)
        lock = FileLock(folder.with_name(folder.name + ".lock"))
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                self.log(f"cache: waiting for {folder.parent.name}/{folder.name}: another process is building or "
                         f"reading it")
                lock.acquire()
        except PermissionError:  # another user's cache, readable but not writable: read it unlocked
            lock = None
        try:
            yield
        finally:
            if lock is not None:
                lock.release()

    def get_or_make(self, kind: str, configs: tuple, make: Callable[[Path], Any], load: Callable[[Path], Any],
                    seconds: float | None = None) -> Any:
        """Load the finished artifact for `configs`, or build it with `make(partial_folder)` and publish it.

        A damaged finished artifact is moved aside and rebuilt. The done marker, with every file's size
        and digest, is written last: an interrupted `make` leaves nothing that looks finished. It records
        how long the build took, not counting artifacts built inside it (they have their own); for a
        build resumed after an interruption, only the attempt that finished it. `seconds`: the build's
        cost when `make` only writes what was computed elsewhere (students trained at once).
        """
        folder = self.folder(kind, *configs)
        with self.lock(folder):
            found = self._load_finished(folder, kind, load)
            if found is not _MISSING:
                return found
            partial = folder.with_name(folder.name + ".partial")
            make_folder(partial)
            if not self._finished_in(partial):  # a build killed after it finished is published as it is
                self._build(kind, configs, make, partial, seconds)
            os.replace(partial, folder)
            self._record(folder, kind, read_json(folder / DONE, what="done marker").get("seconds"), cached=False)
            return load(folder)

    def _build(self, kind: str, configs: tuple, make: Callable[[Path], Any], partial: Path,
               seconds: float | None = None) -> None:
        (partial / DONE).unlink(missing_ok=True)
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            make(partial)
        finally:
            inner = self._nested.pop()
        total = time.perf_counter() - start
        if self._nested:
            self._nested[-1] += total
        write_json({"kind": kind, "code_version": CODE_VERSIONS.get(kind, 1),
                    "configs": [to_dict(c) if is_dataclass(c := stamped(p, self.speeds, to_dict)) else c
                                for p in configs]}, partial / "config.json")
        spent = total - inner if seconds is None else seconds
        write_json({"kind": kind, "seconds": round(spent, 2), "files": manifest(partial)}, partial / DONE)

    @staticmethod
    def _finished_in(partial: Path) -> bool:
        if not (partial / DONE).is_file():
            return False
        try:
            return bool(check_artifact(partial).get("files"))
        except ArtifactError:
            return False

    def _load_finished(self, folder: Path, kind: str, load: Callable[[Path], Any]) -> Any:
        """The loaded artifact, or _MISSING when there is none; a damaged one is moved aside (and logged).

        An artifact with digests is damaged when its files differ from them; one from before digests
        existed, when `load` cannot read it (an error in reading a checked artifact is not damage: raised)."""
        if not folder.exists():
            return _MISSING
        try:
            record = check_artifact(folder)
        except DamagedArtifactError as err:
            self._set_aside(folder, err)
            return _MISSING
        try:
            value = load(folder)
        except (ArtifactError, OSError, ValueError, KeyError, TypeError) as err:
            if record.get("files"):
                raise
            self._set_aside(folder, err)
            return _MISSING
        self._record(folder, kind, record.get("seconds"), cached=True)
        return value

    def _set_aside(self, folder: Path, why: Exception) -> None:
        aside = set_aside(folder)
        self.log(f"cache: damaged artifact {folder}: {why}. Moved it aside to {aside}; building it again.")

    def note(self, kind: str, configs: tuple) -> None:
        """Count a finished artifact in the ledger without loading it: one that a cached result was
        built from (a student's distilled set and teacher)."""
        folder = self.folder(kind, *configs)
        try:
            self._record(folder, kind, read_json(folder / DONE).get("seconds"), cached=True)
        except (ArtifactError, AttributeError):  # unfinished, or damaged: repaired where it is read
            pass

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
    try:
        state = load_torch(path, what="progress file")
    except ArtifactError as err:
        raise ArtifactError(f"{err}. Delete it to start this step afresh.") from err
    if state.get("key") != key:
        raise ArtifactError(f"{path} holds the progress of a run with another config; delete it, or write "
                            f"to another folder")
    return state


@contextmanager
def publishing(path: str | os.PathLike):
    """Hold the lock of an output (`.<name>.lock` beside it) while it and what goes with it are written,
    so that two processes publishing the same results never mix their files."""
    path = Path(path)
    make_folder(path.parent)
    with FileLock(path.with_name(f".{path.name}.lock")):
        yield
