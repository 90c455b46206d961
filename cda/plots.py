"""Figures: grids of distilled images and accuracy curves, saved as PNG and PDF."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402


def setup() -> None:
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid")


def save_figure(fig, path: str | os.PathLike) -> list[Path]:
    """Save `fig` as path.png (200 dpi) and path.pdf, with no timestamps, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    fig.savefig(out[0], dpi=200, bbox_inches="tight")
    fig.savefig(out[1], bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return out


def _tile(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int) -> np.ndarray:
    """A [per_class rows x num_classes columns] mosaic of uint8 images, one column per class."""
    c, h, w = images.shape[1:]
    canvas = np.full((per_class * (h + 1) - 1, num_classes * (w + 1) - 1, c), 255, np.uint8)
    for k in range(num_classes):
        members = images[labels == k][:per_class]
        for r, image in enumerate(members):
            canvas[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = image.permute(1, 2, 0).numpy()
    return canvas


def distilled_grid(sets: dict[str, tuple[torch.Tensor, torch.Tensor]], class_names, per_class: int = 4,
                   title: str | None = None):
    """One panel per named set (e.g. Random / SRe2L / CDA): rows are images, columns are classes."""
    fig, axes = plt.subplots(len(sets), 1, figsize=(1.0 * len(class_names), 1.0 * per_class * len(sets) + 0.6),
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


def accuracy_vs_ipc(df: pd.DataFrame, metric: str = "top1", title: str | None = None):
    """Top-1 against IPC per method, with the full-data and teacher accuracies as lines."""
    setup()
    sub = df[df.metric == metric]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    per_ipc = sub.dropna(subset=["ipc"])
    for method, g in per_ipc.groupby("method", sort=False):
        stats = g.groupby("ipc")["value"].agg(["mean", "std"]).reset_index()
        ax.errorbar(stats["ipc"], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, label=method)
    for i, (method, g) in enumerate(sub[sub.ipc.isna()].groupby("method", sort=False)):
        ax.axhline(g["value"].mean(), ls="--", color=f"C{5 + i}", lw=1, label=f"{method} (all data)")
    ax.set_xscale("log")
    ipcs = sorted(per_ipc["ipc"].unique())
    ax.set_xticks(ipcs)
    ax.set_xticklabels([str(int(i)) for i in ipcs])
    ax.set_xlabel("images per class (IPC)")
    ax.set_ylabel(f"student {metric} (%)")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def loss_curves(histories: dict[str, list[float]], title: str | None = None, ylabel: str = "recovery loss"):
    setup()
    fig, ax = plt.subplots(figsize=(5, 3.2))
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
