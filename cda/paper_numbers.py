"""The papers' reported numbers (results/paper/*.csv) as the phrases the README and the notebooks quote,
so that no paper number is typed by hand: `scripts/readme_numbers.py` writes them into README.md
between `<!-- paper:NAME -->` and `<!-- /paper -->` markers, and a test checks they are current."""
from __future__ import annotations

import os
import re
from typing import Callable

import pandas as pd

from .paths import read_paper

DATASETS = {"tiny_imagenet": "Tiny-ImageNet", "imagenet1k": "ImageNet-1K", "imagenet21k": "ImageNet-21K",
            "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "fashion_mnist": "Fashion-MNIST"}
MARKER = re.compile(r"<!-- paper:(?P<name>[a-z0-9_]+) -->(?P<text>.*?)<!-- /paper -->", re.S)


def _read(name: str, folder: str | os.PathLike | None) -> pd.DataFrame:
    return read_paper(name, folder)


def gains(df: pd.DataFrame, base: str, new: str) -> pd.DataFrame:
    """`new` minus `base` top-1 (points) per dataset, IPC and student, where a row has both."""
    wide = df[df.method.isin([base, new])].pivot_table(index=["dataset", "ipc", "student"], columns="method",
                                                        values="top1", sort=False)
    wide = wide.dropna(subset=[base, new]) if {base, new} <= set(wide.columns) else wide.iloc[:0]
    if wide.empty:
        raise ValueError(f"the paper numbers have no rows with both {base!r} and {new!r}")
    return (wide[new] - wide[base]).round(1).rename("gain").reset_index()


def _signed(x: float) -> str:
    return f"{x:+.1f}".replace("-", "−")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _student(arch: str) -> str:
    m = re.fullmatch(r"resnet(\d+)", arch)
    return f"ResNet-{m.group(1)}" if m else arch


def cda_gain(folder: str | os.PathLike | None = None) -> str:
    """CDA minus SRe2L over every dataset, IPC and student of CDA's main table: the range."""
    df = _read("cda_table2_main_results", folder)
    g = gains(df, "sre2l", "cda")
    datasets = [DATASETS.get(d, d) for d in dict.fromkeys(g.dataset)]
    return (f"{_signed(g.gain.min())} to {_signed(g.gain.max())} on {_join(datasets)}, "
            f"{len(g)} cells; {df.paper.iloc[0]} {df.table.iloc[0]}")


def cudd_gain(folder: str | os.PathLike | None = None) -> str:
    """CUDD minus CDA at each IPC the (third-party) transcription has both."""
    df = _read("cudd_main_results", folder)
    g = gains(df, "cda", "cudd")
    at = [f"{_signed(r.gain)} at IPC {int(r.ipc)}" for r in g.itertuples()]
    datasets = _join([DATASETS.get(d, d) for d in dict.fromkeys(g.dataset)])
    students = _join([_student(s) for s in dict.fromkeys(g.student)])
    return f"{', '.join(at)}; {datasets}, {students}; {df.table.iloc[0]}'s transcription"


def fmnist_best_hard(folder: str | os.PathLike | None = None) -> str:
    """The best published hard-label Fashion-MNIST result at each IPC (the targets of issue 14)."""
    df = _read("fashion_mnist_hard_labels", folder)
    best = df.loc[df.groupby("ipc").top1.idxmax()].sort_values("ipc")
    cells = [f"{r.top1:.1f} at IPC {int(r.ipc)} ({r.method.replace('_', '-').upper()})" for r in best.itertuples()]
    return f"{_join(cells)}; ConvNet-3, hard labels; {df.paper.iloc[0]}, {df.table.iloc[0]}"


def departures(folder: str | os.PathLike | None = None) -> str:
    """The presets' departures from the official settings (official_settings.csv), as a table."""
    from .official_settings import departures_markdown, read

    return "\n" + departures_markdown(read(folder)) + "\n"


SNIPPETS: dict[str, Callable[..., str]] = {"cda_gain": cda_gain, "cudd_gain": cudd_gain,
                                           "fmnist_best_hard": fmnist_best_hard, "departures": departures}


def fill_markers(text: str, marker: re.Pattern, tag: str, snippets: dict, what: str,
                 folder: str | os.PathLike | None = None) -> str:
    """`text` with every `<!-- TAG:NAME -->...<!-- /TAG -->` span that `marker` finds filled by `snippets`."""
    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name not in snippets:
            raise KeyError(f"unknown {what} snippet {name!r}; known: {sorted(snippets)}")
        return f"<!-- {tag}:{name} -->{snippets[name](folder)}<!-- /{tag} -->"

    return marker.sub(fill, text)


def render(text: str, folder: str | os.PathLike | None = None) -> str:
    """`text` with every `<!-- paper:NAME -->...<!-- /paper -->` span filled from the CSVs."""
    return fill_markers(text, MARKER, "paper", SNIPPETS, "paper-number", folder)
