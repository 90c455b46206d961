"""What every study shares: the registry, where results go, the Context a study computes with, and
the helpers its tables and figures use (including the main table's rows, which `cda run` builds too).
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
from ..config import EvalConfig, RunConfig, config_hash
from ..pipeline import Workspace

class _Names(dict):
    """Display names, from the method registry (cda.methods); the reference rows' too."""

    def __missing__(self, key):
        return methods.label(key)

    def get(self, key, default=None):
        return self[key]


NAMES = _Names()

GRID_CLASSES = 10  # image grids show the first classes only: 1000 columns would help no reader


# ---------------------------------------------------------------------------------------------
# Where things go.

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


def run_tag(preset: str, overrides: dict | None = None, custom: dict | None = None) -> str:
    """The name of a run's results: the preset's, or <preset>-<hash> for a run with overrides or
    custom study parameters (it writes beside the default results, never over them)."""
    return f"{preset}-{config_hash(overrides or {}, custom or {})[:8]}" if (overrides or custom) else preset


def results_path(study: str, preset: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or project_root()) / "results" / study / f"{preset}.csv"


def figures_dir(preset: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or project_root()) / "figures" / preset


# ---------------------------------------------------------------------------------------------
# The registry: each study once, with what computes, draws and tabulates it.

Tables = list[tuple[str, pd.DataFrame]]


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    compute: Callable[..., list[dict]]  # (Context, **params) -> long-format rows
    draw: Callable[[pd.DataFrame, dict], dict[str, Any]]  # (results, saved images) -> {figure name: Figure}
    tables: Callable[[pd.DataFrame, Path | None], Tables]  # (results, root) -> [(caption, table)]
    main: bool = False  # a main table: every evaluation seed (the others: RunConfig.ablation_seeds)

    def parameters(self) -> dict[str, Any]:
        """The study's parameters and their defaults."""
        sig = inspect.signature(self.compute)
        return {n: p.default for n, p in list(sig.parameters.items())[1:]}


STUDIES: dict[str, Study] = {}


def study(name: str, title: str, *, draw: Callable, tables: Callable, main: bool = False):
    """Register the decorated compute function as the study `name`, with its figures and tables;
    `main`: a main table, whose cells run every evaluation seed."""
    def register(compute):
        if name in STUDIES:
            raise ValueError(f"study {name!r} is registered twice")
        STUDIES[name] = Study(name, title, compute, draw, tables, main)
        return compute
    return register


def get(name: str) -> Study:
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; choose one of {sorted(STUDIES)}")
    return STUDIES[name]


# ---------------------------------------------------------------------------------------------
# What a study computes with.

@dataclass(frozen=True)
class Cell:
    """One student run a study asks for: a student trained on one distilled set, one seed."""

    method: str
    ipc: int
    eval: EvalConfig
    made_by: Any  # the set's options (cda.methods); None: the run's own for the method
    label: str  # the set, for people: "CDA, IPC 10 (cosine, milestone 0.5)"


class Context:
    """A study's access to the cached workspace.

    A study's compute function runs twice: once planning (`planning=True`: every set it needs is
    built or loaded, each student run is only recorded in `planned`), then for real (each student
    is trained or loaded; the sets come from the cache). So the steps of a study can run one by one
    and the second pass repeats no work.
    """

    def __init__(self, ws: Workspace, preset: str | None = None, planning: bool = False,
                 on_set: Callable[[str, Any], None] | None = None, bar=None, main: bool = True):
        self.ws, self.preset, self.planning = ws, preset, planning
        n = ws.cfg.ablation_seeds
        # the seeds of this study's cells: all of them in a main table, the first n in the others
        self.seeds = ws.cfg.eval_seeds if main or not n else ws.cfg.eval_seeds[:n]
        self.images: dict[str, Any] = {}  # image tensors saved beside the CSV for the grid figures
        self.planned: list[Cell] = []
        self.wants_full_data = False
        self._sets: dict[str, str] = {}  # sets handed out so far: key -> label
        self._on_set, self._bar = on_set, bar

    @property
    def cfg(self) -> RunConfig:
        return self.ws.cfg

    def log(self, message: str) -> None:
        self.ws.log(message)

    def ablation_ipc(self) -> int:
        """The IPC of the ablations: 10 where the preset has it, else its nearest smaller IPC."""
        small = [i for i in self.cfg.ipcs if i <= 10]
        return max(small) if small else min(self.cfg.ipcs)

    def default_students(self) -> tuple[str, ...]:
        """Student architectures for cross-architecture tables: the papers' ResNets on ImageNet-scale
        data; on small images, the preset's ConvNet, a ResNet-18 and a small ViT (add "mobilenet_v2"
        through the `students` parameter: on 2 CPU cores it costs minutes per cell)."""
        if self.cfg.students:  # the preset's own (the papers' tables)
            return tuple(dict.fromkeys((self.cfg.eval.arch, *self.cfg.students)))
        if self.cfg.data.name in ("imagenet1k", "imagenet21k", "tiny_imagenet"):
            return tuple(dict.fromkeys((self.cfg.eval.arch, "resnet18", "resnet50", "resnet101")))
        return tuple(dict.fromkeys((self.cfg.eval.arch, "resnet18", "vit_p4_d4_w128")))

    def class_names(self) -> list[str]:
        info = self.ws.info
        return list(info.classes or [str(i) for i in range(info.num_classes)])

    def made_by(self, method: str, ipc: int, options=None) -> Any:
        """The options that make a method's set: those given, else the run's."""
        return options or self.cfg.method_config(method, ipc)

    def distilled(self, method: str, ipc: int, options=None, snapshot_at: tuple[int, ...] = (),
                  label: str | None = None):
        """A distilled set from the workspace; the first time a pass asks for one, it is named in the
        log (before it is built) and handed to `on_set` (the notebook shows its images)."""
        key = config_hash(method, ipc, self.made_by(method, ipc, options), list(snapshot_at))
        first = key not in self._sets
        label = label or set_label(method, ipc, {})
        if first and self.planning:
            self.log(f"set: {label}")
        d = self.ws.distilled(method, ipc, options, snapshot_at=snapshot_at)
        if first:
            self._sets[key] = label
            if self._on_set is not None:
                self._on_set(label, d)
        return d

    def cells(self, method: str, ipc: int, eval_cfg: EvalConfig | None = None, options=None,
              **tags) -> list[dict]:
        """Long-format rows of one evaluated cell, over the preset's evaluation seeds."""
        rows = []
        for seed in self.seeds:
            # seed_scope "student": only the student's seed moves; "all": its views, the set's noise too
            e, opts = self.cfg.for_seed(seed, eval_cfg, self._options(method, ipc, options))
            if self.planning:
                self._plan(method, ipc, e, opts, tags)
                continue
            metrics = self.ws.evaluation(method, ipc, e, opts)
            self._done(method, ipc, e, tags, f"top-1 {metrics['top1']:.1f}%")
            rows += self._rows(method, ipc, e, metrics, tags, seed)
        return rows

    def _options(self, method: str, ipc: int, options):
        """The set's options as given, or (only where every seed draws its own set) the run's."""
        if options is not None or self.cfg.seed_scope == "student":
            return options
        return self.cfg.method_config(method, ipc)

    def noisy_cells(self, method: str, ipc: int, sigmas: tuple[float, ...], eval_cfg: EvalConfig | None = None,
                    options=None) -> list[dict]:
        """Rows of students tested on the test set with Gaussian pixel noise of each std in `sigmas`."""
        rows = []
        for seed in self.seeds:
            e, opts = self.cfg.for_seed(seed, eval_cfg, self._options(method, ipc, options))
            if self.planning:
                self._plan(method, ipc, e, opts, {})
                continue
            results = self.ws.robustness(method, ipc, sigmas, e, opts)
            self._done(method, ipc, e, {}, ", ".join(f"top-1 {m['top1']:.1f}% at noise {s:g}"
                                                     for s, m in results.items()))
            for sigma, metrics in results.items():
                rows += self._rows(method, ipc, e, metrics, {"sigma": sigma}, seed)
        return rows

    def _plan(self, method: str, ipc: int, e: EvalConfig, options, tags: dict) -> None:
        """Planning: build (or load) the student's set now; record the student for later."""
        label = set_label(method, ipc, tags)
        self.distilled(method, ipc, options, label=label)
        self.planned.append(Cell(method, ipc, e, options, label))

    def _done(self, method: str, ipc: int, e: EvalConfig, tags: dict, what: str) -> None:
        if self._bar is not None:
            self._bar.update(1)
        self.log(f"student {e.arch} on {set_label(method, ipc, tags)}, seed {e.seed}: {what}")

    def _rows(self, method, ipc, e: EvalConfig, metrics: dict, tags: dict, seed: int | None = None) -> list[dict]:
        """Long-format rows; `seed` is the run's evaluation seed (under seed_scope "all" the student's
        own seed is derived from it)."""
        base = dict(dataset=self.ws.info.name, method=method, ipc=ipc, teacher=self.cfg.squeeze.arch,
                    student=e.arch, labels=e.labels, seed=e.seed if seed is None else seed, **tags)
        return [dict(base, metric=k, value=v) for k, v in metrics.items()]

    def reference_rows(self) -> list[dict]:
        """The teacher's and the full-data student's accuracies (ipc empty)."""
        _, meta = self.ws.teacher()
        if self.planning:
            self.wants_full_data = self.cfg.full_data
            return []
        rows = self._rows("teacher", None, replace(self.cfg.eval, arch=self.cfg.squeeze.arch, labels="hard",
                                                   seed=self.cfg.squeeze.seed), meta["metrics"], {})
        if self.cfg.full_data:
            e = replace(self.cfg.eval, labels="hard", seed=self.cfg.squeeze.seed + 1)
            metrics = self.ws.full_data()
            self._done("full", None, e, {}, f"top-1 {metrics['top1']:.1f}%")
            rows += self._rows("full", None, e, metrics, {})
        return rows


def set_label(method: str, ipc: int | None, tags: dict) -> str:
    """A distilled set for people: the method, the IPC and the study's variant, if any."""
    name = NAMES.get(method, method)
    if ipc is None:
        return f"{name} (all training images)"
    detail = tags.get("variant") or (f"{tags['iterations']} recovery iterations" if "iterations" in tags else "")
    return f"{name}, IPC {ipc}" + (f" ({detail})" if detail else "")


def main_table_rows(ctx: Context, ipcs, methods, students, extra_student_max_ipc: int | None = None,
                    hard_labels: bool = False) -> list[dict]:
    """The main table (CDA's Table 2, and `cda run`): every method at every IPC with the first
    student, the other students at the IPCs up to `extra_student_max_ipc`, then the teacher's and
    the full-data student's rows. `hard_labels`: the first student also trains on each set with its
    class labels alone (labels "hard"), for DD-Ranking's HLR (cda.verdicts.field_metrics)."""
    rows = []
    for i, arch in enumerate(students):
        for ipc in ipcs:
            if i > 0 and extra_student_max_ipc is not None and ipc > extra_student_max_ipc:
                continue
            for method in methods:
                e = replace(ctx.cfg.eval_for(method), arch=arch)  # each method's own student recipe
                rows += ctx.cells(method, ipc, e)
                if hard_labels and i == 0 and e.labels != "hard":
                    rows += ctx.cells(method, ipc, replace(e, labels="hard"))
    return rows + ctx.reference_rows()


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
    """The papers' reported numbers from results/paper/<name>.csv (never ours): under `root`, else the
    project's own (an output root elsewhere holds our results, not the papers')."""
    places = [Path(p) / "results" / "paper" / f"{name}.csv"
              for p in dict.fromkeys([root or project_root(), project_root(), Path(__file__).resolve().parents[2]])]
    for path in places:
        if path.is_file():
            return pd.read_csv(path)
    raise FileNotFoundError(f"no paper numbers for {name!r}; looked at {[str(p) for p in places]}")


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
