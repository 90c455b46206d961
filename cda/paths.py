"""Where things are: the project's root, a run's results and figures, and the papers' numbers
(results/paper/, read here and nowhere else)."""
from __future__ import annotations

import os
from pathlib import Path

from .config import config_hash

RUNS = "runs"  # a user's output root inside the project folder (git ignores it)

# This checkout: where results/paper/ is when the working folder is elsewhere (an installed cda).
CHECKOUT = Path(__file__).resolve().parents[1]


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding `results/` and `figures/`: $CDA_ROOT, else the nearest folder at or above
    `start` (default: the working folder) with cda's pyproject.toml, else the working folder."""
    if os.environ.get("CDA_ROOT"):
        return Path(os.environ["CDA_ROOT"]).resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        toml = folder / "pyproject.toml"
        if toml.is_file() and 'name = "cda"' in toml.read_text():
            return folder
    return here


def cache_dir(configured: str, root: str | os.PathLike | None = None) -> str:
    """Where a run's cache goes: the one rule (the CLI's commands, the studies and tuning call it).

    `configured` is the config's RunConfig.cache_dir: $CDA_CACHE_DIR (the user's override) or
    ".cache/cda" by default, or what --set cache_dir or a config file says. An absolute folder is
    used as it is. A relative one lives under the project root when the output `root` is one of the
    project's own (the project: --publish; its runs/: the default), so every run of the project
    reuses what the committed results were built from; under `root` when it is another
    (--output-root), which keeps a separate tree separate."""
    if os.path.isabs(configured):
        return configured
    project = project_root()
    out = Path(root).resolve() if root is not None else project
    return str((project if out in (project, project / RUNS) else out) / configured)


def runtime_knob(key: str) -> bool:
    """A dotted RunConfig override that says how the work runs, not what it computes."""
    return key in ("speed", "students_at_once") or key.startswith("speeds.")


def run_tag(preset: str, overrides: dict | None = None, custom: dict | None = None) -> str:
    """The name of a run's results: the preset's, or <preset>-<hash> for a run with overrides or
    custom study parameters (it writes beside the default results, never over them); under a fixed
    student protocol (override "protocol", cda.config.protocols), <preset>-<protocol>[-<hash>]. The
    runtime's knobs (speed, speeds.*, students_at_once) change the order of float sums only, never what
    is measured: they leave the name as it is."""
    rest = {k: v for k, v in (overrides or {}).items() if k != "protocol" and not runtime_knob(k)}
    base = f"{preset}-{overrides['protocol']}" if (overrides or {}).get("protocol") else preset
    return f"{base}-{config_hash(rest, custom or {})[:8]}" if (rest or custom) else base


def results_path(study: str, preset: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or project_root()) / "results" / study / f"{preset}.csv"


def figures_dir(preset: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or project_root()) / "figures" / preset


def paper_file(name: str, folder: str | os.PathLike | None = None, root: str | os.PathLike | None = None) -> Path:
    """results/paper/<name>.csv, the papers' reported numbers (never ours): in `folder` when given,
    else under the project `root`, the project's own, or this checkout's (an output root elsewhere
    holds our results, not the papers')."""
    if folder is not None:
        places = [Path(folder) / f"{name}.csv"]
    else:
        roots = dict.fromkeys([Path(root or project_root()), project_root(), CHECKOUT])
        places = [r / "results" / "paper" / f"{name}.csv" for r in roots]
    for path in places:
        if path.is_file():
            return path
    raise FileNotFoundError(f"no paper numbers for {name!r}; looked at {[str(p) for p in places]}")


def read_paper(name: str, folder: str | os.PathLike | None = None, root: str | os.PathLike | None = None):
    """The rows of results/paper/<name>.csv (paper_file) as a DataFrame."""
    import pandas as pd

    return pd.read_csv(paper_file(name, folder, root))


def paper_folder(root: str | os.PathLike | None = None) -> Path:
    """The results/paper/ folder under `root` (a project root) where there is one, else this checkout's."""
    here = Path(root or project_root()) / "results" / "paper"
    return here if here.is_dir() else CHECKOUT / "results" / "paper"
