"""Our committed results (results/<study>/<preset>.csv, results/verdicts/<preset>.csv and their provenance)
as the tables and phrases the README and the site quote, so that no result number is typed by hand:
`scripts/readme_numbers.py` writes them between `<!-- ours:NAME -->` and `<!-- /ours -->` markers (as
cda.paper_numbers does for the papers' numbers), and a test checks they are current."""
from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path
from typing import Callable

import pandas as pd

MARKER = re.compile(r"<!-- ours:(?P<name>[a-z0-9_]+) -->(?P<text>.*?)<!-- /ours -->", re.S)
LABELS = {"random": "random real + relabel", "sre2l": "SRe2L", "cda": "CDA", "cudd": "CUDD"}
PRESET = "cpu"


def results_folder() -> Path:
    return Path(__file__).resolve().parents[1] / "results"


def _csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"no results at {path}; `make publish` writes the committed results")
    return pd.read_csv(path)


def _study(name: str, folder, preset: str = PRESET) -> pd.DataFrame:
    return _csv(Path(folder or results_folder()) / name / f"{preset}.csv")


def _top1(df: pd.DataFrame) -> pd.DataFrame:
    """Soft-label top-1 rows of the main student (hard-label runs live in other files)."""
    sub = df[(df.metric == "top1")]
    return sub[sub.labels != "hard"] if "labels" in sub else sub


def _minus(x: float, fmt: str) -> str:
    return format(x, fmt).replace("-", "−")


def headline(folder: str | os.PathLike | None = None, preset: str = PRESET) -> str:
    """Top-1 mean ± std over the seeds per method and IPC: the two main tables (CUDD from its own)."""
    rows = pd.concat([_top1(_study("cda_table2_main_results", folder, preset)),
                      _top1(_study("cudd_main_results", folder, preset)).query("method == 'cudd'")])
    rows = rows[rows.ipc.notna() & rows.method.isin(list(LABELS))]
    stats = rows.groupby(["method", "ipc"]).value.agg(["mean", "std", "count"])
    ipcs = sorted(rows.ipc.unique())
    best = stats["mean"].round(1).groupby("ipc").max()
    seeds = int(stats["count"].min())
    lines = [f"| top-1 (%), mean ± std, {seeds} seeds | " + " | ".join(f"IPC {int(i)}" for i in ipcs) + " |",
             "|:---|" + "---:|" * len(ipcs)]
    for method, label in LABELS.items():
        cells = []
        for ipc in ipcs:
            if (method, ipc) not in stats.index:
                cells.append("")
                continue
            m, s = stats.loc[(method, ipc), ["mean", "std"]]
            text = f"{m:.1f} ± {s:.1f}"
            cells.append(f"**{text}**" if round(m, 1) == best[ipc] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    full = _study("cda_table2_main_results", folder, preset).query("method == 'full' and metric == 'top1'").value
    if len(full):
        lines.append(f"| full training set | {full.mean():.1f} |" + " |" * (len(ipcs) - 1))
    return "\n" + "\n".join(lines) + "\n"


def students(folder: str | os.PathLike | None = None) -> str:
    """Top-1 mean ± std on students of other architectures (the two cross-architecture studies)."""
    rows = pd.concat([_top1(_study("cda_cross_architecture", folder)),
                      _top1(_study("cudd_cross_architecture", folder)).query("method == 'cudd'")])
    rows = rows[rows.method.isin(list(LABELS))]
    stats = rows.groupby(["method", "student", "ipc"]).value.agg(["mean", "std", "count"])
    cols = [(st, ipc) for st, ipc in dict.fromkeys(zip(rows.student, rows.ipc))]
    best = stats["mean"].round(1).groupby(["student", "ipc"]).max()
    lines = [f"| top-1 (%), mean ± std, {int(stats['count'].min())} seeds | "
             + " | ".join(f"{st}, IPC {int(ipc)}" for st, ipc in cols) + " |", "|:---|" + "---:|" * len(cols)]
    for method, label in LABELS.items():
        cells = []
        for st, ipc in cols:
            if (method, st, ipc) not in stats.index:
                cells.append("")
                continue
            m, sd = stats.loc[(method, st, ipc), ["mean", "std"]]
            cells.append(f"**{m:.1f} ± {sd:.1f}**" if round(m, 1) == best[(st, ipc)] else f"{m:.1f} ± {sd:.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n" + "\n".join(lines) + "\n"


def teacher(folder: str | os.PathLike | None = None, preset: str = PRESET) -> str:
    """The teacher's test top-1 at the preset."""
    df = _study("cda_table2_main_results", folder, preset).query("method == 'teacher' and metric == 'top1'")
    return f"{df.value.mean():.1f}%"


def _verdicts(folder, preset: str = PRESET) -> pd.DataFrame:
    return _csv(Path(folder or results_folder()) / "verdicts" / f"{preset}.csv")


def verdicts(folder: str | os.PathLike | None = None) -> str:
    """One row per claim: the range of our paired differences and how many cells hold."""
    from .verdicts import by_claim

    table = _verdicts(folder)
    lines = ["| paper | claim (study) | ours: a − b per cell (points) | holds / does not hold / inconclusive | seeds |",
             "|:---|:---|:---|:---|---:|"]
    for r in by_claim(table).itertuples():
        diffs = table[(table.id == r.id) & table.n_seeds.fillna(0).gt(0)].difference
        span = (_minus(diffs.min(), "+.1f") if len(diffs) and round(diffs.min(), 1) == round(diffs.max(), 1)
                else f"{_minus(diffs.min(), '+.1f')} to {_minus(diffs.max(), '+.1f')}")
        cells = f"{r.cells} cell{'s' if r.cells != 1 else ''}"
        lines.append(f"| {r.paper} | {r.claim} (`{r.study}`) | {span} ({cells}) | "
                     f"{r.holds} / {r.does_not_hold} / {r.inconclusive} | {r.min_seeds} |")
    return "\n" + "\n".join(lines) + "\n"


def cda_minus_sre2l(folder: str | os.PathLike | None = None, preset: str = PRESET) -> str:
    """CDA − SRe2L in each cell of the main table, paired by seed, with its 95% interval."""
    t = _verdicts(folder, preset).query("id == 'cda-beats-sre2l'")
    cells = [f"{_minus(r.difference, '+.2f')} [{_minus(r.ci_low, '+.2f')}, {_minus(r.ci_high, '+.2f')}] ({r.cell})"
             for r in t.itertuples()]
    return "; ".join(cells) + f"; {int(t.n_seeds.min())} seeds each"


def build_cost(folder: str | os.PathLike | None = None) -> str:
    """What computing every notebook at the preset cost, from the studies' provenance files."""
    from .notebooks import build_cost as cost

    root = Path(folder or results_folder()).parent
    c = cost(PRESET, root=root)
    return f"{c['seconds'] / 60:.1f} min of recorded build time for {c['artifacts']} artifacts"


def build_cost_by_kind(folder: str | os.PathLike | None = None) -> str:
    """The same, by kind of artifact, and what it comes to in hours."""
    from .notebooks import build_cost as cost

    c = cost(PRESET, root=Path(folder or results_folder()).parent)
    names = {"evaluation": "student evaluations", "distilled": "distilled sets",
             "teacher": "the teacher and the full-data model", "robustness": "noisy-test students"}
    parts = [f"{names.get(k, k)} {v / 60:.1f} min" for k, v in sorted(c["by_kind"].items(), key=lambda kv: -kv[1])]
    return f"{', '.join(parts)}; about {c['seconds'] / 3600:.1f} hours in all"


SNIPPETS: dict[str, Callable[..., str]] = {"headline": headline, "students": students, "teacher": teacher, "verdicts": verdicts,
                                           "cda_minus_sre2l": cda_minus_sre2l, "build_cost": build_cost,
                                           "build_cost_by_kind": build_cost_by_kind,
                                           # the same on scikit-learn's digits (--preset digits)
                                           "digits_headline": partial(headline, preset="digits"),
                                           "digits_teacher": partial(teacher, preset="digits"),
                                           "digits_cda_minus_sre2l": partial(cda_minus_sre2l, preset="digits"),
                                           # longer students (the runs tagged by their config hash)
                                           "longer_1600": partial(headline, preset="cpu-1e745f8b"),
                                           "longer_800": partial(headline, preset="cpu-851544da")}


def render(text: str, folder: str | os.PathLike | None = None) -> str:
    """`text` with every `<!-- ours:NAME -->...<!-- /ours -->` span filled from the results files."""
    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name not in SNIPPETS:
            raise KeyError(f"unknown result snippet {name!r}; known: {sorted(SNIPPETS)}")
        return f"<!-- ours:{name} -->{SNIPPETS[name](folder)}<!-- /ours -->"

    return MARKER.sub(fill, text)
