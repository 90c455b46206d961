"""Where a preset's student protocol converges (`cda tune --convergence`), on the validation split.

The preset's students are trained on one set at doubling budgets (100, 200, ..., 1,600 epochs; every
budget is its own student, since the learning-rate schedule spans the whole run), over three or more
seeds, and tested on DataConfig.validation images, never the test set. Issue 25's rule: a budget b
counts as converged when doubling it gains less than the seed standard deviation,
    mean(2b) - mean(b) < sqrt((sd(b)^2 + sd(2b)^2) / 2),
the two budgets' sample standard deviations over seeds, pooled. The converged budget is the first
such b; where every doubling gains more, the protocol has not converged within the budgets, and the
table says so.

Variants (e.g. one-cycle, a weight EMA, label smoothing) train the same students with some
EvalConfig fields changed, as a second row set of the same table: their own converged budget, and
the first budget at which their mean reaches the preset's converged (or, unconverged, last) mean.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .config import ConfigError, RunConfig, with_field
from .results import write_results

BUDGETS = (100, 200, 400, 800, 1600)
PRESET = "preset"  # the variant name of the preset's own recipe


def converged_budget(summary: pd.DataFrame) -> tuple[int | None, str]:
    """The first budget whose doubling gains less than the pooled seed std, from one variant's
    summary (columns budget, mean, std; budgets doubling), and a sentence saying why."""
    s = summary.sort_values("budget").reset_index(drop=True)
    for a, b in zip(s.itertuples(), s.iloc[1:].itertuples()):
        if b.budget != 2 * a.budget:
            raise ValueError(f"convergence budgets must double: {a.budget} is followed by {b.budget}")
        sd = math.sqrt((a.std ** 2 + b.std ** 2) / 2)
        gain = b.mean - a.mean
        if gain < sd:
            return int(a.budget), (f"converged at {a.budget} epochs: doubling to {b.budget} gains {gain:+.2f} points, "
                                   f"less than the seed std {sd:.2f}")
    if len(s) < 2:
        return None, "one budget only: nothing to compare"
    last, prev = s.iloc[-1], s.iloc[-2]
    return None, (f"not converged within {int(last.budget)} epochs: the last doubling ({int(prev.budget)} -> "
                  f"{int(last.budget)}) still gains {last['mean'] - prev['mean']:+.2f} points, more than the seed std "
                  f"{math.sqrt((prev['std'] ** 2 + last['std'] ** 2) / 2):.2f}")


def summarize(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Per variant and budget: mean, std (over seeds) and n of validation top-1, the gain over the
    budget before, and the `converged` mark; plus per variant its converged budget, the sentence, and
    (variants other than the preset) the first budget reaching the preset's reference mean."""
    g = rows.groupby(["variant", "budget"], sort=False)["value"]
    table = g.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    table = table.sort_values(["variant", "budget"], key=lambda c: c.map(_order(rows)) if c.name == "variant" else c)
    table["gain"] = table.groupby("variant")["mean"].diff()
    verdicts: dict[str, dict] = {}
    for variant, t in table.groupby("variant", sort=False):
        budget, why = converged_budget(t)
        verdicts[variant] = {"converged_budget": budget, "why": why}
    table["converged"] = [verdicts[r.variant]["converged_budget"] == r.budget for r in table.itertuples()]
    if PRESET in verdicts:
        p = table[table.variant == PRESET]
        at = verdicts[PRESET]["converged_budget"] or int(p.budget.max())
        reference = float(p[p.budget == at]["mean"].iloc[0])
        for variant, t in table.groupby("variant", sort=False):
            reached = t[t["mean"] >= reference].budget
            verdicts[variant].update(reference_budget=at, reference_mean=reference,
                                     reaches_reference_at=int(reached.min()) if len(reached) else None)
    return table.reset_index(drop=True), verdicts


def _order(rows: pd.DataFrame) -> dict[str, int]:
    return {v: i for i, v in enumerate(dict.fromkeys(rows.variant))}


def convergence(cfg: RunConfig, method: str, ipc: int, seeds: tuple[int, ...], budgets: tuple[int, ...] = BUDGETS,
                variants: dict[str, dict[str, Any]] | None = None, out_csv: str | Path | None = None,
                progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train `method`'s students at IPC `ipc` for every budget, seed and variant ({name: {dotted
    EvalConfig field: value}}; the preset's own recipe is always first), test them on the validation
    split, and write the per-seed rows to `out_csv` with the summary in its provenance. Returns
    {"rows", "table", "verdicts"}."""
    from .pipeline import Workspace
    from .studies import Context

    if not cfg.data.validation:
        raise ConfigError("the convergence table is measured on the validation split, and this config holds none "
                          "out: set data.validation (e.g. --set data.validation=500 images per class)")
    if len(seeds) < 3:
        raise ConfigError(f"convergence needs 3 or more seeds (got {len(seeds)}): its rule compares gains with the "
                          f"seed standard deviation; pass --seeds 3")
    if sorted(budgets) != list(budgets) or any(b != 2 * a for a, b in zip(budgets, budgets[1:])):
        raise ConfigError(f"convergence budgets {list(budgets)}: give doubling epochs, e.g. 100 200 400 800 1600")
    variants = {PRESET: {}, **(variants or {})}
    evals = {}
    for name, fields in variants.items():  # a bad field is an error before anything trains
        e = cfg.eval
        for knob, value in fields.items():
            e = with_field(e, knob, value)
        evals[name] = e
    cfg = replace(cfg, seed_scope="all", eval_seeds=tuple(seeds), eval=replace(cfg.eval, split="val"))
    start = time.perf_counter()
    ws = Workspace(cfg, progress, log)
    ctx = Context(ws)
    rows: list[dict] = []
    for budget in budgets:  # budget-major: the cheap students of every variant come first
        for name, e in evals.items():
            e = replace(e, split="val", aug=replace(e.aug, epochs=budget))
            here = [r for r in ctx.cells(method, ipc, e, variant=name, budget=budget) if r["metric"] == "top1"]
            log(f"convergence {name} {budget} epochs: val top-1 {sum(r['value'] for r in here) / len(here):.2f} "
                f"over {len(here)} seeds")
            rows += here
    df = pd.DataFrame(rows)
    table, verdicts = summarize(df)
    for name, v in verdicts.items():
        log(f"{name}: {v['why']}")
    if out_csv is not None:
        write_results(df, out_csv, ws.cfg, time.perf_counter() - start, ws.cfg.device,
                      extra={"convergence": {"method": method, "ipc": ipc, "seeds": list(seeds),
                                             "budgets": list(budgets),
                                             "variants": {k: {f: _plain(x) for f, x in v.items()}
                                                          for k, v in variants.items()},
                                             "rule": "first budget b with mean(2b) - mean(b) < "
                                                     "sqrt((sd(b)^2 + sd(2b)^2) / 2), validation top-1",
                                             "table": [{k: _plain(x) for k, x in r.items()}
                                                       for r in table.to_dict("records")],
                                             "verdicts": verdicts},
                             "cost": ws.cache.cost()})
    return {"rows": df, "table": table, "verdicts": verdicts}


def _plain(x: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN to None, tuples to lists."""
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return list(x) if isinstance(x, tuple) else x


def convergence_figure(table: pd.DataFrame, verdicts: dict[str, dict], title: str | None = None):
    """Validation top-1 against the budget (log scale), one line per variant with a band of one seed
    std, each variant's converged budget marked."""
    import matplotlib

    from .interval_figures import STYLE
    from .plots import new_figure

    with matplotlib.rc_context(STYLE):
        fig, ax = new_figure(figsize=(5.5, 3.4))
        for i, (variant, t) in enumerate(table.groupby("variant", sort=False)):
            color = f"C{i}"
            sd = t["std"].fillna(0)
            ax.plot(t.budget, t["mean"], marker="o", color=color, label=variant)
            ax.fill_between(t.budget, t["mean"] - sd, t["mean"] + sd, color=color, alpha=0.2)
            at = verdicts[variant]["converged_budget"]
            if at is not None:
                y = float(t[t.budget == at]["mean"].iloc[0])
                ax.plot([at], [y], marker="*", markersize=14, color=color, markeredgecolor="black", zorder=5)
                ax.axvline(at, color=color, linestyle=":", alpha=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(table.budget.unique()))
        ax.set_xticklabels([str(b) for b in sorted(table.budget.unique())])
        ax.set_xlabel("student epochs (budget)")
        ax.set_ylabel("validation top-1 (%)")
        ax.legend(title="star: converged", fontsize=8)
        if title:
            ax.set_title(title, fontsize=9)
    return fig


def table_markdown(provenance: dict) -> str:
    """The convergence table of a run's provenance (results/tuning/<tag>-convergence.json) as markdown:
    validation top-1 mean ± std per budget and variant, the converged budget in bold, then each
    variant's verdict."""
    c = provenance["convergence"]
    table = pd.DataFrame(c["table"])
    variants = list(dict.fromkeys(table.variant))
    budgets = sorted(table.budget.unique())
    seeds = int(table.n.min())
    lines = [f"| validation top-1 (%), mean ± std, {seeds} seeds | " + " | ".join(f"{b} epochs" for b in budgets) + " |",
             "|:---|" + "---:|" * len(budgets)]
    for v in variants:
        t = table[table.variant == v].set_index("budget")
        cells = []
        for b in budgets:
            if b not in t.index:
                cells.append("")
                continue
            text = f"{t.loc[b, 'mean']:.1f} ± {t.loc[b, 'std']:.1f}"
            cells.append(f"**{text}**" if t.loc[b, "converged"] else text)
        fields = ", ".join(f"{k} {x}" for k, x in c["variants"][v].items()) or "the preset's recipe"
        lines.append(f"| {v} ({fields}) | " + " | ".join(cells) + " |")
    notes = [f"- {v}: {c['verdicts'][v]['why']}" for v in variants]
    return "\n" + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"  # on lines of their own between the markers
