"""Students validated during training: the last student (what every table reports, as the papers do)
against the one that scored best on held-out validation images, for random real images, SRe2L and CDA.

No paper states a claim about this; it checks our protocol: would picking the best-on-validation
student change CDA − SRe2L? (cda.student_validation, EvalConfig.val_every)
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from .. import methods as registry
from .. import plots
from ..cells import Pending
from ..config import RunConfig
from ..verdicts import paired_difference
from ._core import Context, Notebook, readable, study

NAME = "cda_best_vs_last_student"
HELD_OUT = 10  # validation images per class where the preset holds out none (smoke; the GPU presets)
CURVE_POINTS = 20  # validations per student by default (the official code's every 10 of 300 epochs: 30)


def with_validation(cfg: RunConfig) -> RunConfig:
    """The run with a validation split: the preset's (cpu, digits), else HELD_OUT images per class
    held out of the training set (the test split is never touched). Where the preset holds out none,
    its training split, and so the teacher and the sets, are this study's own: at the GPU presets
    choose the split with `data.validation` in the overrides, before anything is built."""
    return cfg if cfg.data.validation else replace(cfg, data=replace(cfg.data, validation=HELD_OUT))


def curve_rows(rows: list) -> list:
    """The rows with each student's validation curve (one metric holding [epoch, top-1] pairs) as one
    `val_top1` row per validation, at its `epoch`; a Pending student's once it has run."""
    out = []
    for item in rows:
        if isinstance(item, Pending):
            out.append(Pending(lambda p=item: curve_rows(p.compute())))
        elif item["metric"] == "val_curve":
            out += [dict(item, metric="val_top1", epoch=int(e), value=float(v)) for e, v in item["value"]]
        else:
            out.append(item)
    return out


def _per_seed(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """seed x method table of one metric."""
    return df[df.metric == metric].pivot_table(index="seed", columns="method", values="value", sort=False)


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.1f}" + ("" if len(values) < 2 else f" ± {values.std():.1f}")


def selection_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per set: the last and the best-on-validation student's test top-1 (mean ± std over seeds), the
    epoch of the best, and its validation top-1."""
    rows = {}
    for method in dict.fromkeys(df.method):
        g = df[df.method == method]
        metric = dict(tuple(g.groupby("metric").value))
        rows[registry.label(method)] = {
            "last (the tables')": _mean_std(metric["top1"]),
            "best on validation": _mean_std(metric["best_top1"]),
            "best − last (points)": _mean_std(_per_seed(g, "best_top1")[method] - _per_seed(g, "top1")[method]),
            "epoch of the best": _mean_std(metric["best_epoch"]),
            "its validation top-1": _mean_std(metric["best_val_top1"])}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "set"
    return table


def _cell(d: dict) -> str:
    if d["n"] < 2:
        return f"{d['mean']:+.1f} (1 seed)"
    return f"{d['mean']:+.1f} [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]"


def difference_table(df: pd.DataFrame, pairs=(("cda", "sre2l"), ("cda", "random"), ("sre2l", "random"))) -> pd.DataFrame:
    """a − b (points, paired by seed, 95% t-interval) with the last students, with the best on
    validation, and how much the choice moves it (best − last of the differences)."""
    rows = {}
    last, best = _per_seed(df, "top1"), _per_seed(df, "best_top1")
    for a, b in pairs:
        if a not in last or b not in last:
            continue
        both = pd.concat({"a_last": last[a], "b_last": last[b], "a_best": best[a], "b_best": best[b]},
                         axis=1).dropna()  # the seeds both sets have
        with_last = both.a_last - both.b_last
        with_best = both.a_best - both.b_best
        rows[f"{registry.label(a)} − {registry.label(b)}"] = {
            "last students": _cell(paired_difference(both.a_last, both.b_last)),
            "best on validation": _cell(paired_difference(both.a_best, both.b_best)),
            "best − last": _cell(paired_difference(with_best, with_last)),
            "seeds": len(both)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "difference (points)"
    return table


def _tables(df: pd.DataFrame, root) -> list:
    return [("Test top-1 (%) of the last student and of the best on validation, mean ± std over seeds",
             selection_table(df)),
            ("Differences between sets (points), paired by seed, with their 95% t-intervals: with the last "
             "students (what the tables use), with the best on validation, and how much the choice moves them",
             difference_table(df)),
            ("Validation top-1 (%) against the epoch, mean over seeds",
             readable(df[df.metric == "val_top1"].pivot_table(index="epoch", columns="method", values="value",
                                                             sort=False).round(1)))]


@plots._themed
def validation_curves(df: pd.DataFrame):
    """Validation top-1 against the epoch, one line per set: the mean over seeds, the band their
    spread (± one std), and each set's best epochs as dots on its line."""
    sub = df[df.metric == "val_top1"]
    fig, ax = plots.new_figure(figsize=(5.5, 3.4))
    for i, (method, g) in enumerate(sub.groupby("method", sort=False)):
        stats = g.groupby("epoch")["value"].agg(["mean", "std"]).reset_index()
        color = plots.method_color(method, i)
        ax.plot(stats.epoch, stats["mean"], color=color, label=registry.label(method))
        ax.fill_between(stats.epoch, stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0),
                        color=color, alpha=0.2, lw=0)
        best = df[(df.method == method) & (df.metric == "best_epoch")].value
        picked = stats.set_index("epoch")["mean"].reindex(best.astype(int)).dropna()
        ax.plot(picked.index, picked.values, "o", color=color, ms=4)
    ax.set_xlabel("student epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title("Students validated during training (dots: each seed's best epoch)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@study(NAME, "Students validated during training: the best-on-validation student against the last",
       grid=("method",), config=with_validation,
       draw=lambda df, images: {"validation_curves": validation_curves(df)},
       tables=_tables,
       notebook=Notebook(
           title="Students validated during training: the best-on-validation student against the last (random, SRe2L, CDA)",
           claim="""**What this checks.** Every table here reports the **last** student, as both papers do. The
official FKD/CUDD student code also validates the student every 10 epochs and at the last, and saves the
best and the last checkpoints; its validation images are the test set, so its "best" is chosen on the test
set. No paper states a claim about the choice, so this notebook judges no claim of the papers: it is a
check of our protocol (ours). Would picking the student that scored best on validation change CDA − SRe2L?

**How this notebook tests it.** At the ablations' IPC, the random-real, SRe2L and CDA sets of the study's
seeds train students that are tested on the **validation split** (training images held out of every
set and of the teacher: the `cpu` and `digits` presets' own; where a preset holds out none, 10 per class)
every `val_every` epochs and at the last. Both the last student and the best on validation are then
tested on the test set, which plays no part in the choice. The validation pass leaves the training
untouched: a validated student is the unvalidated one, step for step (`cda.student_validation`).""",
           params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"),
                   ("val_every", None, "epochs between validations (None: a twentieth of the student's epochs)")],
           reading="""**Reading the result.** The first table puts each set's last student beside its best on
validation; the second gives CDA − SRe2L (and each against random real images) with either choice, and
how much the choice moves the difference. If that last interval covers zero, choosing the best student
would not change the comparison the other notebooks make with the last one. A best epoch well before the
last means the student overfits its few images; the curves show where."""))
def best_vs_last(ctx: Context, ipc: int | None = None, val_every: int | None = None,
                 methods=("random", "sre2l", "cda")) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    rows = []
    for method in methods:
        e = ctx.cfg.eval_for(method)
        every = val_every or max(1, e.aug.epochs // CURVE_POINTS)
        rows += ctx.cells(method, ipc, replace(e, val_every=every), val_every=every)
    return curve_rows(rows)
