"""Run the paper notebooks with papermill, or redraw their figures from the saved results alone."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from .cache import read_json
from .config import ConfigError
from .studies import STUDIES, project_root, redraw, results_path

RUNS = "runs"  # a user's output root inside the project folder (git ignores it)


def output_root(publish: bool = False, root: str | os.PathLike | None = None) -> Path:
    """The one rule of `cda run|study|notebooks|figures` and the notebooks: `root` if given, the project
    folder (the committed results/ and figures/) with `publish`, else <project>/runs."""
    if publish and root is not None:
        raise ConfigError("--publish (publish=True) writes the project's own results/ and figures/; "
                          "drop --output-root (output_root)")
    if publish:
        return project_root()
    return Path(root).resolve() if root is not None else project_root() / RUNS


def notebook_root(root: str | os.PathLike | None = None, publish: bool = False, saved: bool = False) -> Path:
    """Where a notebook's study writes (its `output_root`, `publish` and `saved` parameters): the rule of
    `output_root`, except that `saved=True` alone reads the committed results (it computes nothing).
    The cache follows the one rule of cda.paths.cache_dir: under runs/ the project's cache is shared,
    as on the command line, so runs/ reuses its artifacts."""
    if root is None and saved and not publish:
        return project_root()
    return output_root(publish, root)


def _known(names: list[str] | None) -> list[str]:
    """`names` (default: every study), each checked against the registry."""
    unknown = [n for n in names or [] if n not in STUDIES]
    if unknown:
        raise KeyError(f"unknown notebook(s) {unknown}; choose from {sorted(STUDIES)}")
    return list(names or STUDIES)


def notebook_paths(root: str | os.PathLike | None = None, names: list[str] | None = None) -> list[Path]:
    """The notebooks in <root>/notebooks, one per study, in the studies' order (or just `names`)."""
    folder = Path(root or project_root()) / "notebooks"
    paths = [folder / f"{n}.ipynb" for n in _known(names)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks not found: {missing}")
    return paths


def run_notebooks(preset: str = "cpu", names: list[str] | None = None, root: str | os.PathLike | None = None,
                  executed_dir: str | os.PathLike | None = None, output_root: str | os.PathLike | None = None,
                  progress: bool = True, log: Callable[[str], None] = print,
                  overrides: dict | None = None) -> dict[str, float]:
    """Execute each notebook with papermill at `preset` (plus the notebooks' `overrides` parameter); the
    executed copies go to build/executed/<name>-<preset>.ipynb (never over the source notebooks).
    Returns seconds per notebook."""
    import papermill as pm

    root = Path(root or project_root())
    out = Path(executed_dir or root / "build" / "executed")
    out.mkdir(parents=True, exist_ok=True)
    params = {"preset": preset}
    if overrides:
        params["overrides"] = dict(overrides)
    if output_root is not None:
        params["output_root"] = str(Path(output_root).resolve())  # papermill runs in notebooks/
    seconds = {}
    total = time.perf_counter()
    for path in notebook_paths(root, names):
        start = time.perf_counter()
        log(f"notebook {path.name} ({preset})")
        pm.execute_notebook(str(path), str(out / f"{path.stem}-{preset}.ipynb"), parameters=params,
                            kernel_name="python3", progress_bar=progress, cwd=str(path.parent))
        seconds[path.stem] = time.perf_counter() - start
        log(f"  done in {seconds[path.stem]:.0f} s")
    log(f"{len(seconds)} notebooks in {(time.perf_counter() - total) / 60:.1f} min; executed copies in {out}")
    return seconds


def redraw_all(preset: str = "cpu", names: list[str] | None = None, root: str | os.PathLike | None = None,
               log: Callable[[str], None] = print) -> list[Path]:
    """Regenerate every figure from results/<study>/<preset>.csv, computing nothing."""
    paths = []
    for name in _known(names):
        if not results_path(name, preset, root).is_file():
            log(f"skip {name}: no results for preset {preset!r} yet")
            continue
        drawn = redraw(name, preset, root)
        log(f"{name}: {len(drawn) // 2} figures")
        paths += drawn
    return paths


def build_cost(preset: str = "cpu", names: list[str] | None = None, root: str | os.PathLike | None = None) -> dict:
    """What computing every notebook's results at `preset` from an empty cache costs: the artifacts
    that the studies' provenance files name (teacher, sets, labels, students), each counted once at
    the seconds it took when it was built. One study's `build_seconds` counts its own artifacts;
    studies share many, so their sum would count those twice. Returns {"seconds", "artifacts",
    "untimed", "by_kind": {kind: seconds}, "studies": [names read]}."""
    seen, read = {}, []
    for name in _known(names):
        path = results_path(name, preset, root).with_suffix(".json")
        if not path.is_file():
            continue
        read.append(name)
        for key, entry in read_json(path, what="provenance").get("artifacts", {}).items():
            seen.setdefault(key, entry)
    timed = {k: e for k, e in seen.items() if e.get("seconds") is not None}
    by_kind: dict[str, float] = {}
    for key, e in timed.items():
        kind = e.get("kind") or key.split("/")[0]
        by_kind[kind] = by_kind.get(kind, 0.0) + e["seconds"]
    return {"seconds": round(sum(by_kind.values()), 1), "artifacts": len(seen), "untimed": len(seen) - len(timed),
            "by_kind": {k: round(v, 1) for k, v in sorted(by_kind.items())}, "studies": read}
