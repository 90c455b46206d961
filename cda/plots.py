"""Figures: grids of distilled images and accuracy curves, saved as PNG and PDF.

Every figure is drawn and saved in the seaborn "paper"/"whitegrid" theme set locally (an rc context
around each drawing and save), on a figure that pyplot does not track: importing cda or drawing a
figure changes no global matplotlib or seaborn state.
"""
from __future__ import annotations

import functools
import io
import os
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from . import methods


@functools.cache
def theme() -> dict:
    """The rcParams that `seaborn.set_theme(context="paper", style="whitegrid")` would set globally."""
    import seaborn as sns

    return {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"),
            "axes.prop_cycle": mpl.cycler("color", sns.color_palette("deep")), "font.family": ["sans-serif"]}


@contextmanager
def themed():
    """The theme for the duration of a block; the caller's rcParams are restored afterwards."""
    with mpl.rc_context(theme()):
        yield


def _themed(draw):
    """Draw in the theme: the rcParams a figure reads while it is built are the theme's."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with themed():
            return draw(*args, **kwargs)
    return wrapper


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs):
    """A figure with an Agg canvas, outside pyplot (nothing to close, no global figure list), and its axes."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path: str | os.PathLike) -> list[Path]:
    """Save `fig` as path.png (200 dpi) and path.pdf, with no timestamps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    with themed():
        fig.savefig(out[0], dpi=200, bbox_inches="tight")
        fig.savefig(out[1], bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None})
    return out


def png_bytes(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, for display in a notebook; a figure with no colour (an image grid) as a
    one-channel PNG, a quarter of the pixels' bytes."""
    from PIL import Image

    buf = io.BytesIO()
    with themed():
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    image = Image.open(buf)
    pixels = np.asarray(image)
    if pixels.ndim == 3 and (pixels[..., :3] == pixels[..., :1]).all() and (pixels.shape[2] < 4 or (pixels[..., 3] == 255).all()):
        buf = io.BytesIO()
        image.convert("L").save(buf, format="png", optimize=True)
    return buf.getvalue()


def _tile(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int) -> np.ndarray:
    """A [per_class rows x num_classes columns] mosaic of uint8 images, one column per class."""
    c, h, w = images.shape[1:]
    canvas = np.full((per_class * (h + 1) - 1, num_classes * (w + 1) - 1, c), 255, np.uint8)
    for k in range(num_classes):
        members = images[labels == k][:per_class]
        for r, image in enumerate(members):
            canvas[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = image.permute(1, 2, 0).numpy()
    return canvas


@_themed
def distilled_grid(sets: dict[str, tuple[torch.Tensor, torch.Tensor]], class_names, per_class: int = 4,
                   title: str | None = None):
    """One panel per named set (e.g. Random / SRe2L / CDA): rows are images, columns are classes; as
    many rows as the fullest class has images, up to `per_class` (one row at IPC 1)."""
    per_class = min(per_class, max(int(torch.bincount(labels.cpu(), minlength=len(class_names))[:len(class_names)].max())
                                   for _, labels in sets.values()))
    fig, axes = new_figure(len(sets), 1, figsize=(1.0 * len(class_names), 1.0 * per_class * len(sets) + 0.6),
                           squeeze=False)
    for ax, (name, (images, labels)) in zip(axes[:, 0], sets.items()):
        mosaic = _tile(images.cpu(), labels.cpu(), len(class_names), per_class)
        ax.imshow(mosaic[:, :, 0] if mosaic.shape[2] == 1 else mosaic, cmap="gray", vmin=0, vmax=255)
        ax.set_ylabel(name, fontsize=11)
        ax.set_xticks([(i + 0.5) * mosaic.shape[1] / len(class_names) for i in range(len(class_names))])
        ax.set_xticklabels(class_names, fontsize=7, rotation=30)
        ax.set_yticks([])
        ax.grid(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def method_color(method: str, i: int) -> str:
    """A method's colour from its registry entry; the `i`-th colour after the registered ones for a
    name nobody registered."""
    return methods.color(method) or f"C{(len(methods.list_methods()) + i) % 10}"


def _mean_lines(ax, df: pd.DataFrame, x: str, hue: str) -> None:
    """One line per value of `hue`: the mean value against `x`, the spread over seeds as error bars;
    methods in their registered colours and labels."""
    for i, (name, g) in enumerate(df.groupby(hue, sort=False)):
        stats = g.groupby(x)["value"].agg(["mean", "std"]).reset_index()
        style = dict(color=method_color(name, i), label=methods.label(name)) if hue == "method" else dict(label=str(name))
        ax.errorbar(stats[x], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, **style)


@_themed
def accuracy_vs_ipc(df: pd.DataFrame, metric: str = "top1", title: str | None = None):
    """Top-1 against IPC per method, with the full-data and teacher accuracies as lines."""
    sub = df[df.metric == metric]
    fig, ax = new_figure(figsize=(5, 3.4))
    per_ipc = sub.dropna(subset=["ipc"])
    _mean_lines(ax, per_ipc, "ipc", "method")
    for i, (method, g) in enumerate(sub[sub.ipc.isna()].groupby("method", sort=False)):
        ax.axhline(g["value"].mean(), ls="--", color=method_color(method, i), lw=1, label=methods.label(method))
    _log_x(ax, per_ipc["ipc"].unique())
    ax.set_xlabel("images per class (IPC)")
    ax.set_ylabel(f"student {metric} (%)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@_themed
def loss_curves(histories: dict[str, list[float]], title: str | None = None, ylabel: str = "recovery loss"):
    fig, ax = new_figure(figsize=(5, 3.2))
    for name, values in histories.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@_themed
def synthesis_steps(snapshots: dict[str, torch.Tensor], class_names) -> Figure:
    """Rows of one synthesized image per class, one row per (method, recovery step)."""
    rows = list(snapshots)
    n = len(class_names)
    fig, axes = new_figure(len(rows), n, figsize=(0.9 * n + 1.6, 0.9 * len(rows) + 0.4), squeeze=False)
    for r, name in enumerate(rows):
        for k in range(n):
            ax = axes[r, k]
            image = snapshots[name][k].permute(1, 2, 0).numpy()
            ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(class_names[k], fontsize=7)
            if k == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.2)
    return fig


@_themed
def crop_schedules(curricula: dict, total: int = 1000) -> Figure:
    """RandomResizedCrop's lower scale bound against the recovery iteration, per curriculum."""
    from .recover import crop_lower_bound

    fig, ax = new_figure(figsize=(5, 3.2))
    its = np.arange(total)
    for i, (name, cur) in enumerate(curricula.items()):
        ax.plot(its / total, [crop_lower_bound(cur, int(t), total) for t in its], label=name, lw=1.4,
                ls="-" if cur.schedule != "none" else "--", color=f"C{i % 10}")
    ax.set_xlabel("recovery progress (iteration / total)")
    ax.set_ylabel("crop scale lower bound")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig


@_themed
def scheduler_ablation(df: pd.DataFrame, metric: str = "top1") -> Figure:
    """Top-1 against the milestone, one line per schedule, SRe2L as a dashed line."""
    sub = df[df.metric == metric]
    fig, ax = new_figure(figsize=(5, 3.2))
    _mean_lines(ax, sub[sub.schedule != "none"], "milestone", "schedule")
    base = sub[sub.schedule == "none"]["value"]
    if len(base):
        ax.axhline(base.mean(), ls="--", color="gray", lw=1, label="SRe2L (no curriculum)")
    ax.set_xlabel("milestone (fraction of the iterations)")
    ax.set_ylabel(f"student {metric} (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@_themed
def bar_top1(df: pd.DataFrame, column: str, title: str | None = None, metric: str = "top1") -> Figure:
    """Mean top-1 (with the spread over seeds), one dot per value of `column`. Dots, not bars: the
    axis is zoomed on the values, and bars cut off there would exaggerate the differences."""
    sub = df[df.metric == metric]
    stats = sub.groupby(column, sort=False)["value"].agg(["mean", "std"])
    fig, ax = new_figure(figsize=(5.5, 0.45 * len(stats) + 0.9))
    for i, (m, sd) in enumerate(zip(stats["mean"], stats["std"].fillna(0))):
        ax.errorbar(m, i, xerr=sd, fmt="o", color=f"C{i % 10}", capsize=3)
        ax.text(m, i - 0.25, f"{m:.1f}", ha="center", va="bottom", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.set_yticks(range(len(stats)))
    ax.set_yticklabels(stats.index, fontsize=7)
    ax.invert_yaxis()
    lo = stats["mean"].min()
    ax.set_xlim(max(0, lo - 10), min(100, stats["mean"].max() + 5))
    ax.set_xlabel(f"student {metric} (%)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _log_x(ax, values) -> None:
    """A log x axis labelled at the measured values only."""
    values = sorted(float(v) for v in values)
    ax.set_xscale("log")
    ax.set_xticks(values)
    ax.set_xticklabels([f"{v:g}" for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


@_themed
def line_top1(df: pd.DataFrame, x: str, hue: str, xlabel: str, logx: bool = False, metric: str = "top1") -> Figure:
    """Mean top-1 against `x`, one line per value of `hue` (spread over seeds as error bars)."""
    sub = df[df.metric == metric]
    fig, ax = new_figure(figsize=(5, 3.2))
    _mean_lines(ax, sub, x, hue)
    if logx:
        _log_x(ax, sub[x].unique())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"student {metric} (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@_themed
def recovery_curves(df: pd.DataFrame) -> Figure:
    """Recovery loss (total and cross-entropy) against the iteration, per method and budget."""
    fig, axes = new_figure(1, 2, figsize=(9, 3.2))
    for ax, term in zip(axes, ("loss", "ce")):
        sub = df[df.metric == f"curve_{term}"]
        budgets = sorted(sub.iterations.unique())
        for (method, its), g in sub.groupby(["method", "iterations"], sort=False):
            # the method's colour, lighter for smaller budgets
            shade = 0.35 + 0.65 * budgets.index(its) / max(1, len(budgets) - 1)
            rgb = mpl.colors.to_rgb(method_color(method, list(sub.method.unique()).index(method)))
            color = tuple(1 - shade * (1 - c) for c in rgb)
            ax.plot(g["step"], g["value"], color=color, lw=1, label=f"{methods.label(method)}, {its:g} it")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel({"loss": "total recovery loss", "ce": "teacher cross-entropy"}[term])
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


@_themed
def heatmap(table: pd.DataFrame, xlabel: str, title: str | None = None) -> Figure:
    """A method x architecture table of top-1 as an annotated heatmap."""
    import seaborn as sns

    fig, ax = new_figure(figsize=(1.3 * table.shape[1] + 2.4, 0.55 * table.shape[0] + 1.2))
    sns.heatmap(table.astype(float), annot=True, fmt=".1f", cmap="viridis", cbar_kws={"label": "top-1 (%)"}, ax=ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("")
    ax.tick_params(axis="y", rotation=0)  # row names read across, however few rows
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
