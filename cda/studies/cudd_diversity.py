"""CUDD's homogeneity claim: how diverse each method's distilled set is, in the teacher's features
(cda.diversity: spread, coverage and density)."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from .. import plots
from ..diversity import set_diversity
from ..verdicts import Claim
from ._core import NAMES, Context, Notebook, readable, study, teacher_top1
from .cda_continual_learning import seeded
from .cudd import CUDD_ABLATIONS

MEASURES = ("spread", "coverage", "density")
ONE_STAGE = "one stage (no curriculum)"  # cudd_ablation's variant: its sets are the same cache entries


def _draw(df: pd.DataFrame, images: dict) -> dict:
    """One panel per measure: the mean over seeds per set, with the spread over seeds (std)."""
    fig, axes = plots.new_figure(1, len(MEASURES), figsize=(10, 0.4 * df.variant.nunique() + 1.4), sharey=True)
    for ax, measure in zip(axes, MEASURES):
        stats = df[df.metric == measure].groupby("variant", sort=False)["value"].agg(["mean", "std"])
        for i, (m, sd) in enumerate(zip(stats["mean"], stats["std"].fillna(0))):
            ax.barh(i, m, xerr=sd, color=f"C{i % 10}", capsize=3, height=0.6)
            ax.text(m + sd, i - 0.32, f"{m:.3f}", ha="center", va="bottom", fontsize=6)  # above the bar's end
        ax.set_yticks(range(len(stats)))
        ax.set_yticklabels(stats.index, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.12 * max(stats["mean"] + stats["std"].fillna(0)))
        ax.set_xlabel(measure)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return {"measures": fig}


def _tables(df: pd.DataFrame, root) -> list:
    shown = (*MEASURES, "teacher_top1_on_images")
    stats = df[df.metric.isin(shown)].groupby(["variant", "metric"], sort=False)["value"].agg(["mean", "std"])
    cells = [f"{m:.3f}" + ("" if pd.isna(s) else f" ± {s:.3f}") for m, s in zip(stats["mean"], stats["std"])]
    table = pd.Series(cells, index=stats.index).unstack("metric").reindex(columns=list(shown))
    table = table.rename(columns={"teacher_top1_on_images": "teacher's top-1 on the images (%)"})
    table = table.reindex(list(dict.fromkeys(df.variant)))
    table.columns.name = None
    return [("Diversity of each set in the teacher's features (mean ± std over seeds)", readable(table))]


@study("cudd_diversity", "Diversity of the distilled sets: spread, coverage and density in the teacher's features",
       grid=("variant",),
       claims=(
           Claim("cudd-more-diverse-spread", "CUDD", "CUDD's sets are more diverse than SRe2L's \"homogeneous, "
                 "simplistic images\": a larger spread (mean pairwise cosine distance in the teacher's features)",
                 "abstract (no diversity numbers given)", {"variant": "CUDD"}, {"variant": "SRe2L"},
                 by=("ipc",), metric="spread"),
           Claim("cudd-more-diverse-coverage", "CUDD", "CUDD's sets cover more of the real images than SRe2L's "
                 "(Naeem et al.'s coverage in the teacher's features)", "abstract (no diversity numbers given)",
                 {"variant": "CUDD"}, {"variant": "SRe2L"}, by=("ipc",), metric="coverage"),
       ),
       draw=_draw, tables=_tables,
       notebook=Notebook(
           title="CUDD: the diversity of the distilled sets (spread, coverage and density)",
           claim="""**Claim.** Curriculum evaluation fixes the "homogeneous, simplistic images" of earlier methods
(CUDD's abstract; the paper gives no diversity numbers, so the claims have none).

**How this notebook tests it.** Every method's set at the ablations' IPC (10) from the same teacher (random
real images, SRe2L, CDA, CUDD and CUDD with one stage, the `cudd_ablation` variant without curriculum), over
the ablation seeds, measured in the teacher's penultimate features, class by class (`cda.diversity`):

- **spread**: the mean pairwise cosine distance between the images of a class (0: every image looks
  the same to the teacher);
- **coverage** (Naeem et al. 2020): the share of real test images of the class whose 5-nearest-neighbour
  ball (among real images) holds a distilled image: how much of the real class the set reaches;
- **density** (same paper): how many real balls hold each distilled image, over 5 (about 1 for images
  that look real to the teacher): fidelity, shown beside the two diversity measures;
- the teacher's top-1 on the set's images: how easy they are for it (the table only).

The real reference is up to 50 random test images per class, which no set was drawn from (the random-real
set and CUDD's starting images come from the training split).

**Why these measures.** The teacher is at hand for every method, and they measure diversity where the
students' soft labels come from. LPIPS or Inception-feature metrics (FID, precision/recall in Inception
space) need pretrained weights that this offline project does not download, and Inception features of
28-pixel grey images say little.""",
           params=[("ipc", None, "images per class (default: the ablations' IPC; spread needs 2 or more)")],
           reading="""**Reading the result.** These measures see only what the teacher sees: two images the teacher
maps to the same features count as one, however different their pixels, and a set of noise the teacher
spreads widely scores a high spread. Coverage also rewards fidelity: images far from every real one
cover nothing. The random-real row is the reference for real images' own diversity. What they miss:
diversity a student could use but the teacher ignores, and whether a diverse set trains a better
student (the accuracy studies answer that)."""))
def cudd_diversity(ctx: Context, ipc: int | None = None, methods=("random", "sre2l", "cda", "cudd"),
                   one_stage: bool = True) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    teacher, _ = ctx.ws.teacher()
    sets = [(m, NAMES[m], None) for m in methods]
    if one_stage and "cudd" in methods:
        c = replace(ctx.cfg, cudd=replace(ctx.cfg.cudd, **CUDD_ABLATIONS[ONE_STAGE])).cudd_for(ipc)
        sets.append(("cudd", f"{NAMES['cudd']}, one stage", c))
    rows = []
    for method, variant, options in sets:
        for seed in ctx.seeds:
            _, opts = seeded(ctx, method, ipc, seed, options)
            d = ctx.distilled(method, ipc, opts, label=f"{variant}, IPC {ipc}")
            m = set_diversity(d.images, d.labels, teacher, ctx.ws.info, real=ctx.ws.test, seed=seed,
                              device=ctx.cfg.device)
            ctx.log(f"diversity of {variant}, IPC {ipc}, seed {seed}: "
                    + ", ".join(f"{k} {m[k]:.3f}" for k in MEASURES if k in m))
            base = ctx.row(method, ipc, seed, variant=variant)
            rows += [dict(base, metric=k, value=float(m[k])) for k in MEASURES if k in m]
            # how recognizable the images are to the teacher: "simplistic" images would score high
            rows.append(dict(base, metric="teacher_top1_on_images", value=teacher_top1(ctx, d.images, d.labels)))
    return rows
