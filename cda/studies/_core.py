"""What every study shares: the registry, where results go, and the helpers its tables and figures
use. The Context a study computes with, and the main table's rows, are cda.cells' (`cda run` uses
them too).
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from .. import methods, plots, results
from ..cells import Cell, Context, Pending, main_table_rows, set_label  # noqa: F401  (re-exported)
from ..paths import figures_dir, project_root, read_paper, results_path, run_tag  # noqa: F401 (re-exported)
from ..verdicts import Claim


class _Names(dict):
    """Display names, from the method registry (cda.methods); the reference rows' too."""

    def __missing__(self, key):
        return methods.label(key)

    def get(self, key, default=None):
        return self[key]


NAMES = _Names()

GRID_CLASSES = 10  # image grids show the first classes only: 1000 columns would help no reader


# ---------------------------------------------------------------------------------------------
# Where things go: cda.paths (imported from here too).

# ---------------------------------------------------------------------------------------------
# The registry: each study once, with what computes, draws and tabulates it.

Tables = list[tuple[str, pd.DataFrame]]


@dataclass(frozen=True)
class Notebook:
    """A study's notebook text; scripts/build_notebooks.py builds the notebook from it. `claim`: the
    paper's claim and how the notebook tests it (a function where it quotes results/paper, read when
    the notebook is built); `params`: the study parameters the notebook sets, (name, value, comment);
    `reading`: how to read the result."""

    title: str
    claim: str | Callable[[], str]
    reading: str
    params: tuple[tuple[str, Any, str], ...] | list = ()

    def text(self) -> str:
        return self.claim() if callable(self.claim) else self.claim


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    compute: Callable[..., list[dict]]  # (Context, **params) -> long-format rows
    draw: Callable[[pd.DataFrame, dict], dict[str, Any]]  # (results, saved images) -> {figure name: Figure}
    tables: Callable[[pd.DataFrame, Path | None], Tables]  # (results, root) -> [(caption, table)]
    main: bool = False  # a main table: every evaluation seed (the others: RunConfig.ablation_seeds)
    notebook: Notebook | None = None  # its notebook's text (None: no notebook)
    grid: tuple[str, ...] = ()  # the axes it varies: the results' columns that tell its variants apart
    claims: tuple[Claim, ...] = ()  # the papers' claims its results test (cda.verdicts judges them)
    # what the study needs of the run's config beyond the preset and overrides (a validation split):
    # RunConfig -> RunConfig, applied when the study is opened; None: the config as given
    config: Callable[[Any], Any] | None = None

    def parameters(self) -> dict[str, Any]:
        """The study's parameters and their defaults."""
        sig = inspect.signature(self.compute)
        return {n: p.default for n, p in list(sig.parameters.items())[1:]}


STUDIES: dict[str, Study] = {}
MAIN_TABLE = "cda_table2_main_results"  # the main table's one home: `cda run --publish` writes this study


def study(name: str, title: str, *, grid: tuple[str, ...] = (), draw: Callable, tables: Callable,
          main: bool = False, notebook: Notebook | None = None, claims: tuple[Claim, ...] = (),
          config: Callable[[Any], Any] | None = None):
    """Register the decorated compute function as the study `name`: the axes it varies (`grid`,
    columns of its results), the papers' claims its results test (`claims`), its figures, tables and
    notebook text; `main`: a main table, whose cells run every evaluation seed; `config`: what it
    needs of the run's config (Study.config)."""
    def register(compute):
        if name in STUDIES:
            raise ValueError(f"study {name!r} is registered twice")
        taken = {c.id for c in all_claims()}
        for c in claims:
            if c.id in taken:
                raise ValueError(f"study {name!r}: claim id {c.id!r} is declared twice; give it another id")
            if c.study not in ("", name):
                raise ValueError(f"study {name!r}: claim {c.id!r} names study {c.study!r}; leave `study` unset")
        # every figure is drawn in the theme, whatever the study's own code does
        STUDIES[name] = Study(name, title, compute, plots._themed(draw), tables, main, notebook, tuple(grid),
                              tuple(replace(c, study=name) for c in claims), config)
        return compute
    return register


def all_claims() -> list[Claim]:
    """Every registered study's claims, study by study in the registry's order (the verdict table's)."""
    return [c for st in STUDIES.values() for c in st.claims]


def check_known(given, known, what: str) -> None:
    """A study parameter's values must be among `known`: one error naming the unknown ones and the choices."""
    unknown = [v for v in given if v not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {list(known)}")


def get(name: str) -> Study:
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; choose one of {sorted(STUDIES)}")
    return STUDIES[name]


# ---------------------------------------------------------------------------------------------
# Images kept for the figures.

def teacher_top1(ctx: Context, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The teacher's top-1 (%) on uint8 images: how recognizable the synthesized images are to it
    (in batches: an ImageNet-scale set never moves to the device whole)."""
    from ..data import TensorSplit
    from ..training import test_accuracy

    teacher, _ = ctx.ws.teacher()
    dev = next(teacher.parameters()).device
    return test_accuracy(teacher, TensorSplit(images.cpu(), labels.cpu(), ctx.ws.info), dev)["top1"]


def first_per_class(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """Indices of the first `per_class` images of each of the first `num_classes` classes."""
    return torch.cat([torch.nonzero(labels == k).flatten()[:per_class] for k in range(num_classes)])


def keep_grid(ctx: Context, methods, ipc: int, per_class: int = 4) -> None:
    """Save the first images per class of each method's set, for the distilled-image grid."""
    classes = ctx.class_names()[:GRID_CLASSES]
    for method in methods:
        d = ctx.distilled(method, ipc)
        keep = first_per_class(d.labels, len(classes), per_class)
        ctx.images[method] = {"images": d.images[keep].cpu(), "labels": d.labels[keep].cpu()}
    ctx.images["classes"] = classes


def grid_figure(images: dict):
    """The distilled-image grid of the sets `keep_grid` saved."""
    sets = {NAMES.get(k, k): (v["images"], v["labels"]) for k, v in images.items() if isinstance(v, dict)}
    return plots.distilled_grid(sets, images["classes"], per_class=4)


# ---------------------------------------------------------------------------------------------
# Tables.

def accuracy_table(df: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """cda.results.accuracy_table with the methods in the registry's (table) order."""
    return results.accuracy_table(df, metric, methods.list_methods())


def top1(df: pd.DataFrame, index, columns=None, metric: str = "top1") -> pd.DataFrame:
    """Mean top-1 over seeds as a pivot table (rows `index`, columns `columns`)."""
    sub = df[df.metric == metric]
    if columns is None:
        table = sub.groupby(index, sort=False)["value"].mean().round(1).to_frame(metric)
    else:
        table = sub.pivot_table(index=index, columns=columns, values="value", aggfunc="mean", sort=False).round(1)
    return readable(table)


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """Row and column labels as people write them: IPC 1, not 1.0; with several row levels, the
    first as the index and the others as leading columns, so that no row label reads as a tuple."""
    def whole(index: pd.Index) -> pd.Index:
        values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in index]
        mixed = any(isinstance(v, float) for v in values) and any(isinstance(v, int) for v in values)
        return pd.Index(values, name=index.name, dtype=object if mixed else None)

    table = table.copy()
    if isinstance(table.index, pd.MultiIndex):
        moved = list(table.index.names[1:])
        table = table.reset_index(level=list(range(1, table.index.nlevels)))
        for col in moved:
            values = table[col].dropna()
            if table[col].dtype.kind == "f" and values.map(float.is_integer).all():
                table[col] = table[col].astype("Int64")
    table.index = whole(table.index)
    if not isinstance(table.columns, pd.MultiIndex):
        table.columns = whole(table.columns)
    return table


def markdown(table: pd.DataFrame) -> str:
    """A table as Markdown; a plain 0..n index is left out."""
    return table.to_markdown(index=not isinstance(table.index, pd.RangeIndex))


def paper_numbers(name: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The papers' reported numbers from results/paper/<name>.csv (cda.paths.read_paper)."""
    return read_paper(name, root=root)


def try_paper(name: str, root) -> pd.DataFrame | None:
    try:
        return paper_numbers(name, root)
    except FileNotFoundError:
        return None


def gain_table(ours: pd.DataFrame, paper: pd.DataFrame | None, base: str = "sre2l", new: str = "cda") -> pd.DataFrame:
    """`new` minus `base` top-1 per dataset, IPC and student: ours beside the paper's."""
    sub = ours[(ours.metric == "top1") & ours.method.isin([base, new])]
    mine = sub.pivot_table(index=["dataset", "ipc", "student"], columns="method", values="value", aggfunc="mean")
    mine = mine.reset_index().assign(source="ours")
    frames = [mine]
    if paper is not None:
        theirs = paper[paper.method.isin([base, new])].pivot_table(
            index=["dataset", "ipc", "student"], columns="method", values="top1", aggfunc="mean").reset_index()
        frames.append(theirs.assign(source=f"paper ({paper.table.iloc[0]})"))
    out = pd.concat(frames, ignore_index=True)
    out = out.dropna(subset=[base, new])
    out["gain"] = out[new] - out[base]
    out["ipc"] = out["ipc"].astype(int)
    out = out[["source", "dataset", "ipc", "student", base, new, "gain"]].round(1).set_index("source")
    out.columns.name = None
    return out
