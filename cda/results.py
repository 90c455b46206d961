"""Results as a long-format CSV (one row per run and metric) with a provenance JSON beside it."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .cache import atomic_path, write_json
from .config import to_dict

COLUMNS = ["dataset", "method", "ipc", "teacher", "student", "labels", "seed", "metric", "value"]
PACKAGES = ("torch", "torchvision", "timm", "numpy", "pandas", "matplotlib", "cda")


@functools.lru_cache(maxsize=None)
def git_commit(path: str | os.PathLike = ".") -> str:
    """HEAD (+dirty) of the checkout at `path`, read once per process: a long run's provenance names
    the code it started with, not whatever the checkout holds when it ends (Workspace reads it first)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        # results/ and figures/ are outputs: writing them must not mark the code as changed
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                                ":(top,exclude)results", ":(top,exclude)figures"], cwd=path,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(config: Any, wall_seconds: float, device: str, extra: dict | None = None) -> dict:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    hardware = torch.cuda.get_device_name(0) if device.startswith("cuda") else (platform.processor() or platform.machine())
    return {"config": to_dict(config) if hasattr(config, "__dataclass_fields__") else config,
            "git_commit": git_commit(str(Path(__file__).parent)), "versions": versions, "python": platform.python_version(),
            "device": device, "hardware": hardware, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "wall_seconds": round(wall_seconds, 1),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(extra or {})}


def write_results(rows: list[dict] | pd.DataFrame, path: str | os.PathLike, config: Any, wall_seconds: float,
                  device: str, extra: dict | None = None) -> pd.DataFrame:
    """Write `path` (CSV) and `path`.json (provenance, plus `extra`), each atomically."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results lack the columns {missing}")
    df = df[COLUMNS + [c for c in df.columns if c not in COLUMNS]]
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    write_json(provenance(config, wall_seconds, device, extra), path.with_suffix(".json"))
    return df


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}; run the experiment first")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:  # EmptyDataError and UnicodeDecodeError included
        raise ValueError(f"{path} cannot be read as a results CSV ({str(err).splitlines()[0]}); run the "
                         f"experiment again to rewrite it") from err
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a cda results file: it lacks the columns {missing}")
    return df


REFERENCES = ("full", "teacher")  # the reference rows (ipc empty), last in every table


def accuracy_table(df: pd.DataFrame, metric: str = "top1", order: Sequence[str] = ()) -> pd.DataFrame:
    """Method x IPC table of 'mean ± std' over seeds (just the mean where there is one seed). Rows:
    the methods of `order` (e.g. cda.methods.list_methods(), the table order), then the others in
    the order they first appear, then the reference rows."""
    sub = df[df.metric == metric]
    stats = sub.groupby(["method", "ipc"], dropna=False)["value"].agg(["mean", "std", "count"]).reset_index()

    def fmt(r):
        return f"{r['mean']:.1f}" if r["count"] < 2 else f"{r['mean']:.1f} ± {r['std']:.1f}"

    stats["cell"] = stats.apply(fmt, axis=1)
    stats["ipc"] = stats["ipc"].apply(lambda v: "all" if pd.isna(v) else str(int(v)))
    present = list(dict.fromkeys(sub.method))
    first = [m for m in order if m in present]
    rows = first + [m for m in present if m not in first and m not in REFERENCES]
    rows += [m for m in REFERENCES if m in present]
    table = stats.pivot(index="method", columns="ipc", values="cell").reindex(rows)
    cols = sorted([c for c in table.columns if c != "all"], key=int) + (["all"] if "all" in table.columns else [])
    return table[cols].fillna("")


def timing_table(df: pd.DataFrame) -> pd.DataFrame:
    """Wall seconds of each step: recovery and student training per method and IPC, and the teacher."""
    rows = []
    for (method, ipc), g in df.groupby(["method", "ipc"], dropna=False, sort=False):
        values = dict(zip(g.metric, g.value))
        step = {"teacher": "squeeze (teacher)", "full": "full-data student"}.get(method, f"{method} IPC {ipc:.0f}"
                                                                                if not pd.isna(ipc) else method)
        rows.append({"step": step,
                     "recover / train (s)": values.get("recover_seconds", values.get("train_seconds", float("nan"))),
                     "student (s)": g[g.metric == "seconds"]["value"].mean() if "seconds" in set(g.metric)
                     else float("nan")})
    return pd.DataFrame(rows).set_index("step").round(0)
