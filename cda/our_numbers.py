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
    """One row per claim: the range of our paired differences, how many cells hold, and how many hold
    after Holm's adjustment across the claim's cells."""
    from .verdicts import by_claim

    table = _verdicts(folder)
    lines = ["| paper | claim (study) | ours: a − b per cell (points) | holds / does not hold / inconclusive | "
             "after Holm: holds / does not hold | seeds |",
             "|:---|:---|:---|:---|:---|---:|"]
    for r in by_claim(table).itertuples():
        diffs = table[(table.id == r.id) & table.n_seeds.fillna(0).gt(0)].difference
        if not len(diffs):  # a study added before its build
            lines.append(f"| {r.paper} | {r.claim} (`{r.study}`) | not measured yet: the study's results are not "
                         "built at this preset | | | |")
            continue
        span = (_minus(diffs.min(), "+.1f") if len(diffs) and round(diffs.min(), 1) == round(diffs.max(), 1)
                else f"{_minus(diffs.min(), '+.1f')} to {_minus(diffs.max(), '+.1f')}")
        cells = f"{r.cells} cell{'s' if r.cells != 1 else ''}"
        lines.append(f"| {r.paper} | {r.claim} (`{r.study}`) | {span} ({cells}) | "
                     f"{r.holds} / {r.does_not_hold} / {r.inconclusive} | {r.holds_holm} / {r.does_not_hold_holm} | "
                     f"{r.min_seeds} |")
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


# The results page's prose: one snippet per paragraph or bullet, each from its study's file and the
# paired differences of results/verdicts/cpu.csv.

def _ms(rows: pd.DataFrame, by: str, order) -> list[str]:
    """'mean ± std' of the top-1 rows for each value of `by`, in `order`."""
    stats = rows[rows.metric == "top1"].groupby(by).value.agg(["mean", "std"])
    return [f"{stats.loc[k, 'mean']:.1f} ± {stats.loc[k, 'std']:.1f}" for k in order]


def _means(rows: pd.DataFrame, by: str, order, metric: str = "top1") -> str:
    means = rows[rows.metric == metric].groupby(by).value.mean()
    return " / ".join(f"{means.loc[k]:.1f}" for k in order)


def _interval(r, fmt: str = "+.1f") -> str:
    return f"{_minus(r.difference, fmt)} [{_minus(r.ci_low, fmt)}, {_minus(r.ci_high, fmt)}]"


def _claim(folder, claim: str, preset: str = PRESET) -> pd.DataFrame:
    t = _verdicts(folder, preset).query("id == @claim")
    if t.empty:
        raise KeyError(f"no verdict {claim!r} in {Path(folder or results_folder()) / 'verdicts' / f'{preset}.csv'}; "
                       "`cda verdicts --preset cpu` writes it")
    return t


def _variant(folder, study: str, names) -> list[str]:
    return _ms(_study(study, folder), "variant", names)


def ablation_reference(folder=None) -> str:
    s, c = _variant(folder, "cda_ablation_scheduler", ["SRe2L (no curriculum)", "cosine, milestone 1"])
    return f"SRe2L reaches {s} and CDA {c}"


def ablation_schedule(folder=None) -> str:
    cells = {k: _variant(folder, "cda_ablation_scheduler", [f"{k}, milestone 0.5", f"{k}, milestone 1"])
             for k in ("step", "linear", "cosine")}
    diffs = " and ".join(_interval(r) for r in _claim(folder, "cosine-beats-linear").itertuples())
    return (", ".join(f"{k} {a} / {b}" for k, (a, b) in cells.items()) + " at milestone 0.5 / 1"
            + f"; cosine − linear: {diffs} points")


def ablation_direction(folder=None) -> str:
    names = {"easy to hard (CDA, cosine)": "easy→hard", "hard to easy (reverse cosine)": "hard→easy",
             "constant (0.08, 1) = SRe2L": "constant (0.08, 1) = SRe2L", "constant (0.5, 1)": "constant (0.5, 1)",
             "constant (1, 1)": "constant (1, 1)"}
    cells = _variant(folder, "cda_ablation_direction", list(names))
    d = pd.concat([_claim(folder, "easy-to-hard-beats-reverse"), _claim(folder, "easy-to-hard-beats-constant")])
    return (", ".join(f"{n} {c}" for n, c in zip(names.values(), cells))
            + f"; easy→hard minus each alternative: {_minus(d.difference.max(), '+.1f')} to "
            f"{_minus(d.difference.min(), '+.1f')} points")


def ablation_crop(folder=None) -> str:
    bounds = ["0.08", "0.2", "0.4"]
    cells = _variant(folder, "cda_ablation_crop_lower_bound", [f"CDA cosine to {b}" for b in bounds])
    r = _claim(folder, "end-at-0.08").query("cell.str.endswith('0.4')").iloc[0]
    return ", ".join(f"{b} → {c}" for b, c in zip(bounds, cells)) + f"; 0.08 − 0.4: {_interval(r)} points"


def ablation_recovery(folder=None) -> str:
    df = _study("cda_recovery_budget", folder)
    its = sorted(df.iterations.unique())
    cda, sre2l = (" / ".join(_ms(df[df.method == m], "iterations", its)) for m in ("cda", "sre2l"))
    d = _claim(folder, "cda-converges-faster").itertuples()
    diffs = ", ".join(f"{_interval(r)} at {r.cell.split('iterations=')[1]}" for r in d)
    steps = _study("cda_fig_synthesis_steps", folder).query("metric == 'teacher_top1_on_images' and step == 25")
    seen = steps.groupby("method").value.agg(["mean", "std"])
    return (f"at {' / '.join(str(int(i)) for i in its)} iterations, CDA {cda} against SRe2L {sre2l}; "
            f"CDA − SRe2L: {diffs} iterations. At step 25 of an IPC-1 recovery the teacher classifies "
            f"{seen.loc['cda', 'mean']:.0f}% of CDA's images and {seen.loc['sre2l', 'mean']:.0f} ± "
            f"{seen.loc['sre2l', 'std']:.0f}% of SRe2L's")


def ablation_eval(folder=None) -> str:
    df = _study("cda_eval_budget", folder)
    ep, bs = df[df.varied == "epochs"], df[df.varied == "batch_size"]
    eps, bss = sorted(ep.epochs.unique()), [32, 64, 128]
    bss = [b for b in bss if b in set(df.batch_size)]
    gain = _claim(folder, "more-student-epochs").query("cell.str.endswith('epochs=400')")
    m = ep[(ep.metric == "top1") & (ep.epochs == eps[-1])].groupby("method").value.mean()
    return (f"{' / '.join(map(str, eps))} student epochs give SRe2L {_means(ep[ep.method == 'sre2l'], 'epochs', eps)}"
            f" and CDA {_means(ep[ep.method == 'cda'], 'epochs', eps)}: from {eps[-2]} to {eps[-1]} epochs they "
            f"still gain {gain.difference.min():.1f}–{gain.difference.max():.1f} points, and the gap is "
            f"{m['sre2l'] - m['cda']:.1f} points at {eps[-1]}. Batch {' / '.join(map(str, bss))} gives SRe2L "
            f"{_means(bs[bs.method == 'sre2l'], 'batch_size', bss)} and CDA {_means(bs[bs.method == 'cda'], 'batch_size', bss)}")


def cudd_components(folder=None) -> str:
    names = {"CUDD (full)": "full", "no adversarial term": "no adversarial term", "no L2 term": "no L2 term",
             "noise init, no L2 (no real images)": "from noise (no real images, no L2)",
             "one stage (no curriculum)": "one stage (no curriculum student, so no adversarial term)"}
    cells = _variant(folder, "cudd_ablation", list(names))
    d = _claim(folder, "cudd-components-help")
    diffs = "; ".join(f"{r.cell.split('vs variant=')[1]} {_interval(r)}" for r in d.itertuples())
    return ", ".join(f"{n} {c}" for n, c in zip(names.values(), cells)) + f". Full − each: {diffs} points"


def noise_robustness(folder=None) -> str:
    df = _study("cudd_noise_robustness", folder)
    sig = sorted(df.sigma.unique())
    names = {"cudd": "CUDD", "sre2l": "SRe2L", "cda": "CDA", "random": "random"}
    return (f"std {' / '.join(f'{s:g}' for s in sig)}: "
            + ", ".join(f"{n} {_means(df[df.method == m], 'sigma', sig)}" for m, n in names.items()))


def cudd_images(folder=None) -> str:
    df = _study("cudd_fig_visual_comparison", folder).query("method == 'CUDD'").set_index("metric").value
    return (f"move {df['mean_abs_pixel_change_from_real_init']:.1f} gray levels (of 255) on average from their real "
            f"initializations, and the teacher classifies {df['teacher_top1_on_images']:.0f}% of them correctly")


def random_minus_sre2l(folder=None) -> str:
    """random − SRe2L per IPC of the main table, paired by seed (not a claim of either paper)."""
    from .verdicts import paired_difference

    df = _top1(_study("cda_table2_main_results", folder))
    out = []
    for ipc in sorted(df.ipc.dropna().unique()):
        a, b = (df[(df.method == m) & (df.ipc == ipc)].set_index("seed").value for m in ("random", "sre2l"))
        d = paired_difference(a.sort_index(), b.loc[a.sort_index().index])
        out.append(f"{_minus(d['mean'], '+.1f')} [{_minus(d['ci_low'], '+.1f')}, {_minus(d['ci_high'], '+.1f')}] "
                   f"(IPC {int(ipc)})")
    return ", ".join(out)


def hard_labels(folder=None) -> str:
    """Hard-label students (the run tagged cpu-9950c37a) and DD-Ranking's HLR from them."""
    df = _study("cda_table2_main_results", folder, "cpu-9950c37a").query("metric == 'top1' and labels == 'hard'")
    full = _study("cda_table2_main_results", folder).query("method == 'full' and metric == 'top1'").value.mean()
    ipcs = sorted(df.ipc.dropna().unique())
    acc = {m: df[df.method == m].groupby("ipc").value.mean() for m in ("sre2l", "cda", "random")}
    hlr = {m: " / ".join(f"{(full - acc[m][i]) / 100:.2f}" for i in ipcs) for m in ("sre2l", "cda")}
    pct = {m: " / ".join(f"{acc[m][i]:.1f}" for i in ipcs) for m in acc}
    return (f"SRe2L's sets reach {pct['sre2l']}% and CDA's {pct['cda']}% at IPC "
            f"{' / '.join(str(int(i)) for i in ipcs)}, against {pct['random']}% for random real images: HLR "
            f"{hlr['sre2l']} (SRe2L) and {hlr['cda']} (CDA)")


# The tuning page: validation top-1 from results/tuning/, the longer students' paired differences.

def _tuning(folder, name: str) -> pd.DataFrame:
    df = _csv(Path(folder or results_folder()) / "tuning" / f"{name}.csv")
    return df[df.metric == "top1"].groupby(["stage", "knob", "value_text", "method"], sort=False).value.mean()


def _knob(means: pd.Series, stage: str, knob: str) -> pd.DataFrame:
    """Mean validation top-1 per value of one knob (rows, in the grid's order) and method (columns)."""
    at = (means.index.get_level_values("stage") == stage) & (means.index.get_level_values("knob") == knob)
    return means[at].droplevel(["stage", "knob"]).unstack()


def tuning_chosen(folder=None) -> str:
    """The protocol and recovery the tuning chose, as validation top-1 from the preset to the winners."""
    m = _tuning(folder, PRESET)
    proto = _knob(m, "protocol", "combined")[["random", "sre2l", "cda"]]
    rec = _knob(m, "recovery", "combined")
    grid = m[m.index.get_level_values("stage") == "recovery"].unstack()
    return (f"validation top-1 of random / SRe2L / CDA from "
            f"{' / '.join(f'{v:.1f}' for v in proto.loc['preset'])} to "
            f"{' / '.join(f'{v:.1f}' for v in proto.loc['tuned'])}, and the recovery moves SRe2L "
            f"{rec.loc['preset', 'sre2l']:.1f} → {rec.loc['tuned', 'sre2l']:.1f} and CDA "
            f"{rec.loc['preset', 'cda']:.1f} → {rec.loc['tuned', 'cda']:.1f}; over the recovery grid CDA spans "
            f"{grid.cda.min():.1f}–{grid.cda.max():.1f} and SRe2L {grid.sre2l.min():.1f}–{grid.sre2l.max():.1f}")


def tuning_cudd(folder=None) -> str:
    m = _tuning(folder, f"{PRESET}-cudd")
    part = lambda k: (f"{' / '.join(_knob(m, 'cudd', k).index)} gave "
                      f"{' / '.join(f'{v:.1f}' for v in _knob(m, 'cudd', k).cudd)}")
    return f"adversarial weight {part('adv')}; L2 weight {part('l2')}"


def longer_validation(folder=None) -> str:
    m = _tuning(folder, f"{PRESET}-eb69fdb9-protocol")
    ep, lr = _knob(m, "protocol", "aug.epochs"), _knob(m, "protocol", "lr")
    names = {"random": "random real", "sre2l": "SRe2L", "cda": "CDA"}
    return (f"{' / '.join(ep.index)} student epochs give "
            + ", ".join(f"{n} {' / '.join(f'{v:.1f}' for v in ep[k])}" for k, n in names.items())
            + f"; lr {' / '.join(lr.index)} at {ep.index[0]} epochs gives random real "
            f"{' / '.join(f'{v:.1f}' for v in lr['random'])}")


def _paired(folder, preset: str, a: str, b: str, ipc: int) -> str:
    """a − b at one IPC of the main tables, paired by seed, with its 95% interval."""
    from .verdicts import paired_difference

    rows = pd.concat([_top1(_study("cda_table2_main_results", folder, preset)),
                      _top1(_study("cudd_main_results", folder, preset)).query("method == 'cudd'")])
    x, y = (rows[(rows.method == m) & (rows.ipc == ipc)].set_index("seed").value.sort_index() for m in (a, b))
    d = paired_difference(x, y.loc[x.index])
    return f"{_minus(d['mean'], '+.2f')} [{_minus(d['ci_low'], '+.2f')}, {_minus(d['ci_high'], '+.2f')}]"


_PAIRS = {"CDA − SRe2L": ("cda-beats-sre2l", "cda", "sre2l"), "CUDD − CDA": ("cudd-beats-cda", "cudd", "cda"),
          "CUDD − SRe2L": ("cudd-beats-sre2l", "cudd", "sre2l"), "random real − CUDD": (None, "random", "cudd")}


def _pair_cell(folder, preset: str, label: str, ipc: int, verdict: bool = True) -> str:
    claim, a, b = _PAIRS[label]
    if claim is None:
        return _paired(folder, preset, a, b, ipc)
    t = _claim(folder, claim, preset)
    r = t[t.cell == f"ipc={ipc}, student=convnet3"].iloc[0]
    return _interval(r, "+.2f") + (f", {r.verdict}" if verdict else "")


def longer_800_diffs(folder=None) -> str:
    return ", ".join(f"{label} {_pair_cell(folder, 'cpu-851544da', label, 50, verdict=False)}"
                     for label in ("CDA − SRe2L", "CUDD − CDA", "random real − CUDD"))


def budget_table(folder=None) -> str:
    """The paired differences of the 400-epoch preset beside those of the 1600-epoch students, IPC 10."""
    lines = ["| IPC 10, test top-1 | 400 epochs (the preset) | 1600 epochs |", "|:---|:---|:---|"]
    for label in _PAIRS:
        lines.append(f"| {label} | {_pair_cell(folder, PRESET, label, 10)} | "
                     f"{_pair_cell(folder, 'cpu-1e745f8b', label, 10)} |")
    return "\n" + "\n".join(lines) + "\n"


# The speed page: the benchmarks' committed rows (results/bench/<name>-cpu.csv).

def _bench(folder, name: str) -> pd.DataFrame:
    return _csv(Path(folder or results_folder()) / "bench" / f"{name}-{PRESET}.csv")


def _x(r: float, decimals: int = 2) -> str:
    """A ratio as 1.86× (or 6.7× with decimals=1), whole from 10× on."""
    return "∞" if r == float("inf") else "1×" if r == 1 else f"{r:.{decimals}f}×" if r < 10 else f"{r:.0f}×"


def bench_summary(folder=None) -> str:
    """cda against the official-shape reference: recovery and student speed, stored label bytes."""
    rec = _bench(folder, "recovery").set_index("variant").img_it_per_s
    stu = _bench(folder, "student").set_index("variant").images_per_s
    lab = _bench(folder, "labels")
    small, large = lab[lab.scale.isna()].set_index("format"), lab[lab.scale.notna()].set_index("format")
    ref_r = rec["reference (official shape, fp32)"]
    ref_s = stu[stu.index.str.startswith("reference")].iloc[0]
    auto, one, full = ", speed=auto: channels_last + bf16", "cda (one IPC slot per step", "cda, stored full fp16"
    ten, fp16 = small.loc["all 10 int8, 10 labelled epochs"], small.loc["full fp16 (FKD)"]
    n = lambda *vs: " / ".join(f"{v:,.0f}" for v in vs)
    x = lambda ref, *vs: " / ".join(_x(v / ref) for v in vs)
    row = lambda *cells: "| " + " | ".join(cells) + " |"
    recs = rec[one + auto + ")"], rec[one + ")"], rec["cda (all IPC slots batched)"]
    stus = (stu[full + auto], stu[full], stu[full + auto + " + compile"], stu["cda, stored top-3 int8" + auto],
            stu["cda, online teacher" + auto])
    lines = [row("benchmark", "cda", "reference (official shape)", "ratio", "goal"), "|:---|---:|---:|---:|---:|",
             row("recovery, IPC 10 × 200 it, image-iterations/s: one IPC slot per step, speed=auto", n(recs[0]),
                 n(ref_r), f"**{x(ref_r, recs[0])}**", "1.5×"),
             row("the same in fp32 / all IPC slots in one fp32 batch", n(*recs[1:]), n(ref_r), x(ref_r, *recs[1:]), ""),
             row("student training, IPC 50 × 20 epochs, images/s: stored full fp16 labels, speed=auto", n(stus[0]),
                 n(ref_s), f"**{x(ref_s, stus[0])}**", "3×"),
             row("the same in fp32 / speed=auto + `torch.compile`", n(*stus[1:3]), n(ref_s), x(ref_s, *stus[1:3]), ""),
             row("the same with top-3 int8 labels / the online teacher (speed=auto)", n(*stus[3:]), n(ref_s),
                 x(ref_s, *stus[3:]), ""),
             row("stored label bytes per image-epoch, C = 10: all 10 logits in int8, 10 labelled epochs of 100 "
                 f"(layout / on disk), {_minus(ten.top1_change_vs_full, '+.2f')} points",
                 f"{ten.layout_B_per_view:.1f} / {ten.disk_B_per_view:.1f}",
                 f"{fp16.layout_B_per_view:.1f} / {fp16.disk_B_per_view:.1f}",
                 f"**{_x(ten.ratio_layout)} / {_x(ten.ratio_disk)}**", "20×, ≤ 0.5 points"),
             row('the same, regenerated from the seed by the teacher (`labels="online"`)', "0",
                 f"{fp16.layout_B_per_view:.1f}", "∞", ""),
             row("the same, C = 1000 (layout of synthetic logits, ImageNet-1K): top-10 int8",
                 f"{large.loc['top-10 int8', 'layout_B']:.0f}", n(large.loc["full fp16 (FKD)", "layout_B"]),
                 _x(large.loc["top-10 int8", "ratio_layout"]), "")]
    return "\n" + "\n".join(lines) + "\n"


def student_bench_accuracy(folder=None) -> str:
    stu = _bench(folder, "student")
    ours, ref = stu[~stu.variant.str.startswith("reference")], stu[stu.variant.str.startswith("reference")]
    top3 = ours[ours.variant == "cda, stored top-3 int8"].student_top1.iloc[0]
    full = ours[ours.variant == "cda, stored full fp16"].student_top1.iloc[0]
    return (f"{ours.student_top1.min():.1f}–{ours.student_top1.max():.1f}% against the reference's "
            f"{ref.student_top1.iloc[0]:.1f}% (one seed each; the top-3 labels cost {full - top3:.1f} points "
            f"against the full ones here)")


def label_formats(folder=None) -> str:
    """Bytes and the students' top-1 per stored soft-label format (C = 10)."""
    lab = _bench(folder, "labels")
    lab = lab[lab.scale.isna()].set_index("format")
    def row(label, names, ratio_cols=("ratio_layout", "ratio_disk"), change=True, bytes_cols=None, note=""):
        sub = lab.loc[names]
        j = lambda vals: " / ".join(vals)
        b = bytes_cols(sub) if bytes_cols else j(f"{v:.3g}" for v in sub.layout_B_per_view)
        ratio = j(_x(v, 1) for c in ratio_cols for v in sub[c]) + note
        ch = j(_minus(v, "+.1f") for v in sub.top1_change_vs_full) if change else ""
        return f"| {label} | {b} | {ratio} | {j(f'{v:.1f}' for v in sub.student_top1)} | {ch} |"
    lines = ["| format | bytes per image-epoch (layout / disk) | smaller by | top-1 (mean of 3) | change |",
             "|:---|---:|---:|---:|---:|",
             row("full fp16 with plan (FKD)", ["full fp16 (FKD)"], change=False,
                 bytes_cols=lambda s: f"{s.layout_B_per_view.iloc[0]:.1f} / {s.disk_B_per_view.iloc[0]:.1f}"),
             row("top-1 / top-3 / top-5 int8", ["top-1 int8", "top-3 int8", "top-5 int8"], ratio_cols=("ratio_layout",)),
             row("all 10 int8", ["all 10 int8"],
                 bytes_cols=lambda s: f"{s.layout_B_per_view.iloc[0]:.3g} / {s.disk_B_per_view.iloc[0]:.1f}"),
             row("all 10 int8, 5 / 10 / 20 labelled epochs",
                 [f"all 10 int8, {e} labelled epochs" for e in (5, 10, 20)], ratio_cols=("ratio_layout",),
                 note=" (layout)"),
             row("nothing stored: the teacher regenerates the labels", ["seed only: teacher regenerates them"],
                 ratio_cols=("ratio_layout",))]
    return "\n" + "\n".join(lines) + "\n"


def digits_protocol_rounds(folder=None) -> str:
    """Validation top-1 of random / SRe2L / CDA through the digits preset's three protocol rounds (IPC 1)."""
    names = ["digits-ipc1-protocol", "digits-eb69fdb9-ipc1-protocol", "digits-c51eb59f-ipc1-protocol"]
    rounds = [_knob(_tuning(folder, n), "protocol", "combined")[["random", "sre2l", "cda"]] for n in names]
    last = _knob(_tuning(folder, names[2]), "protocol", "aug.epochs")[["random", "sre2l", "cda"]]
    t = lambda row: " / ".join(f"{v:.1f}" for v in row)
    return (f"random / SRe2L / CDA on validation {t(rounds[0].loc['preset'])} → {t(rounds[0].loc['tuned'])} "
            f"(`{names[0]}.csv`), then {t(rounds[1].loc['tuned'])} (`{names[1]}.csv`); the third round "
            f"(`{names[2]}.csv`) gives {t(last.iloc[-1])} at {last.index[-1]} epochs")


def digits_decided(folder=None, preset: str = "digits") -> str:
    """The cells whose verdict is not inconclusive, each with its paired interval (the rest are)."""
    t = _verdicts(folder, preset)
    t = t[t.n_seeds.fillna(0).gt(0) & (t.verdict != "inconclusive")]
    label = {claim: name for name, (claim, _, _) in _PAIRS.items() if claim} | {"cda-gap-to-full-data": "CDA − full data"}
    margin = lambda cell: f" against a margin of {_minus(float(cell.split('margin ')[1]), 'g')}" if "margin " in cell else ""
    cells = [f"{label.get(r.id, r.id)} at {r.cell.split(',')[0].replace('ipc=', 'IPC ')}, {_interval(r, '+.2f')} "
             f"({r.verdict}{margin(r.cell)})" for r in t.itertuples()]
    return "; ".join(cells) if cells else "none"


def holm_moved(folder=None, preset: str = PRESET) -> str:
    """The cells whose verdict changes under Holm's adjustment across their claim's cells, with both p-values."""
    t = _verdicts(folder, preset)
    t = t[t.n_seeds.fillna(0).gt(0) & (t.verdict != t.verdict_holm)]
    cells = [f"{r.id} ({r.cell}): p {r.p_value:.3f}, {r.p_holm:.3f} after Holm; {r.verdict} → {r.verdict_holm}"
             for r in t.itertuples()]
    return "; ".join(cells) if cells else "none"


def margins(folder=None) -> str:
    """The margins the results page's summary rests on, from results/verdicts/cpu.csv (points)."""
    t = _verdicts(folder)
    t = t[t.n_seeds.fillna(0).gt(0)]
    pick = lambda claim: t[t.id == claim]
    cda = pd.concat([pick("cda-beats-sre2l"), pick("cda-beats-sre2l-other-students")])
    best = cda.sort_values("difference").tail(2)
    fast = pick("cda-converges-faster").query("verdict == 'holds'")
    conv = pd.concat([pick("cudd-beats-cda"), pick("cudd-beats-sre2l")])
    arch = pick("cudd-cross-architecture").query("not cell.str.endswith('convnet3')")
    return (f"CDA − SRe2L at its best cells {', '.join(f'{_interval(r)} ({r.cell})' for r in best.itertuples())}; "
            f"CDA ahead by {fast.difference.min():.1f}–{fast.difference.max():.1f} at "
            f"{', '.join(c.split('iterations=')[1] for c in fast.cell)} recovery iterations; CUDD ahead of SRe2L and "
            f"CDA by {conv.difference.min():.1f}–{conv.difference.max():.1f} on the ConvNet, and of SRe2L by "
            + ", ".join(f"{r.difference:.1f} on {r.cell.split('student=')[1]}" for r in arch.itertuples()))


def recovery_flops(folder=None) -> str:
    """Achieved against peak GFLOP/s of the recovery benchmark, cda at speed=auto and the reference."""
    rec = _bench(folder, "recovery").set_index("variant")
    ours = rec.loc["cda (one IPC slot per step, speed=auto: channels_last + bf16)"]
    ref = rec.loc["reference (official shape, fp32)"]
    return (f"{ours.gflop_per_s:.0f} GFLOP/s with channels_last + bf16, {ours.peak_fraction:.0%} of the "
            f"{ours.peak_gflop_per_s:.0f} GFLOP/s that a bf16 2048 × 2048 matrix product reached on these cores "
            f"in the same run (the reference: {ref.gflop_per_s:.0f} GFLOP/s, {ref.peak_fraction:.0%} of the "
            f"fp32 product's {ref.peak_gflop_per_s:.0f} GFLOP/s)")


def cda_own_recovery(folder=None) -> str:
    """CDA's validation top-1 at its own best recovery values (`r_bn` 0.01, 10 BN groups, 1,000 iterations)."""
    m = _tuning(folder, PRESET)
    own = [_knob(m, "recovery", k).loc[v, "cda"] for k, v in (("r_bn", "0.01"), ("bn_groups", "10"),
                                                               ("iterations", "1000"))]
    return f"{min(own):.1f}–{max(own):.1f}"


def main_table_time(folder=None) -> str:
    """What the main table cost: the tuning's and the main study's provenance, the students' own seconds."""
    from .cache import read_json

    root = Path(folder or results_folder())
    prov = read_json(root / "cda_table2_main_results" / f"{PRESET}.json", what="provenance")
    tuning = read_json(root / "tuning" / f"{PRESET}.json", what="provenance")
    df = _study("cda_table2_main_results", folder)
    teacher = df.query("method == 'teacher' and metric == 'train_seconds'").value.mean()
    rec50 = df.query("ipc == 50 and metric == 'recover_seconds' and method in ['sre2l', 'cda']").value
    student = df.query("metric == 'seconds' and labels != 'hard'").groupby("ipc").value.median()
    ipcs = sorted(student.index, reverse=True)
    return (f"the tuning took {tuning['wall_seconds'] / 60:.1f} min (`results/tuning/{PRESET}.json`) and the "
            f"teacher {teacher / 60:.1f} min; an IPC-50 recovery took {rec50.min():.0f}–{rec50.max():.0f} s and a "
            f"student a median of " + ", ".join(f"{student[i]:.0f} s at IPC {int(i)}" for i in ipcs)
            + f"; the {len(prov['artifacts'])} artifacts of the main table add up to "
            f"{prov['build_seconds'] / 60:.1f} min of recorded build time (`build_seconds`)")


def convergence(preset: str, folder=None) -> str:
    """Where a preset's protocol converges: results/tuning/<preset>-convergence.json (cda tune --convergence)."""
    from .cache import read_json
    from .convergence import table_markdown

    root = Path(folder or results_folder()) / "tuning"
    return table_markdown(read_json(root / f"{preset}-convergence.json", what="provenance"))


def tuning_time(folder=None) -> str:
    from .cache import read_json

    root = Path(folder or results_folder()) / "tuning"
    wall = [read_json(root / f"{name}.json", what="provenance")["wall_seconds"] / 60 for name in (PRESET, f"{PRESET}-cudd")]
    return f"{wall[0]:.1f} min for the protocol and recovery, {wall[1]:.1f} min for CUDD's weights"


SNIPPETS: dict[str, Callable[..., str]] = {"headline": headline, "students": students, "teacher": teacher, "verdicts": verdicts,
                                           "cda_minus_sre2l": cda_minus_sre2l, "build_cost": build_cost,
                                           "build_cost_by_kind": build_cost_by_kind,
                                           # the same on scikit-learn's digits (--preset digits)
                                           "digits_headline": partial(headline, preset="digits"),
                                           "digits_teacher": partial(teacher, preset="digits"),
                                           "digits_cda_minus_sre2l": partial(cda_minus_sre2l, preset="digits"),
                                           # longer students (the runs tagged by their config hash)
                                           "longer_1600": partial(headline, preset="cpu-1e745f8b"),
                                           "longer_800": partial(headline, preset="cpu-851544da"),
                                           # the results page's prose
                                           "ablation_reference": ablation_reference,
                                           "ablation_schedule": ablation_schedule,
                                           "ablation_direction": ablation_direction, "ablation_crop": ablation_crop,
                                           "ablation_recovery": ablation_recovery, "ablation_eval": ablation_eval,
                                           "cudd_components": cudd_components, "noise_robustness": noise_robustness,
                                           "cudd_images": cudd_images, "random_minus_sre2l": random_minus_sre2l,
                                           "hard_labels": hard_labels, "margins": margins,
                                           "main_table_time": main_table_time, "tuning_time": tuning_time,
                                           # the tuning page
                                           "tuning_chosen": tuning_chosen, "tuning_cudd": tuning_cudd,
                                           "longer_validation": longer_validation, "cda_own_recovery": cda_own_recovery,
                                           "longer_800_diffs": longer_800_diffs, "budget_table": budget_table,
                                           "digits_convergence": partial(convergence, "digits"),
                                           # the speed page
                                           "bench_summary": bench_summary, "label_formats": label_formats,
                                           "student_bench_accuracy": student_bench_accuracy, "recovery_flops": recovery_flops,
                                           # the presets page
                                           "digits_protocol_rounds": digits_protocol_rounds,
                                           # the verdicts page
                                           "digits_decided": digits_decided,
                                           # the verdicts page: what Holm's adjustment moves
                                           "holm_moved": holm_moved, "digits_holm_moved": partial(holm_moved, preset="digits")}


def render(text: str, folder: str | os.PathLike | None = None) -> str:
    """`text` with every `<!-- ours:NAME -->...<!-- /ours -->` span filled from the results files."""
    from .paper_numbers import fill_markers

    return fill_markers(text, MARKER, "ours", SNIPPETS, "result", folder)
