"""A study in steps a person can run one at a time (the notebooks' cells), or all at once (`run`).

    s = studies.open("cda_ablation_scheduler", preset="smoke")
    s.config        # what will run, and where the results go
    s.teacher()     # trains or loads the teacher; its accuracy
    s.distill()     # builds or loads every distilled set the study needs, showing each
    s.labels()      # the soft labels (stored ones are built here)
    s.students()    # trains or loads every student, with progress bars
    s.finish()      # writes results/<study>/<preset>.csv, its provenance and the figures
    s.tables()      # the tables, beside the paper's numbers where there are any
    s.verdicts()    # the verdict on each paper claim the study tests, with its interval
    s.figures()     # the figures

Every step asks the cached workspace, so a step run early makes the later ones instant, and
skipping to `finish()` runs whatever is still missing. `studies.open(..., saved=True)` shows the
saved results/<study>/<preset>.csv and its figures instead, computing nothing.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from .. import methods, plots
from ..cache import publishing, read_json
from ..config import ConfigError, RunConfig, config_hash, from_dict, to_dict
from ..config import preset as make_preset
from ..paths import cache_dir
from ..pipeline import Workspace
from ..results import read_results, write_results
from ..training import resolve_device
from ._core import (
    GRID_CLASSES,
    STUDIES,
    Context,
    Study,
    figures_dir,
    get,
    markdown,
    project_root,
    readable,
    results_path,
    run_tag,
    set_label,
)


@dataclass(repr=False)
class StudyResult:
    name: str
    preset: str
    df: pd.DataFrame
    csv: Path
    figures: list[Path]
    cfg: RunConfig | None = None

    def __repr__(self) -> str:
        return (f"StudyResult({self.name!r}, preset {self.preset!r}: {len(self.df)} rows in {self.csv}, "
                f"{len(self.figures)} figure files)")


class Text:
    """Text that a notebook shows as it is (no quotes) and that prints as it is."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


class TableList(list):
    """[(caption, table)] that a notebook shows as Markdown and a terminal prints as Markdown."""

    def __str__(self) -> str:
        return "\n\n".join(f"{caption}\n\n{markdown(table)}" for caption, table in self)

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return "\n\n".join(f"**{caption}**\n\n{markdown(table)}" for caption, table in self)


def _synthesized(d) -> bool:
    """Whether a distilled set was synthesized (not real images picked), by its method's entry."""
    name = d.meta.get("method")
    return name in methods.list_methods() and methods.get(name).synthesis is not None


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _show_png(data: bytes) -> None:
    from IPython.display import Image, display

    display(Image(data=data, format="png"))


def _show_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


# ---------------------------------------------------------------------------------------------
# Opening a study.

def custom_params(st: Study, params: dict) -> dict:
    """The study parameters that differ from the defaults of its compute function; a clear error
    for a parameter it does not take."""
    defaults = st.parameters()
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"study {st.name!r} takes no parameter {unknown}; it takes {list(defaults)}")

    def norm(v):
        return tuple(v) if isinstance(v, (list, tuple)) else v

    return {k: v for k, v in params.items() if v is not None and norm(v) != norm(defaults[k])}


def open_study(name: str | Study, preset: str = "cpu", overrides: dict | None = None,
               root: str | os.PathLike | None = None, progress: bool = True, log: Callable[[str], None] = print,
               saved: bool = False, **params) -> "OpenStudy":
    """A study, ready to run step by step (`saved=True`: its saved results, computing nothing)."""
    st = name if isinstance(name, Study) else get(name)
    return OpenStudy(st, preset, overrides or {}, root, params, progress, log, saved=saved)


def run(name: str | Study, preset: str = "cpu", overrides: dict | None = None,
        root: str | os.PathLike | None = None, progress: bool = True, log: Callable[[str], None] = print,
        **params) -> StudyResult:
    """Run (or load from the cache) every cell of a study, write its results and draw its figures."""
    s = open_study(name, preset, overrides, root, progress=progress, log=log, **params)
    s.teacher()
    s.distill()
    s.labels()
    s.students()
    return s.finish()


def redraw(name: str | Study, preset: str = "cpu", root: str | os.PathLike | None = None) -> list[Path]:
    """Draw a study's figures from its saved results alone (`preset`: the results' file stem, e.g.
    "cpu", or "cpu-<hash>" for a run with overrides)."""
    st = name if isinstance(name, Study) else get(name)
    root = Path(root or project_root())
    paths = []
    for fig_name, fig in _draw(st, results_path(st.name, preset, root)).items():
        paths += plots.save_figure(fig, figures_dir(preset, root) / f"{st.name}_{fig_name}")
    return paths


def _draw(st: Study, csv: Path) -> dict[str, Any]:
    """A study's figures, drawn from its results file (and the image file beside it, if any)."""
    from ..cache import load_torch

    images_file = csv.with_suffix(".images.pt")
    images = load_torch(images_file, what="study images") if images_file.is_file() else {}
    return st.draw(read_results(csv), images)


def load(name: str, preset: str = "cpu", root: str | os.PathLike | None = None) -> pd.DataFrame:
    return read_results(results_path(get(name).name, preset, root))


def built(preset: str = "cpu", root: str | os.PathLike | None = None) -> list[str]:
    """The studies whose results at `preset` are saved under `root` (the project's: committed), in the
    registry's order; a study added before its build is left out until `cda study NAME --preset
    <preset> --publish` (or `make publish`) has run."""
    return [name for name in STUDIES if results_path(name, preset, root).is_file()]


def tables(name: str, df: pd.DataFrame, root: str | os.PathLike | None = None) -> TableList:
    """The tables a study's notebook shows, from its results alone."""
    return TableList(get(name).tables(df, root))


class OpenStudy:
    """A study opened step by step (the notebooks' cells). Its rows have one of two sources: computed
    by the executor (cda.cells.Context, through the cached workspace), or, with `saved=True`, read
    from the saved results/<study>/<preset>.csv and its provenance, computing nothing. The steps,
    tables, verdicts and figures are the same for both; each step says where its numbers come from."""

    def __init__(self, st: Study, preset: str, overrides: dict, root, params: dict, progress: bool, log,
                 saved: bool = False):
        self.study, self.name, self.preset, self.overrides = st, st.name, preset, overrides
        self.root_given = root is not None and Path(root).resolve() != project_root().resolve()
        self.root = Path(root or project_root())
        self.progress, self.log = progress, log
        self.custom = custom_params(st, params)
        self.params = {k: v for k, v in params.items() if v is not None}
        # a run away from the defaults writes beside the default results, never over them
        self.tag = run_tag(preset, overrides, self.custom)
        self.csv = results_path(self.name, self.tag, self.root)
        self.saved = saved
        self.result: StudyResult | None = None
        self.teacher_metrics: dict | None = None  # after teacher()
        self._shown: set[str] = set()  # figures a step already showed
        self.sets: dict[str, Any] = {}  # label -> distilled set, after distill() (computed)
        self.label_table: pd.DataFrame | None = None  # after labels() (computed)
        self.rows: list[dict] | None = None  # after students() (computed)
        self.images: dict[str, Any] = {}
        self._ws: Workspace | None = None
        self._plan: Context | None = None  # after distill(): the one Context the study computed with
        self._pending: list = []  # the study's rows, students still Pending, after distill()
        self._seconds = 0.0  # time spent in the steps (not waiting between notebook cells)
        if saved:
            self._read_saved()
        else:
            cfg = self._preset_config()
            resolve_device(cfg.device)  # a clear error now, not after the data has loaded
            self.cfg = replace(cfg, cache_dir=cache_dir(cfg.cache_dir, self.root))  # the one rule (cda.paths)

    def _read_saved(self) -> None:
        """The saved source: the results, their provenance and the config they were computed with."""
        if not self.csv.is_file():
            raise FileNotFoundError(f"no saved results at {self.csv}; run the study (saved=False) to compute them")
        self.df = read_results(self.csv)
        prov_file = self.csv.with_suffix(".json")
        self.prov = read_json(prov_file, what="provenance") if prov_file.is_file() else {}
        try:
            self.cfg = from_dict(RunConfig, self.prov["config"]["run"])
        except (KeyError, TypeError, ConfigError):  # provenance of an older config layout: the preset's settings
            self.cfg = self._preset_config()
        commit = str(self.prov.get("git_commit", "unknown"))
        self.source = (f"loaded from {self._where(self.csv)} (computed by commit {commit[:7]}{'+dirty' * commit.endswith('+dirty')}, "
                       f"written {str(self.prov.get('written', '?'))[:10]}); nothing is recomputed")
        self.short = f"saved in {self._where(self.csv)}"

    def _preset_config(self) -> RunConfig:
        """The preset with the overrides, and what the study needs of it (Study.config)."""
        cfg = make_preset(self.preset, **self.overrides)
        return self.study.config(cfg) if self.study.config else cfg

    def _where(self, path: Path) -> str:
        """A path for people, relative to the output root (the same text on every machine)."""
        rel = path.relative_to(self.root).as_posix()
        return rel if not self.root_given else f"<output_root>/{rel}"

    @property
    def ws(self) -> Workspace:
        if self.saved:  # saved results never open the workspace (hasattr(s, "ws") is False)
            raise AttributeError(f"{self.name}: saved results open no workspace; open the study with saved=False")
        if self._ws is None:
            if self.cfg.device.startswith("cuda") or self.cfg.data.name != "fashion_mnist":
                self.log(f"{self.name}: preset {self.preset!r} on {self.cfg.data.name}, device {self.cfg.device}")
            self._ws = Workspace(self.cfg, self.progress, self.log)
            self._ws.commit  # noqa: B018 (read now: the provenance names the code this run started with)
            self.cfg = self._ws.cfg  # with speed="auto", the settings chosen for this machine
        return self._ws

    @property
    def config(self) -> Text:
        """What runs (or ran), with which settings, and where its results go."""
        cfg, e, r = self.cfg, self.cfg.eval, self.cfg.recover
        d, s = cfg.data, cfg.squeeze
        subset = (f", {d.train_per_class} training and {d.test_per_class} test images per class"
                  if d.train_per_class or d.test_per_class else ", all images")
        params = {**self.study.parameters(), **self.params}
        lines = [f"study       {self.name}: {self.study.title}",
                 f"preset      {self.preset}" + (f", overrides {self.overrides}" if self.overrides else ""),
                 "parameters  " + (", ".join(f"{k}={v!r}" for k, v in params.items()) or "none")
                 + "  (None: the preset's choice)",
                 f"data        {d.name}{subset}",
                 f"teacher     {s.arch}, {s.epochs} epochs, batch {s.batch_size}, lr {s.lr:g}",
                 f"recovery    {r.iterations} iterations, lr {r.lr:g}, r_bn {r.r_bn:g}, jitter {r.jitter}; "
                 f"CDA's crop curriculum: {cfg.curriculum.schedule}, {cfg.curriculum.start_scale:g} to {cfg.curriculum.end_scale:g}",
                 f"students    {e.arch}, {e.aug.epochs} epochs, batch {e.aug.batch_size}, crop scale "
                 f"{tuple(e.aug.crop_scale)}, {e.aug.mix}, {e.labels} labels at T={e.temperature:g}",
                 f"IPCs        {', '.join(map(str, cfg.ipcs))}; evaluation seeds "
                 f"{', '.join(map(str, cfg.eval_seeds))}; full-data reference: {'yes' if cfg.full_data else 'no'}",
                 f"device      {cfg.device}",
                 f"results     {self._where(self.csv)} (+ .json provenance)",
                 f"figures     {self._where(figures_dir(self.tag, self.root))}/{self.name}_*.png and .pdf"]
        if self.saved:
            lines.append(f"source      {self.source}")
        return Text("\n".join(lines))

    @contextmanager
    def _timed(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds += time.perf_counter() - start

    def teacher(self) -> None:
        """The teacher and its test accuracy (`teacher_metrics`): trained or loaded; saved: from these
        results or from another study's that used the same teacher."""
        if self.saved:
            rows, where = self._teacher_rows()
            if rows is None:
                self.log(f"teacher {self.cfg.squeeze.arch}: its accuracy is in no saved results at preset {self.tag!r}")
                return
            m = self.teacher_metrics = dict(zip(rows.metric, rows.value))
            self.log(f"teacher {self.cfg.squeeze.arch} on {rows.dataset.iloc[0]}: top-1 {m['top1']:.1f}%, "
                     f"top-5 {m.get('top5', float('nan')):.1f}% on the test set (trained in "
                     f"{m.get('train_seconds', 0):.0f} s); {where}")
            return
        with self._timed():
            _, meta = self.ws.teacher()
        m = self.teacher_metrics = meta["metrics"]
        self.log(f"teacher {self.cfg.squeeze.arch} on {self.ws.info.name}: top-1 {m['top1']:.1f}%, "
                 f"top-5 {m['top5']:.1f}% on the test set (trained in {m.get('train_seconds', 0):.0f} s)")

    def _teacher_rows(self) -> tuple[pd.DataFrame | None, str]:
        own = self.df[self.df.method == "teacher"]
        if len(own):
            return own, self.short
        keys = {k for k in self.prov.get("artifacts", {}) if k.startswith("teacher/")}
        for csv in sorted((self.root / "results").glob(f"*/{self.tag}.csv")):
            other = csv.with_suffix(".json")
            if csv == self.csv or not other.is_file():
                continue
            shared = keys & set(read_json(other, what="provenance").get("artifacts", {}))
            if shared:
                df = read_results(csv)
                rows = df[df.method == "teacher"]
                if len(rows):
                    return rows, (f"from {self._where(csv)}, which used the same teacher "
                                  f"({', '.join(sorted(shared))})")
        return None, ""

    def distill(self) -> None:
        """Build or load every distilled set the study needs (in a notebook, showing each one's images);
        saved: the sets these results used, with their synthesis times, and the saved image grids."""
        if self.saved:
            return self._saved_sets()
        if self._plan is not None:
            return
        with self._timed():
            ctx = Context(self.ws, self.preset, deferred=True, on_set=self._set_ready, main=self.study.main)
            self._pending = self.study.compute(ctx, **self.params)  # the students left Pending
        self._plan = ctx
        self.log(f"{len(self.sets)} distilled sets ready; {len(ctx.planned)} student runs to go"
                 + (" and the full-data student" if ctx.wants_full_data else ""))

    def _saved_sets(self) -> None:
        self.log(f"the distilled sets these results used ({self.short}):")
        sec = self.df[self.df.metric == "recover_seconds"]
        if len(sec):
            tag_cols = [c for c in ("variant", "iterations") if c in sec.columns]
            sets = sec.assign(set=[set_label(r.method, None if pd.isna(r.ipc) else int(r.ipc),
                                             {c: getattr(r, c) for c in tag_cols if not pd.isna(getattr(r, c))})
                                   for r in sec.itertuples()])
            table = sets.groupby("set", sort=False)["value"].first().round(0).to_frame("synthesis (s)")
            self._show_table(table)
        else:
            n = sum(k.startswith("distilled/") for k in self.prov.get("artifacts", {}))
            self.log(f"{n} distilled sets (see the provenance {self._where(self.csv.with_suffix('.json'))})")
        if _in_notebook():
            for name, fig in self._drawn(lambda name: "grid" in name or "images" in name).items():
                _show_png(plots.png_bytes(fig))
                self._shown.add(name)

    def _set_ready(self, label: str, d) -> None:
        self.sets[label] = d
        seconds = d.meta.get("seconds")
        self.log(f"  {len(d.labels)} images" + (f", synthesized in {seconds:.0f} s" if seconds else ""))
        if _in_notebook():
            classes = list(self.ws.info.classes or [str(i) for i in range(self.ws.info.num_classes)])
            ipc = int(torch.bincount(d.labels.cpu()).max())
            fig = plots.distilled_grid({label: (d.images, d.labels)}, classes[:GRID_CLASSES], per_class=min(ipc, 4))
            _show_png(plots.png_bytes(fig, dpi=80))

    def labels(self) -> None:
        """The students' labels: stored soft labels are built here (with `labels="stored"`); online
        soft labels come from the teacher during training. Shows the teacher's softmax on the first
        image of each class of one synthesized set (`label_table`). Saved: which labels the students had."""
        if self.saved:
            how = {"online": "soft labels from the teacher, computed online on every augmented batch the students saw",
                   "stored": "soft labels stored once per augmented view (in the cache, not in the results)",
                   "hard": "hard class labels"}[self.cfg.eval.labels]
            return self.log(f"labels: {how}")
        self.distill()
        e = self.cfg.eval
        with self._timed():
            stored = {}
            for c in self._plan.planned:
                if c.eval.labels == "stored":
                    stored.setdefault((c.label, config_hash(c.eval.aug)), c)
            for c in stored.values():  # under the key the students read them by
                (c.ws or self.ws).labels(c.method, c.ipc, c.eval, c.made_by)  # by the cell's own teacher
            how = {"online": "soft labels from the teacher, computed online on every augmented batch the students see",
                   "stored": f"soft labels stored once per augmented view ({len(stored)} label sets ready)",
                   "hard": "hard class labels"}[e.labels]
            self.log(f"labels: {how}")
            label, d = next(((k, v) for k, v in self.sets.items() if _synthesized(v)),
                            next(iter(self.sets.items()), (None, None)))
            if d is None:
                return
            table = self.label_table = self._soft_labels(d)
        self.log(f"the teacher's softmax on the first image of each class of {label} (whole image, T=1):")
        if _in_notebook():
            _show_markdown(markdown(table))
        else:
            self.log(markdown(table))

    def _soft_labels(self, d) -> pd.DataFrame:
        teacher, _ = self.ws.teacher()
        classes = list(self.ws.info.classes or [str(i) for i in range(self.ws.info.num_classes)])
        keep = torch.cat([torch.nonzero(d.labels == k).flatten()[:1] for k in range(min(len(classes), GRID_CLASSES))])
        dev = next(teacher.parameters()).device
        with torch.no_grad():
            probs = torch.softmax(teacher.eval()(self.ws.info.normalize(d.images[keep].to(dev))).float(), 1).cpu()
        top = probs.topk(min(3, probs.shape[1]), dim=1)
        rows = []
        for i, k in enumerate(d.labels[keep].tolist()):
            rows.append({"class": classes[k], "p(class)": round(float(probs[i, k]), 3),
                         "teacher's top classes": ", ".join(f"{classes[j]} {p:.2f}" for p, j in
                                                            zip(top.values[i].tolist(), top.indices[i].tolist()))})
        return pd.DataFrame(rows).set_index("class")

    def students(self) -> None:
        """Train or load every student the study needs (a progress bar over them, and one per
        student); the study's rows are then in `rows`. Saved: how many students these results hold,
        and what they cost."""
        if self.saved:
            return self._saved_students()
        from tqdm.auto import tqdm

        self.distill()
        plan = self._plan
        total = len(plan.planned) + plan.wants_full_data
        with self._timed(), tqdm(total=total, desc=f"{self.name}: students", disable=not self.progress or not total,
                                 leave=True) as bar:
            plan.bar = bar
            plan.train_at_once()  # RunConfig.students_at_once; resolve() then loads them
            self.rows = plan.resolve(self._pending)
            plan.bar = None
        self.images = plan.images

    def _saved_students(self) -> None:
        students = self.df[self.df.ipc.notna() & self.df.student.notna()]  # an empty student reads as NaN
        top = students[students.metric == "top1"]
        seconds = students[students.metric == "seconds"].value.sum()
        n = len(top.drop(columns=["metric", "value", "sigma"], errors="ignore").drop_duplicates())
        if len(top):
            self.log(f"{n} students (top-1 from {top.value.min():.1f}% to {top.value.max():.1f}%)"
                     + (f", {seconds:.0f} s of training when they were computed" if seconds else "")
                     + f"; {self.short}")
        else:
            self.log(f"no students in this study; {self.short}")

    def finish(self) -> StudyResult:
        """Write results/<study>/<preset>.csv with its provenance JSON (and the grid images), then draw
        the figures from them; runs whatever step is still missing first. Saved: nothing to write, the
        saved results and figures (figures redrawn only where missing)."""
        if self.saved:
            figures = self._figure_files() or redraw(self.study, self.tag, self.root)
            self.result = StudyResult(self.name, self.preset, self.df, self.csv, figures, self.cfg)
            self.log(f"{self.name} ({self.tag}): {len(self.df)} rows, {len(figures) // 2} figures; {self.source}")
            return self.result
        if self.rows is None:
            self.students()
        with self._timed():
            provenance_config = {"preset": self.preset, "overrides": self.overrides, "params": self.params,
                                 "run": to_dict(self.cfg)}
            # wall_seconds is the time spent in the steps, short when the artifacts come from the cache;
            # build_seconds is what those artifacts cost when they were built (each once; the teacher is
            # shared by every study).
            with publishing(self.csv):
                df = write_results(self.rows, self.csv, provenance_config, self._seconds, self.cfg.device,
                                   extra=self.ws.cache.cost())
                if self.images:
                    from ..cache import save_torch
                    save_torch(self.images, self.csv.with_suffix(".images.pt"))
                figures = redraw(self.study, self.tag, self.root)
        self.result = StudyResult(self.name, self.preset, df, self.csv, figures, self.cfg)
        self.log(f"{self.name} ({self.tag}): {len(df)} rows in {self.csv}, {len(figures) // 2} figures, "
                 f"{self._seconds:.0f} s")
        return self.result

    def _figure_files(self) -> list[Path]:
        folder = figures_dir(self.tag, self.root)
        return sorted(p for p in folder.glob(f"{self.name}_*") if p.suffix in (".png", ".pdf"))

    def _show_table(self, table: pd.DataFrame) -> None:
        if _in_notebook():
            _show_markdown(markdown(table))
        else:
            self.log(markdown(table))

    def tables(self) -> TableList:
        """The study's tables, from its results."""
        return TableList(self.study.tables(self._result().df, self.root))

    def verdicts(self) -> TableList | Text:
        """The verdict on each paper claim this study tests (its declaration's `claims`), from its results:
        per cell, the paper's number where it was available, ours (a − b paired by seed, with its
        95% interval and the number of seeds) and holds / does not hold / inconclusive."""
        from ..verdicts import study_verdicts

        table = pd.DataFrame(study_verdicts(self.name, self._result().df, self.study.claims, self.root / "results"))
        if table.empty:
            return Text("No claim of the papers is judged on this study's numbers (its declaration's `claims`); "
                        "it is shown for what it lets you see.")
        out = []
        for claim, g in table.groupby("claim", sort=False):
            t = g[["cell", "paper_number", "ours", "verdict"]].rename(columns={
                "paper_number": "the paper (points)", "ours": "ours (points) [95% interval]"})
            t["the paper (points)"] = t["the paper (points)"].map(lambda v: "not available" if pd.isna(v) else
                                                                  f"{v:.1f}")
            out.append((f"{g.paper.iloc[0]}: {claim} (the paper's number: {g.paper_source.iloc[0]})",
                        readable(t.set_index("cell"))))
        return TableList(out)

    def figures(self) -> None:
        """Show the study's figures in a notebook (drawn from the results at screen resolution; the
        files are at 200 dpi), or log their paths."""
        paths = self._result().figures
        if not _in_notebook():
            for path in paths:
                self.log(f"figure: {path}")
            return
        for name, fig in self._drawn().items():
            if name in self._shown:
                self.log(f"({name}: shown above)")
            else:
                _show_png(plots.png_bytes(fig))

    def _drawn(self, which: Callable[[str], bool] = lambda name: True) -> dict[str, Any]:
        """The study's figures (those whose names `which` accepts), drawn from its saved results."""
        return {k: fig for k, fig in _draw(self.study, self.csv).items() if which(k)}

    def _result(self) -> StudyResult:
        return self.result or self.finish()
