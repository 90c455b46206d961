"""The squeeze-model grid (CDA Tables 6–7): which model recovers the images × which student learns
from them. Each recovery model is its own teacher (squeeze = recovery = relabel model, as in the
papers), reached through `Context.for_teacher`; students of several architectures learn from each
teacher's sets with that teacher's soft labels."""
from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd

from .. import plots
from ..config import SqueezeConfig
from ..verdicts import Claim
from ._core import NAMES, Context, Notebook, readable, study, top1

NAME = "cda_squeeze_grid"
_CONVNET = re.compile(r"^convnet(\d+)(_w\d+)?$")  # a BatchNorm ConvNet (the only kind that recovers)


def recovery_models(ctx: Context, given=None) -> tuple[SqueezeConfig, ...]:
    """The recovery models: `given` as [arch, epochs] pairs (epochs None: the preset's), else at
    ImageNet scale the papers' released ResNet-18/50/101 (the preset's weights, no budget axis), and
    on small images the preset's ConvNet at its budget and at a quarter of it (a weaker teacher), and
    a ConvNet one block deeper (shallower where the image is too small to halve again) at a quarter;
    at the smoke preset the first two."""
    s = ctx.cfg.squeeze
    if given:
        return tuple(dict.fromkeys(replace(s, arch=arch, epochs=epochs or s.epochs) for arch, epochs in given))
    if s.pretrained:
        return tuple(replace(s, arch=a) for a in dict.fromkeys((s.arch, "resnet18", "resnet50", "resnet101")))
    match = _CONVNET.match(s.arch)
    if not match:
        raise ValueError(f"{NAME}: no default grid for the teacher {s.arch!r}; pass teachers=[[arch, epochs], ...]")
    depth = int(match[1])
    other = depth + 1 if ctx.ws.info.image_size >> (depth + 1) else depth - 1
    quarter = max(1, s.epochs // 4)
    grid = (s, replace(s, epochs=quarter), replace(s, arch=f"convnet{other}{match[2] or ''}", epochs=quarter))
    return tuple(dict.fromkeys(grid[:2] if ctx.preset == "smoke" else grid))  # smoke: CI's seconds


def student_archs(ctx: Context, given=None) -> tuple[str, ...]:
    """The students: `given`, else the preset's own (the papers' ResNets), else on small images the
    preset's ConvNet and the same without normalization (a student that cannot use the BatchNorm
    statistics the images were matched to; the instance-norm ConvNet costs about twice as much per
    step on 2 CPU cores); at the smoke preset the first."""
    if given:
        return tuple(given)
    if ctx.cfg.students:
        return ctx.default_students()
    arch = ctx.cfg.eval.arch
    return (arch, f"{arch}_none") if _CONVNET.match(arch) and ctx.preset != "smoke" else (arch,)


def _epochs(s: SqueezeConfig) -> int | None:
    return None if s.pretrained else s.epochs  # released weights: no budget of ours


def _recovery_model(df: pd.DataFrame) -> pd.Series:
    """Each row's recovery model for people: "convnet3, 20 epochs" (released weights: the name)."""
    return pd.Series([t if pd.isna(e) else f"{t}, {int(e)} epochs" for t, e in zip(df.teacher, df.teacher_epochs)],
                     index=df.index)


def _in_grid_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with their recovery model, ordered as the grid lists the teachers (their own rows come
    in that order; the students' were computed in another)."""
    df = df.assign(recovery_model=_recovery_model(df))
    order = list(dict.fromkeys(df[df.method == "teacher"].recovery_model))
    rank = df.recovery_model.map({m: i for i, m in enumerate(order)}).fillna(len(order))
    return df.iloc[rank.argsort(kind="stable")]


def _students_top1(df: pd.DataFrame) -> pd.DataFrame:
    return _in_grid_order(df[((df.metric == "top1") & df.ipc.notna()) | (df.method == "teacher")])


def _gain(df: pd.DataFrame) -> pd.DataFrame:
    """CDA − SRe2L top-1 (points), mean over seeds: recovery model × student."""
    sub = _students_top1(df)
    sub = sub[sub.method != "teacher"]
    means = sub.pivot_table(index=["recovery_model", "student"], columns="method", values="value",
                            aggfunc="mean", sort=False)
    gain = (means["cda"] - means["sre2l"]).unstack("student")
    order = list(dict.fromkeys(sub.recovery_model))
    return gain.reindex(index=order, columns=list(dict.fromkeys(sub.student)))


def draw(df: pd.DataFrame, images: dict) -> dict:
    """One heatmap per method (recovery model × student), and CDA − SRe2L per cell."""
    import seaborn as sns

    sub = _students_top1(df)
    sub = sub[sub.method != "teacher"]
    methods = list(dict.fromkeys(sub.method))
    panels = [(m, top1(sub[sub.method == m], "recovery_model", "student")) for m in methods]
    if {"sre2l", "cda"} <= set(methods):
        panels.append(("CDA − SRe2L (points)", _gain(df).round(1)))
    rows, cols = panels[0][1].shape
    fig, axes = plots.new_figure(1, len(panels), figsize=(len(panels) * (1.3 * cols + 2.4), 0.6 * rows + 1.6),
                                 squeeze=False)
    for ax, (name, table) in zip(axes[0], panels):
        diff = name.startswith("CDA − ")
        lim = max(1.0, float(table.abs().max().max())) if diff else None
        sns.heatmap(table.astype(float), annot=True, fmt=".1f", ax=ax, cmap="RdBu" if diff else "viridis",
                    vmin=-lim if diff else None, vmax=lim if diff else None,
                    cbar_kws={"label": "points" if diff else "top-1 (%)"})
        ax.set_title(name if diff else NAMES[name])
        ax.set_xlabel("student")
        ax.set_ylabel("recovery model" if ax is axes[0][0] else "")
    fig.tight_layout()
    return {"heatmap": fig}


def tables(df: pd.DataFrame, root) -> list:
    df = _in_grid_order(df)
    students, teachers = df[df.ipc.notna()], df[df.method == "teacher"]
    return [("Top-1 (%) by method, recovery model and student (mean over seeds)",
             top1(students, ["method", "recovery_model"], "student")),
            ("CDA − SRe2L top-1 (points) by recovery model and student (mean over seeds)", readable(_gain(df).round(1))),
            ("The recovery models' own top-1 (%) on the test set", top1(teachers, "recovery_model")),
            ("Recovery time (s) per set by method and recovery model (mean over seeds)",
             top1(students, "recovery_model", "method", metric="recover_seconds"))]


@study(NAME, "The squeeze-model grid: which model recovers the images × which student learns from them",
       grid=("method", "teacher", "teacher_epochs", "student"),
       claims=(
           Claim("cda-beats-sre2l-any-recovery-model", "CDA", "CDA beats SRe2L whichever model recovers the images",
                 "Tables 6–7 (ICLR version; values not found: /work/shared/research/papers.md)",
                 {"method": "cda"}, {"method": "sre2l"}, by=("teacher", "teacher_epochs", "student")),
       ),
       draw=draw, tables=tables,
       notebook=Notebook(
           title="CDA squeeze-model grid: which model recovers the images × which student learns from them "
                 "(Tables 6–7)",
           claim="""**Claim.** CDA's images beat SRe2L's whichever model squeezes the data and recovers the
images (CDA's Tables 6–7 in its ICLR version, experiments "exclusively on the ResNet family"; a reviewer
describes them, and their values were not found, so there is no paper number beside ours).

**How this notebook tests it.** Each recovery model is its own teacher: trained on the full training
set (squeeze), it recovers the SRe2L and CDA sets and relabels them for the students (as in the papers,
the squeeze, recovery and relabel model are one). Students of several architectures learn from every
teacher's sets. On small images the recovery models are the preset's ConvNet at its training budget, the
same at a quarter of the budget (a weaker teacher), and a ConvNet one block deeper (shallower on 8-px
digits) at a quarter of the budget; the students are the preset's ConvNet and the same without
normalization (the instance-norm ConvNet costs about twice as much per step on 2 CPU cores). At the
`smoke` preset only the first two teachers and the first student run. At the `paper` preset the grid is
the papers' ResNet-18/50/101 as teachers and students. The claim is judged per cell (recovery model, its
budget, student): CDA − SRe2L paired by seed.""",
           params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"),
                   ("teachers", None, "recovery models as [arch, epochs] pairs (default: see above)"),
                   ("students", None, "student architectures (default: see above)")],
           reading="""**Reading the result.** Rows are recovery models (with their training budget), columns
students; one heatmap per method and one of CDA − SRe2L. What differs from the paper: ConvNets on
Fashion-MNIST (28 px, 10 classes) instead of the ResNet family on ImageNet-1K, teachers trained here for a
few epochs instead of released weights, and no random-real control row (it would add a third of the cost;
pass `methods=("random", "sre2l", "cda")` through `cda study` to add it). A weaker or different recovery
model changes both the images and the soft labels, so a row's level mixes the two; the CDA − SRe2L
difference within a row compares images made by the same teacher and labeled by it."""))
def squeeze_grid(ctx: Context, ipc: int | None = None, teachers=None, students=None,
                 methods=("sre2l", "cda")) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    grid = recovery_models(ctx, teachers)
    rows = []
    # student by student (the first student's column is done first), the preset's teacher last: it is
    # shared with the other studies and may still be in the making in another process
    for arch in student_archs(ctx, students):
        for s in sorted(grid, key=lambda s: s == ctx.cfg.squeeze):
            t = ctx.for_teacher(s)
            for method in methods:
                rows += t.cells(method, ipc, replace(t.cfg.eval_for(method), arch=arch), teacher_epochs=_epochs(s))
    for s in grid:
        rows += ctx.for_teacher(s).reference_rows(full_data=False, teacher_epochs=_epochs(s))
    return rows
