"""The experiments behind the notebooks: one study per table or figure of the CDA and CUDD papers.

A study takes a preset (smoke, cpu, paper) plus overrides, asks a cached `Workspace` for the
teachers, distilled sets and student evaluations it needs, and writes

- `results/<study>/<preset>.csv`: long format, one row per run and metric, with the study's own
  columns (schedule, milestone, ...), and `<preset>.json` beside it with the provenance;
- `figures/<preset>/<study>_<figure>.png|pdf`, drawn from the CSV alone (plus a small tensor file of
  images for the image grids), so `redraw()` regenerates every figure without recomputing.

Studies share artifacts through the cache: the main table's CDA set at IPC 10 is the scheduler
ablation's cosine/milestone-1 cell and the cross-architecture study's convnet cell.
"""
from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from . import plots
from .config import CurriculumConfig, EvalConfig, RunConfig, config_hash, preset as make_preset
from .pipeline import Workspace
from .results import accuracy_table, read_results, timing_table, write_results
from .training import resolve_device

NAMES = {"random": "Random real", "sre2l": "SRe2L", "cda": "CDA", "cudd": "CUDD", "full": "Full data"}


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


def results_path(study: str, preset: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or project_root()) / "results" / study / f"{preset}.csv"


def figures_dir(preset: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or project_root()) / "figures" / preset


# ---------------------------------------------------------------------------------------------
# The registry.

@dataclass(frozen=True)
class Study:
    name: str
    title: str
    compute: Callable[..., list[dict]]  # (Context, **params) -> rows
    draw: Callable[..., dict[str, Any]]  # (DataFrame, images dict) -> {figure name: matplotlib figure}


STUDIES: dict[str, Study] = {}


def study(name: str, title: str, draw: Callable[..., dict[str, Any]]):
    def register(fn):
        STUDIES[name] = Study(name, title, fn, draw)
        return fn
    return register


@dataclass
class Context:
    """What a study's compute function works with."""

    ws: Workspace
    preset: str
    images: dict[str, torch.Tensor]  # image tensors saved beside the CSV for the grid figures

    @property
    def cfg(self) -> RunConfig:
        return self.ws.cfg

    def ablation_ipc(self) -> int:
        """The IPC of the ablations: 10 where the preset has it, else its nearest smaller IPC."""
        small = [i for i in self.cfg.ipcs if i <= 10]
        return max(small) if small else min(self.cfg.ipcs)

    def default_students(self) -> tuple[str, ...]:
        """Student architectures for cross-architecture tables: the papers' ResNets on ImageNet-scale
        data; on small images, the preset's ConvNet, a ResNet-18 and a small ViT (add "mobilenet_v2"
        through the `students` parameter: on 2 CPU cores it costs minutes per cell)."""
        if self.cfg.data.name in ("imagenet1k", "imagenet21k", "tiny_imagenet"):
            return tuple(dict.fromkeys((self.cfg.eval.arch, "resnet18", "resnet50", "resnet101")))
        return tuple(dict.fromkeys((self.cfg.eval.arch, "resnet18", "vit_p4_d4_w128")))

    def cells(self, method: str, ipc: int, eval_cfg: EvalConfig | None = None, recover_cfg=None,
              **tags) -> list[dict]:
        """Long-format rows of one evaluated cell, over the preset's evaluation seeds."""
        rows = []
        for seed in self.cfg.eval_seeds:
            e = replace(eval_cfg or self.cfg.eval, seed=seed)
            metrics = self.ws.evaluation(method, ipc, e, recover_cfg)
            rows += self._rows(method, ipc, e, metrics, tags)
        return rows

    def _rows(self, method, ipc, e: EvalConfig, metrics: dict, tags: dict) -> list[dict]:
        base = dict(dataset=self.ws.info.name, method=method, ipc=ipc, teacher=self.cfg.squeeze.arch,
                    student=e.arch, labels=e.labels, seed=e.seed, **tags)
        return [dict(base, metric=k, value=v) for k, v in metrics.items()]

    def reference_rows(self) -> list[dict]:
        """The teacher's and the full-data student's accuracies (ipc empty)."""
        _, meta = self.ws.teacher()
        rows = self._rows("teacher", None, replace(self.cfg.eval, arch=self.cfg.squeeze.arch, labels="hard",
                                                   seed=self.cfg.squeeze.seed), meta["metrics"], {})
        if self.cfg.full_data:
            rows += self._rows("full", None, replace(self.cfg.eval, labels="hard", seed=self.cfg.squeeze.seed),
                               self.ws.full_data(), {})
        return rows


@dataclass
class StudyResult:
    name: str
    preset: str
    df: pd.DataFrame
    csv: Path
    figures: list[Path]
    cfg: RunConfig | None = None


def run(name: str, preset: str = "cpu", overrides: dict | None = None, root: str | os.PathLike | None = None,
        progress: bool = True, log: Callable[[str], None] = print, **params) -> StudyResult:
    """Run (or load from the cache) every cell of a study, write its results and draw its figures."""
    st = _get(name)
    root = Path(root or project_root())
    cfg = make_preset(preset, **(overrides or {}))
    resolve_device(cfg.device)  # a clear error now, not after the data has loaded
    if not os.path.isabs(cfg.cache_dir):
        cfg = replace(cfg, cache_dir=str(root / cfg.cache_dir))
    custom = _custom_params(st, params)
    # a run away from the defaults writes beside the default results, never over them
    tag = preset if not (overrides or custom) else f"{preset}-{config_hash(overrides or {}, custom)[:8]}"
    start = time.perf_counter()
    ctx = Context(Workspace(cfg, progress, log), preset, {})
    if cfg.device.startswith("cuda") or cfg.data.name != "fashion_mnist":
        log(f"{name}: preset {preset!r} on {cfg.data.name}, device {cfg.device}")
    rows = st.compute(ctx, **{k: v for k, v in params.items() if v is not None})
    csv = results_path(name, tag, root)
    provenance_config = {"preset": preset, "overrides": overrides or {}, "params": params,
                         "run": _json_ready(cfg)}
    # wall_seconds is this call, short when the artifacts come from the cache; build_seconds is what
    # those artifacts cost when they were built (each once; the teacher is shared by every study).
    df = write_results(rows, csv, provenance_config, time.perf_counter() - start, cfg.device,
                       extra=ctx.ws.cache.cost())
    if ctx.images:
        from .cache import save_torch
        save_torch(ctx.images, csv.with_suffix(".images.pt"))
    figures = redraw(name, tag, root)
    log(f"{name} ({tag}): {len(df)} rows in {csv}, {len(figures) // 2} figures, "
        f"{time.perf_counter() - start:.0f} s")
    return StudyResult(name, preset, df, csv, figures, cfg)


def _custom_params(st: Study, params: dict) -> dict:
    """The study parameters that differ from the defaults of its compute function; a clear error
    for a parameter it does not take."""
    sig = inspect.signature(st.compute)
    accepted = [n for n in sig.parameters if n != "ctx"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"study {st.name!r} takes no parameter {unknown}; it takes {accepted}")

    def norm(v):
        return tuple(v) if isinstance(v, (list, tuple)) else v

    return {k: v for k, v in params.items()
            if v is not None and norm(v) != norm(sig.parameters[k].default)}


def redraw(name: str, preset: str = "cpu", root: str | os.PathLike | None = None) -> list[Path]:
    """Draw a study's figures from its saved results alone (`preset`: the results' file stem, e.g.
    "cpu", or "cpu-<hash>" for a run with overrides)."""
    from .cache import load_torch

    st = _get(name)
    root = Path(root or project_root())
    csv = results_path(name, preset, root)
    df = read_results(csv)
    images_file = csv.with_suffix(".images.pt")
    images = load_torch(images_file, what="study images") if images_file.is_file() else {}
    paths = []
    for fig_name, fig in st.draw(df, images).items():
        paths += plots.save_figure(fig, figures_dir(preset, root) / f"{name}_{fig_name}")
    return paths


def load(name: str, preset: str = "cpu", root: str | os.PathLike | None = None) -> pd.DataFrame:
    return read_results(results_path(_get(name).name, preset, root))


def _get(name: str) -> Study:
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; choose one of {sorted(STUDIES)}")
    return STUDIES[name]


def _json_ready(cfg: RunConfig) -> dict:
    from .config import to_dict
    return to_dict(cfg)


def top1(df: pd.DataFrame, index, columns=None, metric: str = "top1") -> pd.DataFrame:
    """Mean top-1 over seeds as a pivot table (rows `index`, columns `columns`)."""
    sub = df[df.metric == metric]
    if columns is None:
        return sub.groupby(index, sort=False)["value"].mean().round(1).to_frame(metric)
    return sub.pivot_table(index=index, columns=columns, values="value", aggfunc="mean", sort=False).round(1)


def paper_numbers(name: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The papers' reported numbers from results/paper/<name>.csv (never ours): under `root`, else the
    project's own (an output root elsewhere holds our results, not the papers')."""
    places = [Path(p) / "results" / "paper" / f"{name}.csv"
              for p in dict.fromkeys([root or project_root(), project_root(), Path(__file__).resolve().parents[1]])]
    for path in places:
        if path.is_file():
            return pd.read_csv(path)
    raise FileNotFoundError(f"no paper numbers for {name!r}; looked at {[str(p) for p in places]}")


# ---------------------------------------------------------------------------------------------
# CDA paper.

def _draw_main(df: pd.DataFrame, images: dict) -> dict:
    per_ipc = df[df.ipc.notna()]
    main_student = _main_student(per_ipc)
    main = df[(df.student == main_student) | df.ipc.isna()]
    figs = {"accuracy_vs_ipc": plots.accuracy_vs_ipc(main, title=f"Student {main_student}: top-1 against IPC")}
    if images:
        figs["distilled_images"] = _grid(images)
    return figs


def _main_student(df: pd.DataFrame) -> str:
    """The student run at the most IPCs; on a tie the first in the rows (main_results runs it first)."""
    return df.groupby("student", sort=False).ipc.nunique().idxmax()


def _grid(images: dict):
    sets = {NAMES.get(k, k): (v["images"], v["labels"]) for k, v in images.items() if isinstance(v, dict)}
    return plots.distilled_grid(sets, images["classes"], per_class=4)


@study("cda_table2_main_results", "Main results: SRe2L against CDA across IPC and student", _draw_main)
def main_results(ctx: Context, ipcs=None, students=None, extra_student_max_ipc: int | None = None,
                 methods=("random", "sre2l", "cda")) -> list[dict]:
    """Every method at every IPC on the preset's student, plus other students at the smaller IPCs."""
    ipcs = tuple(ipcs or ctx.cfg.ipcs)
    students = tuple(dict.fromkeys(students or ctx.default_students()[:2]))
    cap = extra_student_max_ipc or (max(ipcs) if ctx.preset in ("paper", "tiny_imagenet", "imagenet21k") else 10)
    rows = []
    for i, arch in enumerate(students):  # the first student runs at every IPC, the others up to `cap`
        e = replace(ctx.cfg.eval, arch=arch)
        for ipc in ipcs:
            if i > 0 and ipc > cap:
                continue
            for method in methods:
                rows += ctx.cells(method, ipc, e)
    rows += ctx.reference_rows()
    grid_ipc = ctx.ablation_ipc() if ctx.ablation_ipc() in ipcs else min(ipcs)
    _keep_grid(ctx, methods, grid_ipc)
    return rows


def _teacher_top1(ctx: Context, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The teacher's top-1 (%) on uint8 images: how recognizable the synthesized images are to it."""
    teacher, _ = ctx.ws.teacher()
    dev = next(teacher.parameters()).device
    with torch.no_grad():
        pred = teacher.eval()(ctx.ws.info.normalize(images.to(dev))).argmax(1).cpu()
    return 100.0 * float((pred == labels.cpu()).float().mean())


def _keep_grid(ctx: Context, methods, ipc: int, per_class: int = 4) -> None:
    """Save the first images per class of each method's set, for the distilled-image grid."""
    for method in methods:
        d = ctx.ws.distilled(method, ipc)
        keep = torch.cat([torch.nonzero(d.labels == k).flatten()[:per_class]
                          for k in range(ctx.ws.info.num_classes)])
        ctx.images[method] = {"images": d.images[keep].cpu(), "labels": d.labels[keep].cpu()}
    ctx.images["classes"] = list(ctx.ws.info.classes or [str(i) for i in range(ctx.ws.info.num_classes)])


def _draw_steps(df: pd.DataFrame, images: dict) -> dict:
    if not images:
        return {}
    return {"grid": plots.synthesis_steps(images["snapshots"], images["classes"])}


@study("cda_fig_synthesis_steps", "Synthesized images at several recovery steps, SRe2L against CDA", _draw_steps)
def synthesis_steps(ctx: Context, ipc: int = 1, steps=None) -> list[dict]:
    """One recovery per method with snapshots at `steps` (default: 5%, 20%, 50% and 100% of the
    iterations); rows give the recovery loss at each step and the teacher's accuracy on the snapshot."""
    total = ctx.cfg.recover.iterations
    steps = tuple(sorted(set(steps or [max(1, round(f * total)) for f in (0.05, 0.2, 0.5, 1.0)])))
    if steps[0] < 1 or steps[-1] > total:
        raise ValueError(f"steps {steps}: each must be between 1 and the {total} recovery iterations")
    info, rows, snaps = ctx.ws.info, [], {}
    for method in ("sre2l", "cda"):
        rcfg = ctx.cfg.recover_for(method, ipc)
        d = ctx.ws.distilled(method, ipc, rcfg, snapshot_at=steps)
        for step in steps:
            images = d.snapshots[step]
            acc = _teacher_top1(ctx, images, d.labels)
            base = dict(dataset=info.name, method=method, ipc=ipc, teacher=ctx.cfg.squeeze.arch, student="",
                        labels="", seed=rcfg.seed, step=step)
            rows += [dict(base, metric="recover_loss", value=d.history["loss"][step - 1]),
                     dict(base, metric="recover_ce", value=d.history["ce"][step - 1]),
                     dict(base, metric="teacher_top1_on_images", value=acc)]
            first = torch.cat([torch.nonzero(d.labels == k).flatten()[:1] for k in range(info.num_classes)])
            snaps[f"{NAMES[method]}, step {step}"] = images[first].cpu()
    ctx.images["snapshots"] = snaps
    ctx.images["classes"] = list(info.classes or [str(i) for i in range(info.num_classes)])
    return rows


def _curriculum(schedule: str, milestone: float = 1.0, end: float = 0.08, start: float = 1.0,
                reverse: bool = False) -> CurriculumConfig:
    return CurriculumConfig(schedule=schedule, milestone=milestone, start_scale=start, end_scale=end,
                            reverse=reverse)


def _schedule_rows(ctx: Context, variants: dict[str, CurriculumConfig], ipc: int) -> list[dict]:
    """Evaluate each curriculum variant; rows carry the variant and the curriculum's fields."""
    rows = []
    for label, cur in variants.items():
        rcfg = replace(ctx.cfg.recover, ipc=ipc, curriculum=cur)
        method = "sre2l" if cur.schedule == "none" else "cda"
        rows += ctx.cells(method, ipc, recover_cfg=rcfg, variant=label, schedule=cur.schedule,
                          milestone=cur.milestone, start_scale=cur.start_scale, end_scale=cur.end_scale,
                          reverse=cur.reverse)
    return rows


def _draw_scheduler(df: pd.DataFrame, images: dict) -> dict:
    return {"crop_schedules": plots.crop_schedules(_curricula(df)),
            "ablation": plots.scheduler_ablation(df)}


def _curricula(df: pd.DataFrame) -> dict[str, CurriculumConfig]:
    out = {}
    for label, g in df.groupby("variant", sort=False):
        r = g.iloc[0]
        out[label] = _curriculum(r.schedule, float(r.milestone), float(r.end_scale), float(r.start_scale),
                                 bool(r.reverse))
    return out


@study("cda_ablation_scheduler", "Curriculum scheduler ablation: step, linear and cosine by milestone",
       _draw_scheduler)
def scheduler_ablation(ctx: Context, ipc: int | None = None, schedules=("step", "linear", "cosine"),
                       milestones=(0.5, 1.0)) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    variants = {"SRe2L (no curriculum)": _curriculum("none")}
    for s in schedules:
        for m in milestones:
            variants[f"{s}, milestone {m:g}"] = _curriculum(s, m)
    return _schedule_rows(ctx, variants, ipc)


def _draw_direction(df: pd.DataFrame, images: dict) -> dict:
    return {"crop_schedules": plots.crop_schedules(_curricula(df)),
            "ablation": plots.bar_top1(df, "variant", "Curriculum direction")}


@study("cda_ablation_direction", "Curriculum direction: easy to hard, hard to easy, and constant crop ranges",
       _draw_direction)
def direction_ablation(ctx: Context, ipc: int | None = None, constant_lower_bounds=(0.08, 0.5, 1.0)) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    variants = {"easy to hard (CDA, cosine)": _curriculum("cosine"),
                "hard to easy (reverse cosine)": _curriculum("cosine", reverse=True)}
    for lo in constant_lower_bounds:
        variants[f"constant ({lo:g}, 1)" + (" = SRe2L" if lo == 0.08 else "")] = _curriculum("none", end=lo)
    return _schedule_rows(ctx, variants, ipc)


def _draw_lower_bound(df: pd.DataFrame, images: dict) -> dict:
    return {"crop_schedules": plots.crop_schedules(_curricula(df)),
            "ablation": plots.line_top1(df, "end_scale", "method", "crop scale lower bound")}


@study("cda_ablation_crop_lower_bound", "The crop scale's lower bound, with and without the curriculum",
       _draw_lower_bound)
def lower_bound_ablation(ctx: Context, ipc: int | None = None, lower_bounds=(0.08, 0.2, 0.4),
                         with_sre2l: bool = False) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    variants = {f"CDA cosine to {lo:g}": _curriculum("cosine", end=lo) for lo in lower_bounds}
    if with_sre2l:
        variants.update({f"SRe2L constant ({lo:g}, 1)": _curriculum("none", end=lo) for lo in lower_bounds})
    else:
        variants["SRe2L constant (0.08, 1)"] = _curriculum("none")
    return _schedule_rows(ctx, variants, ipc)


def _draw_budget(df: pd.DataFrame, images: dict) -> dict:
    return {"loss_curves": plots.recovery_curves(df), "accuracy": plots.line_top1(
        df[df.metric == "top1"], "iterations", "method", "recovery iterations", logx=True)}


@study("cda_recovery_budget", "Recovery budget and convergence: loss and accuracy against iterations",
       _draw_budget)
def recovery_budget(ctx: Context, ipc: int | None = None, iterations=None, curve_points: int = 100) -> list[dict]:
    """SRe2L and CDA at several recovery budgets (default: 0.1, 0.2, 0.5 and 1 times the preset's);
    the loss curves of each run are kept (`curve_points` points per run) to test the claim of faster
    convergence."""
    ipc = ipc or ctx.ablation_ipc()
    iterations = iterations or _scaled(ctx.cfg.recover.iterations, (0.1, 0.2, 0.5, 1))
    rows = []
    for method in ("sre2l", "cda"):
        for its in iterations:
            rcfg = replace(ctx.cfg.recover_for(method, ipc), iterations=its)
            rows += ctx.cells(method, ipc, recover_cfg=rcfg, iterations=its)
            d = ctx.ws.distilled(method, ipc, rcfg)
            every = max(1, its // curve_points)
            base = dict(dataset=ctx.ws.info.name, method=method, ipc=ipc, teacher=ctx.cfg.squeeze.arch,
                        student="", labels="", seed=rcfg.seed, iterations=its)
            for term in ("loss", "ce"):
                h = d.history[term]
                rows += [dict(base, metric=f"curve_{term}", step=i + 1, value=h[i])
                         for i in range(every - 1, its, every)]
    return rows


def _scaled(value: int, factors) -> tuple[int, ...]:
    return tuple(sorted({max(1, round(value * f)) for f in factors}))


def _draw_eval_budget(df: pd.DataFrame, images: dict) -> dict:
    return {"epochs": plots.line_top1(df[df.varied == "epochs"], "epochs", "method", "student epochs", logx=True),
            "batch_size": plots.line_top1(df[df.varied == "batch_size"], "batch_size", "method",
                                          "student batch size", logx=True)}


@study("cda_eval_budget", "Evaluation budget: the student's epochs and batch size", _draw_eval_budget)
def eval_budget(ctx: Context, ipc: int | None = None, epochs=None, batch_sizes=None,
                methods=("sre2l", "cda")) -> list[dict]:
    """Student epochs (default 0.25 to 2 times the preset's) at the preset's batch size, and batch
    sizes (half to twice) at the preset's epochs."""
    ipc = ipc or ctx.ablation_ipc()
    base = ctx.cfg.eval
    epochs = epochs or _scaled(base.aug.epochs, (0.25, 0.5, 1, 2))
    batch_sizes = batch_sizes or _scaled(base.aug.batch_size, (0.5, 1, 2))
    rows = []
    for method in methods:
        for ep in epochs:
            e = replace(base, aug=replace(base.aug, epochs=ep))
            rows += ctx.cells(method, ipc, e, varied="epochs", epochs=ep, batch_size=base.aug.batch_size)
        for bs in batch_sizes:
            e = replace(base, aug=replace(base.aug, batch_size=bs))
            rows += ctx.cells(method, ipc, e, varied="batch_size", epochs=base.aug.epochs, batch_size=bs)
    return rows


def _draw_cross(df: pd.DataFrame, images: dict) -> dict:
    return {"heatmap": plots.heatmap(top1(df, "method", "student"), "student architecture",
                                     f"recovered with {df.teacher.iloc[0]}")}


@study("cda_cross_architecture", "Cross-architecture: recover with one model, evaluate on others", _draw_cross)
def cross_architecture(ctx: Context, ipc: int | None = None, students=None,
                       methods=("random", "sre2l", "cda")) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    rows = []
    for arch in students or ctx.default_students():
        for method in methods:
            rows += ctx.cells(method, ipc, replace(ctx.cfg.eval, arch=arch))
    return rows


# ---------------------------------------------------------------------------------------------
# CUDD paper.

def _cudd_ipcs(ctx: Context) -> tuple[int, ...]:
    """CUDD's IPCs: the preset's IPCs of 10 and more (its first stage needs room), else the largest."""
    big = tuple(i for i in ctx.cfg.ipcs if i >= 10)
    return big or (max(ctx.cfg.ipcs),)


def _draw_cudd_main(df: pd.DataFrame, images: dict) -> dict:
    figs = {"accuracy_vs_ipc": plots.accuracy_vs_ipc(df, title="Student top-1 against IPC")}
    if images:
        figs["distilled_images"] = _grid(images)
    return figs


@study("cudd_main_results", "CUDD main results: CUDD against CDA, SRe2L and random real images", _draw_cudd_main)
def cudd_main(ctx: Context, ipcs=None, methods=("random", "sre2l", "cda", "cudd")) -> list[dict]:
    rows = []
    for ipc in ipcs or _cudd_ipcs(ctx):
        for method in methods:
            rows += ctx.cells(method, ipc)
    rows += ctx.reference_rows()
    _keep_grid(ctx, [m for m in ("sre2l", "cda", "cudd") if m in methods], min(ipcs or _cudd_ipcs(ctx)))
    return rows


def _draw_cudd_ablation(df: pd.DataFrame, images: dict) -> dict:
    return {"ablation": plots.bar_top1(df, "variant", "CUDD ablation")}


CUDD_ABLATIONS = {
    "CUDD (full)": {},
    "no adversarial term": {"adv": 0.0},
    "no L2 term": {"l2": 0.0},
    # from noise, the L2 pull to the initial image would pull towards noise, so it is off too
    "noise init, no L2 (no real images)": {"real_init": False, "l2": 0.0},
    "one stage (no curriculum)": {"stages": "one"},
}


@study("cudd_ablation", "CUDD ablation: real-image init, L2 term, adversarial term, curriculum stages",
       _draw_cudd_ablation)
def cudd_ablation(ctx: Context, ipc: int | None = None, variants=tuple(CUDD_ABLATIONS)) -> list[dict]:
    ipc = ipc or _cudd_ipcs(ctx)[0]
    full = ctx.cfg.cudd_for(ipc)
    rows = []
    for label in variants:
        changes = dict(CUDD_ABLATIONS[label])
        if changes.get("stages") == "one":
            changes["stages"] = (ipc,)
        c = replace(full, **changes)
        rows += ctx.cells("cudd", ipc, recover_cfg=c, variant=label, stages=str(list(c.stages)),
                          adv=c.adv, l2=c.l2, real_init=c.real_init)
    rows += ctx.cells("cda", ipc, variant="CDA (reference)")
    rows += ctx.cells("sre2l", ipc, variant="SRe2L (reference)")
    return rows


@study("cudd_cross_architecture", "CUDD cross-architecture: CUDD, CDA and SRe2L sets on other students",
       _draw_cross)
def cudd_cross_architecture(ctx: Context, ipc: int | None = None, students=None,
                            methods=("sre2l", "cda", "cudd")) -> list[dict]:
    return cross_architecture(ctx, ipc or _cudd_ipcs(ctx)[0], students, methods)


def _draw_noise(df: pd.DataFrame, images: dict) -> dict:
    return {"robustness": plots.line_top1(df[df.metric == "top1"], "sigma", "method", "test noise std (pixels in [0, 1])")}


@study("cudd_noise_robustness", "Robustness to noise: students tested on images with Gaussian noise", _draw_noise)
def noise_robustness(ctx: Context, ipc: int | None = None, sigmas=(0.0, 0.1, 0.2, 0.3),
                     methods=("random", "sre2l", "cda", "cudd")) -> list[dict]:
    ipc = ipc or _cudd_ipcs(ctx)[0]
    sigmas = tuple(float(s) for s in sigmas)
    rows = []
    for method in methods:
        for seed in ctx.cfg.eval_seeds:
            e = replace(ctx.cfg.eval, seed=seed)
            for sigma, metrics in ctx.ws.robustness(method, ipc, sigmas, e).items():
                rows += ctx._rows(method, ipc, e, metrics, {"sigma": sigma})
    return rows


def _draw_visual(df: pd.DataFrame, images: dict) -> dict:
    if not images:
        return {}
    return {"grid": plots.distilled_grid({k: (v["images"], v["labels"]) for k, v in images["sets"].items()},
                                         images["classes"], per_class=images["per_class"])}


@study("cudd_fig_visual_comparison", "Visual comparison: CUDD images, their real initializations, and SRe2L's",
       _draw_visual)
def cudd_visual(ctx: Context, ipc: int | None = None, per_class: int = 3) -> list[dict]:
    """The first images per class of CUDD's set next to the real images they started from and the
    SRe2L set; rows give each set's per-image distance to its real start and the teacher's accuracy."""
    ipc = ipc or _cudd_ipcs(ctx)[0]
    info = ctx.ws.info
    cudd = ctx.ws.distilled("cudd", ipc)
    sre2l = ctx.ws.distilled("sre2l", ipc)
    sources = torch.as_tensor(cudd.meta["seeds"])  # class-major, like the images
    keep = torch.cat([torch.nonzero(cudd.labels == k).flatten()[:per_class] for k in range(info.num_classes)])
    sets = {"CUDD": (cudd.images, cudd.labels), "SRe2L": (sre2l.images, sre2l.labels)}
    if bool((sources >= 0).all()):
        sets = {"real init": (ctx.ws.train.take(sources), cudd.labels), **sets}
    rows = []
    for name, (images, labels) in sets.items():
        acc = _teacher_top1(ctx, images, labels)
        base = dict(dataset=info.name, method=name, ipc=ipc, teacher=ctx.cfg.squeeze.arch, student="",
                    labels="", seed=0)
        rows.append(dict(base, metric="teacher_top1_on_images", value=acc))
        if "real init" in sets:
            real = sets["real init"][0].float()
            rows.append(dict(base, metric="mean_abs_pixel_change_from_real_init",
                             value=float((images.float() - real).abs().mean()) if name != "SRe2L" else float("nan")))
    sel = {name: {"images": im[keep].cpu(), "labels": lb[keep].cpu()} for name, (im, lb) in sets.items()}
    ctx.images.update(sets=sel, classes=list(info.classes or [str(i) for i in range(info.num_classes)]),
                      per_class=per_class)
    return rows


# ---------------------------------------------------------------------------------------------
# The tables each notebook shows: (caption, DataFrame) pairs computed from the results alone.

def tables(name: str, df: pd.DataFrame, root: str | os.PathLike | None = None) -> list[tuple[str, pd.DataFrame]]:
    return _TABLES.get(name, _default_tables)(df, root)


def _default_tables(df, root):
    return [("Student top-1 (%)", top1(df, ["method", "ipc"]))]


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
    return out[["source", "dataset", "ipc", "student", base, new, "gain"]].round(1)


def _try_paper(name, root):
    try:
        return paper_numbers(name, root)
    except FileNotFoundError:
        return None


def _main_tables(df, root):
    main_student = _main_student(df[df.ipc.notna()])
    out = [(f"Top-1 (%) with student {main_student}", accuracy_table(df[(df.student == main_student) | df.ipc.isna()])),
           ("Top-1 (%) by student architecture", top1(df[df.ipc.notna()], ["student", "ipc"], "method")),
           ("CDA minus SRe2L (points): ours beside the paper's main table",
            gain_table(df, _try_paper("cda_table2_main_results", root))),
           ("Wall time per step (s)", timing_table(df[df.student == main_student]))]
    return out


def _steps_tables(df, root):
    return [("Recovery loss and the teacher's top-1 on the images at each step",
             df.pivot_table(index=["method", "step"], columns="metric", values="value", sort=False).round(3))]


def _scheduler_tables(df, root):
    sub = df[df.schedule != "none"]
    return [("Top-1 (%) by schedule and milestone", top1(sub, "schedule", "milestone")),
            ("Top-1 (%) by variant", top1(df, "variant"))]


def _variant_tables(df, root):
    return [("Top-1 (%) by variant", top1(df, "variant"))]


def _budget_tables(df, root):
    return [("Top-1 (%) by recovery iterations", top1(df, "method", "iterations")),
            ("Recovery wall time (s)", top1(df, "method", "iterations", metric="recover_seconds")),
            ("Final recovery loss (mean of the last 10% of the curve)",
             df[df.metric == "curve_loss"].groupby(["method", "iterations"]).apply(
                 lambda g: g.sort_values("step").value.iloc[-max(1, len(g) // 10):].mean(),
                 include_groups=False).unstack().round(3))]


def _eval_budget_tables(df, root):
    return [("Top-1 (%) by student epochs", top1(df[df.varied == "epochs"], "method", "epochs")),
            ("Top-1 (%) by student batch size", top1(df[df.varied == "batch_size"], "method", "batch_size"))]


def _cross_tables(df, root):
    return [("Top-1 (%) by method and student architecture", top1(df, "method", "student")),
            ("Student training time (s)", top1(df, "method", "student", metric="seconds"))]


def _cudd_main_tables(df, root):
    return [("Top-1 (%)", accuracy_table(df)),
            ("CUDD minus CDA (points): ours beside the paper's (ImageNet-1K, third-party transcription)",
             gain_table(df, _try_paper("cudd_main_results", root), "cda", "cudd")),
            ("Wall time per step (s)", timing_table(df))]


def _noise_tables(df, root):
    return [("Top-1 (%) by test noise std", top1(df, "method", "sigma"))]


def _visual_tables(df, root):
    return [("Per set", df.pivot_table(index="method", columns="metric", values="value", sort=False).round(2))]


_TABLES = {"cda_table2_main_results": _main_tables, "cda_fig_synthesis_steps": _steps_tables,
           "cda_ablation_scheduler": _scheduler_tables, "cda_ablation_direction": _variant_tables,
           "cda_ablation_crop_lower_bound": _variant_tables, "cda_recovery_budget": _budget_tables,
           "cda_eval_budget": _eval_budget_tables, "cda_cross_architecture": _cross_tables,
           "cudd_main_results": _cudd_main_tables, "cudd_ablation": _variant_tables,
           "cudd_cross_architecture": _cross_tables, "cudd_noise_robustness": _noise_tables,
           "cudd_fig_visual_comparison": _visual_tables}
