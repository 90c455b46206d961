"""Figures of the verdicts: paired differences with their confidence intervals, per claim and against a
protocol knob. Drawn in a local style: no global matplotlib or seaborn state is changed."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from .plots import method_color, new_figure, save_figure  # noqa: F401  (save_figure: re-exported)

STYLE = {"axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
         "font.size": 9, "legend.fontsize": 8, "legend.frameon": False}
VERDICT_COLORS = {"holds": "C2", "does not hold": "C3"}  # inconclusive: grey


def _errors(df: pd.DataFrame, y: str, low: str, high: str) -> np.ndarray:
    """Asymmetric error bars from an interval; 0 where the interval is undefined (one seed)."""
    lo = (df[y] - df[low]).to_numpy(dtype=float)
    hi = (df[high] - df[y]).to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([lo, hi]), nan=0.0)


def knob_figure(table: pd.DataFrame, knob: str, hue: str | None = None, y: str = "difference",
                ylabel: str = "CDA − SRe2L (top-1 points)", logx: bool = False, title: str | None = None):
    """The difference (a `knob_sensitivity` table's `difference`, or `shift`) against the knob's value,
    one line per value of `hue` (e.g. "ipc"), with the paired confidence intervals as error bars, a
    zero line, and the default (step 0) ringed. Points measured on one seed have no bar and a hollow
    marker."""
    low, high = ("ci_low", "ci_high") if y == "difference" else ("shift_ci_low", "shift_ci_high")
    with matplotlib.rc_context(STYLE):
        fig, ax = new_figure(figsize=(4.6, 3.2))
        groups = table.groupby(hue, sort=True) if hue else [(None, table)]
        for i, (name, g) in enumerate(groups):
            g = g.sort_values(knob)
            color = f"C{i}"
            ax.errorbar(g[knob], g[y], yerr=_errors(g, y, low, high), color=color, marker="o", capsize=3,
                        label=f"{hue} {name}" if hue else None, mfc=color)
            one = g[g[low].isna()]
            ax.scatter(one[knob], one[y], s=40, facecolors="white", edgecolors=color, zorder=3)
            default = g[g["step"] == 0]
            ax.scatter(default[knob], default[y], s=140, facecolors="none", edgecolors="black", zorder=4,
                       label="default" if i == 0 else None)
        ax.axhline(0, color="black", lw=0.8)
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(table[knob].unique()))
        ax.set_xticklabels([f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in sorted(table[knob].unique())])
        ax.set_xlabel(knob)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        if hue or (table["step"] == 0).any():
            ax.legend()
        fig.tight_layout()
    return fig


def verdict_figure(table: pd.DataFrame, title: str | None = None):
    """A forest plot of a `verdict_table`: one line per claim and cell, our paired difference with its
    interval, coloured by verdict (green holds, red does not hold, grey otherwise), and the paper's
    number as a cross where it is known. Differences are in the claim's metric (top-1 points)."""
    rows = table[table["n_seeds"].fillna(0) > 0].reset_index(drop=True)
    with matplotlib.rc_context(STYLE):
        fig, ax = new_figure(figsize=(6.4, 0.25 * len(rows) + 1.2))
        y = np.arange(len(rows))[::-1]
        colors = [VERDICT_COLORS.get(v, "0.5") for v in rows["verdict"]]
        err = _errors(rows, "difference", "ci_low", "ci_high")
        for yi, x, e0, e1, c in zip(y, rows["difference"], err[0], err[1], colors):
            ax.errorbar(x, yi, xerr=[[e0], [e1]], color=c, marker="o", capsize=2, lw=1)
        known = rows["paper_number"].notna()
        ax.scatter(rows.loc[known, "paper_number"], y[known.to_numpy()], marker="x", color="black", zorder=3,
                   label="paper")
        ax.axvline(0, color="black", lw=0.8)
        # a claim of a size (cda.verdicts.Claim.margin, named in the cell) is judged against its margin, not 0
        margins = [(yi, float(c.split("margin ")[1])) for yi, c in zip(y, rows["cell"].fillna("")) if "margin " in c]
        if margins:
            ax.scatter([m for _, m in margins], [yi for yi, _ in margins], marker="|", s=80, color="black",
                       zorder=3, label="claim's margin")
        ax.set_yticks(y)
        ax.set_yticklabels([f"{i} ({c})" if c else i for i, c in zip(rows["id"], rows["cell"])], fontsize=6)
        ax.set_xlabel("a − b (points); bars: 95% CI over seeds")
        if known.any() or margins:
            ax.legend(loc="best", fontsize=6)
        if title:
            ax.set_title(title)
        fig.tight_layout()
    return fig


def _knob_axes(knobs: list[tuple[str, str]], height: float = 2.4):
    cols = min(3, len(knobs))
    rows = -(-len(knobs) // cols)
    fig, axes = new_figure(figsize=(3.3 * cols, height * rows), nrows=rows, ncols=cols, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(knobs):]:
        ax.set_visible(False)
    return fig, flat


def tuning_figure(summary: pd.DataFrame, winners: dict[tuple[str, str], str] | None = None,
                  title: str | None = None):
    """A tuning grid (cda.tuning.best_mean): one panel per knob, validation top-1 of each method
    against the knob's values (mean, bars one std over seeds), the winning value shaded."""
    knobs = list(dict.fromkeys(zip(summary.stage, summary.knob)))
    with matplotlib.rc_context(STYLE):
        fig, axes = _knob_axes(knobs)
        for ax, (stage, knob) in zip(axes, knobs):
            g = summary[(summary.stage == stage) & (summary.knob == knob)]
            order = list(dict.fromkeys(g.value_text))
            for i, (method, m) in enumerate(g.groupby("method", sort=False)):
                x = [order.index(v) for v in m.value_text]
                ax.errorbar(x, m["mean"], yerr=m["std"].fillna(0), marker="o", capsize=2,
                            color=method_color(method, i), label=method)  # the same in every panel
            if winners and (stage, knob) in winners and winners[(stage, knob)] in order:
                w = order.index(winners[(stage, knob)])
                ax.axvspan(w - 0.3, w + 0.3, color="gold", alpha=0.3, lw=0)
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(order)
            ax.set_title(f"{stage}: {knob}", fontsize=9)
            ax.set_ylabel("val top-1 (%)")
        for ax in axes:
            if len(ax.get_legend_handles_labels()[0]) == len(set(summary.method)):
                ax.legend()  # the first panel that shows every method
                break
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def sensitivity_figure(table: pd.DataFrame, title: str | None = None,
                       ylabel: str = "CDA − SRe2L (val top-1 points)"):
    """cda.tuning.sensitivity: one panel per knob, the paired difference at each value with its 95%
    interval, a zero line, and the preset's value (step 0) ringed; hollow markers: one seed."""
    knobs = list(dict.fromkeys(zip(table.stage, table.knob)))
    with matplotlib.rc_context(STYLE):
        fig, axes = _knob_axes(knobs)
        for ax, (stage, knob) in zip(axes, knobs):
            g = table[(table.stage == stage) & (table.knob == knob)].sort_values("position")
            x = g["position"].to_numpy()
            ax.errorbar(x, g["difference"], yerr=_errors(g, "difference", "ci_low", "ci_high"), marker="o",
                        capsize=3, color="C0")
            one = g[g["ci_low"].isna()]
            ax.scatter(one["position"], one["difference"], s=40, facecolors="white", edgecolors="C0", zorder=3)
            default = g[g["step"] == 0]
            ax.scatter(default["position"], default["difference"], s=140, facecolors="none", edgecolors="black",
                       zorder=4)
            ax.axhline(0, color="black", lw=0.8)
            ax.set_xticks(x)
            ax.set_xticklabels(g["value_text"])
            ax.set_title(f"{stage}: {knob}", fontsize=9)
            ax.set_ylabel(ylabel, fontsize=7)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig
