"""CUDD's two official student losses side by side: the KL divergence to the teacher's soft labels
(every table's) and `--loss-type mse_gt`, MSE between the student's and the teacher's logits plus
0.1 x cross-entropy with the image's class (MIV-XJTU/CUDD@0bf778c training/train_FKD.py:273;
cda.student.mse_gt_loss), on the CUDD sets (SRe2L's and CDA's through `methods`). No paper states a claim about the
choice: this compares the official options.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from .. import methods as registry
from .. import plots
from ..verdicts import paired_difference
from ._core import Context, Notebook, check_known, study, top1
from .cudd import cudd_ipcs

NAME = "cudd_student_loss"
LOSSES = {"kl": "KL", "mse_gt": "MSE + 0.1 CE"}  # EvalConfig.loss -> what the tables call it


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with a `set and loss` column: "CUDD, KL", "CUDD, MSE + 0.1 CE", ..."""
    return df.assign(**{"set and loss": [f"{registry.label(m)}, {LOSSES.get(lo, lo)}"
                                         for m, lo in zip(df.method, df.loss)]})


def loss_difference(df: pd.DataFrame, a: str = "mse_gt", b: str = "kl") -> pd.DataFrame:
    """Per set: loss `a` minus loss `b` in test top-1 (points), paired by seed, with its 95% t-interval."""
    top = df[df.metric == "top1"]
    rows = {}
    for method, g in top.groupby("method", sort=False):
        per_seed = g.pivot_table(index="seed", columns="loss", values="value").dropna()
        if a not in per_seed or b not in per_seed:
            continue
        d = paired_difference(per_seed[a], per_seed[b])
        rows[registry.label(method)] = {
            f"{LOSSES[a]} − {LOSSES[b]} (points)": f"{d['mean']:+.1f}",
            "95% interval": "one seed: none" if d["n"] < 2 else f"[{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]",
            "seeds": d["n"]}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "set"
    return table


def _tables(df: pd.DataFrame, root) -> list:
    named = df.assign(loss=df.loss.map(lambda v: LOSSES.get(v, v)))
    return [("Test top-1 (%) by set and student loss (mean over seeds)", top1(named, "method", "loss")),
            ("The MSE loss minus the KL loss, per set, paired by seed", loss_difference(df)),
            ("Student training time (s)", top1(named, "method", "loss", metric="seconds"))]


@study(NAME, "CUDD's student losses: KL to the soft labels against MSE on the logits plus 0.1 CE",
       grid=("method", "loss"),
       draw=lambda df, images: {"losses": plots.bar_top1(_labelled(df), "set and loss",
                                                         "Student loss: KL against MSE + 0.1 CE")},
       tables=_tables,
       notebook=Notebook(
           title="CUDD's student losses: KL to the soft labels against `mse_gt` (MSE on the logits plus 0.1 CE)",
           claim="""**What this compares.** CUDD's official student code offers two losses: the KL divergence
between the student's and the teacher's softened outputs, which every table here uses (as both papers
do), and `--loss-type mse_gt`: the mean squared error between the student's and the teacher's logits
plus 0.1 × the cross-entropy with the image's class (MIV-XJTU/CUDD@0bf778c `training/train_FKD.py:273`,
no temperature). Neither paper reports a number or a claim for `mse_gt` (its README only lists the
option), so this notebook judges no claim of the papers: it compares the official options.

**How this notebook tests it.** The CUDD sets at CUDD's ablation IPC train the same student recipe
twice, with each loss, over the study's seeds (both losses of a seed train on the same set from the same
seed); the KL students are those of `cudd_main_results`, taken from the cache. `methods` adds other
sets, e.g. `["sre2l", "cda", "cudd"]` (left out of the committed results to keep their cost down).""",
           params=[("ipc", None, "images per class (None: the preset's smallest IPC of 10 or more)"),
                   ("methods", ["cudd"], "the sets (add \"sre2l\" and \"cda\" for comparison)")],
           reading="""**Reading the result.** The second table gives MSE − KL per set, paired by seed, with its
interval. The losses see the teacher differently: the KL matches the teacher's softmax at the preset's
temperature, the MSE its raw logits, whose scale the temperature does not touch; the cross-entropy term
pulls the student to the image's own class, which a synthesized image's soft label may not favour."""))
def student_loss(ctx: Context, ipc: int | None = None, methods=("cudd",),
                 losses=tuple(LOSSES)) -> list[dict]:
    ipc = ipc or cudd_ipcs(ctx)[0]
    check_known(losses, LOSSES, "student loss(es)")
    rows = []
    for method in methods:
        for loss in losses:
            rows += ctx.cells(method, ipc, replace(ctx.cfg.eval_for(method), loss=loss), loss=loss)
    return rows
