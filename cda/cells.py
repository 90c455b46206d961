"""The one executor of student cells: the Context through which a study, `cda run` and `cda tune`
ask the cached workspace for distilled sets and trained students, with the one loop over
evaluation seeds, and the main table's rows (CDA's Table 2 and `cda run`, built here once).

It sits below both the pipeline and the studies: it takes the workspace as an argument and imports
neither.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from . import methods
from .config import EvalConfig, RunConfig, SqueezeConfig, config_hash

if TYPE_CHECKING:
    from .pipeline import Workspace


@dataclass(frozen=True)
class Cell:
    """One student run a study asks for: a student trained on one distilled set, one seed."""

    method: str
    ipc: int
    eval: EvalConfig
    made_by: Any  # the set's options (cda.methods); None: the run's own for the method
    label: str  # the set, for people: "CDA, IPC 10 (cosine, milestone 0.5)"
    ws: Any = None  # the workspace whose teacher recovers and relabels it (None: the study's)
    kind: str = "evaluation"  # what the student is for: "evaluation" (the test set), "robustness", ...


class Pending:
    """A cell's rows, computed when the study's students run (`Context.resolve`)."""

    def __init__(self, compute: Callable[[], list[dict]]):
        self.compute = compute


class Context:
    """A study's access to the cached workspace, and the one executor of its cells.

    A study's compute function runs once. With `deferred=True` (a study run step by step), each set
    it asks for is built or loaded at once, and each student run is recorded in `planned` and left
    as a `Pending` in the rows, which `resolve` replaces by the student's rows (trained or loaded);
    so the sets, then the labels, then the students can run as separate steps, and work outside the
    cells (images kept for the figures, the teacher's accuracy on them) is done once. Without it
    (`cda run`, `cda tune`), each student runs when it is asked for.
    """

    def __init__(self, ws: Workspace, preset: str | None = None, deferred: bool = False,
                 on_set: Callable[[str, Any], None] | None = None, bar=None, main: bool = True):
        self.ws, self.preset, self.deferred = ws, preset, deferred
        n = ws.cfg.ablation_seeds
        # the seeds of this study's cells: all of them in a main table, the first n in the others
        self.seeds = ws.cfg.eval_seeds if main or not n else ws.cfg.eval_seeds[:n]
        self.images: dict[str, Any] = {}  # image tensors saved beside the CSV for the grid figures
        self.planned: list[Cell] = []
        self.wants_full_data = False
        self._sets: dict[str, str] = {}  # sets handed out so far: key -> label
        self._root = self  # the study's Context; for_teacher's share its plan, images and progress bar
        self._teachers: dict[SqueezeConfig, Context] = {}
        self._on_set, self.bar = on_set, bar

    @property
    def bar(self):
        return self._root._bar

    @bar.setter
    def bar(self, bar) -> None:
        self._root._bar = bar

    def for_teacher(self, squeeze: SqueezeConfig) -> Context:
        """This study's Context over another teacher (a study with several recovery models): its sets
        are recovered, and its students relabeled, by `squeeze`'s teacher, in a workspace over the
        same data, cache and log (cda.pipeline.Workspace.for_teacher); its cells join this study's
        plan, so the step-by-step notebook runs them with the others."""
        root = self._root
        if squeeze == root.cfg.squeeze:
            return root
        if squeeze not in root._teachers:
            child = Context(root.ws.for_teacher(squeeze), root.preset, root.deferred, root._on_set)
            child._root, child.seeds, child.images, child.planned = root, root.seeds, root.images, root.planned
            root._teachers[squeeze] = child
        return root._teachers[squeeze]

    def _label(self, method: str, ipc: int | None, tags: dict) -> str:
        """A set for people; another teacher's sets say whose they are."""
        label = set_label(method, ipc, tags)
        if self._root is self:
            return label
        s = self.cfg.squeeze
        return f"{label}, recovered by {s.arch}" + ("" if s.pretrained else f" ({s.epochs} epochs)")

    @property
    def cfg(self) -> RunConfig:
        return self.ws.cfg

    def log(self, message: str) -> None:
        self.ws.log(message)

    def ablation_ipc(self) -> int:
        """The IPC of the ablations: 10 where the preset has it, else its nearest smaller IPC."""
        small = [i for i in self.cfg.ipcs if i <= 10]
        return max(small) if small else min(self.cfg.ipcs)

    def default_students(self) -> tuple[str, ...]:
        """Student architectures for cross-architecture tables: the papers' ResNets on ImageNet-scale
        data; on small images, the preset's ConvNet, a ResNet-18 and a small ViT (add "mobilenet_v2"
        through the `students` parameter: on 2 CPU cores it costs minutes per cell)."""
        if self.cfg.students:  # the preset's own (the papers' tables)
            return tuple(dict.fromkeys((self.cfg.eval.arch, *self.cfg.students)))
        if self.cfg.data.name in ("imagenet1k", "imagenet21k", "tiny_imagenet"):
            return tuple(dict.fromkeys((self.cfg.eval.arch, "resnet18", "resnet50", "resnet101")))
        return tuple(dict.fromkeys((self.cfg.eval.arch, "resnet18", "vit_p4_d4_w128")))

    def class_names(self) -> list[str]:
        info = self.ws.info
        return list(info.classes or [str(i) for i in range(info.num_classes)])

    def made_by(self, method: str, ipc: int, options=None) -> Any:
        """The options that make a method's set: those given, else the run's."""
        return options or methods.options_for(self.cfg, method, ipc)

    def distilled(self, method: str, ipc: int, options=None, snapshot_at: tuple[int, ...] = (),
                  label: str | None = None):
        """A distilled set from the workspace; the first time it is asked for, it is named in the
        log (before it is built) and handed to `on_set` (the notebook shows its images)."""
        key = config_hash(method, ipc, self.made_by(method, ipc, options), list(snapshot_at))
        first = key not in self._sets
        label = label or self._label(method, ipc, {})
        if first and self.deferred:
            self.log(f"set: {label}")
        d = self.ws.distilled(method, ipc, options, snapshot_at=snapshot_at)
        if first:
            self._sets[key] = label
            if self._on_set is not None:
                self._on_set(label, d)
        return d

    def cells(self, method: str, ipc: int, eval_cfg: EvalConfig | None = None, options=None,
              **tags) -> list:
        """Long-format rows of one evaluated cell, over the study's evaluation seeds."""
        def one(e: EvalConfig, opts, seed: int) -> list[dict]:
            metrics = self.ws.evaluation(method, ipc, e, opts)
            self._done(method, ipc, e, tags, f"top-1 {metrics['top1']:.1f}%")
            return self._rows(method, ipc, e, metrics, tags, seed)

        if not self.deferred:  # the seeds' students that can share a pass, trained together first
            self.ws.evaluations_at_once([(method, ipc, *self.cfg.for_seed(seed, eval_cfg, self._options(method, ipc, options)))
                                         for seed in self.seeds])
        return self._seeded(method, ipc, eval_cfg, options, tags, one)

    def noisy_cells(self, method: str, ipc: int, sigmas: tuple[float, ...], eval_cfg: EvalConfig | None = None,
                    options=None) -> list:
        """Rows of students tested on the test set with Gaussian pixel noise of each std in `sigmas`."""
        def one(e: EvalConfig, opts, seed: int) -> list[dict]:
            results = self.ws.robustness(method, ipc, sigmas, e, opts)
            self._done(method, ipc, e, {}, ", ".join(f"top-1 {m['top1']:.1f}% at noise {s:g}"
                                                     for s, m in results.items()))
            return [row for sigma, metrics in results.items()
                    for row in self._rows(method, ipc, e, metrics, {"sigma": sigma}, seed)]

        return self._seeded(method, ipc, eval_cfg, options, {}, one, kind="robustness")

    def _seeded(self, method: str, ipc: int, eval_cfg: EvalConfig | None, options, tags: dict,
                one: Callable[[EvalConfig, Any, int], list[dict]], kind: str = "evaluation") -> list:
        """The one loop over seeds: each seed's student recipe and set options (seed_scope "student":
        only the student's seed moves; "all": its views and the set's noise too), run now or, deferred,
        with the set built now and the student left `Pending`."""
        rows: list = []
        for seed in self.seeds:
            e, opts = self.cfg.for_seed(seed, eval_cfg, self._options(method, ipc, options))
            if not self.deferred:
                rows += one(e, opts, seed)
                continue
            label = self._label(method, ipc, tags)
            self.distilled(method, ipc, opts, label=label)
            self.planned.append(Cell(method, ipc, e, opts, label, self.ws, kind))
            rows.append(Pending(lambda e=e, opts=opts, seed=seed: one(e, opts, seed)))
        return rows

    def _options(self, method: str, ipc: int, options):
        """The set's options as given, or (only where every seed draws its own set) the run's."""
        if options is not None or self.cfg.seed_scope == "student":
            return options
        return methods.options_for(self.cfg, method, ipc)

    def train_at_once(self) -> int:
        """The planned evaluation students that can share a pass, trained together now, each
        workspace's (teacher's) own (Workspace.evaluations_at_once); `resolve` then loads them.
        Returns how many were trained."""
        asks: dict[int, tuple] = {}
        for c in self.planned:
            if c.kind == "evaluation":
                ws = c.ws or self.ws
                asks.setdefault(id(ws), (ws, []))[1].append((c.method, c.ipc, c.eval, c.made_by))
        return sum(ws.evaluations_at_once(cells) for ws, cells in asks.values())

    def resolve(self, rows: list) -> list[dict]:
        """The rows with every `Pending` student trained (or loaded) and replaced by its rows."""
        return [r for item in rows for r in (item.compute() if isinstance(item, Pending) else [item])]

    def _done(self, method: str, ipc: int, e: EvalConfig, tags: dict, what: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
        self.log(f"student {e.arch} on {self._label(method, ipc, tags)}, seed {e.seed}: {what}")

    def _rows(self, method, ipc, e: EvalConfig, metrics: dict, tags: dict, seed: int | None = None) -> list[dict]:
        """Long-format rows; `seed` is the run's evaluation seed (under seed_scope "all" the student's
        own seed is derived from it)."""
        base = self.row(method, ipc, e.seed if seed is None else seed, e.arch, e.labels, **tags)
        return [dict(base, metric=k, value=v) for k, v in metrics.items()]

    def row(self, method: str, ipc: int | None, seed: int, student: str = "", labels: str = "", **tags) -> dict:
        """The one row schema (cda.results.COLUMNS, then the study's own columns): every column but
        metric and value, which the caller adds. A row that no student made (a set's recovery loss,
        the teacher's accuracy on its images) has an empty student and labels."""
        return dict(dataset=self.ws.info.name, method=method, ipc=ipc, teacher=self.cfg.squeeze.arch,
                    student=student, labels=labels, seed=seed, **tags)

    def reference_rows(self, full_data: bool = True, **tags) -> list:
        """The teacher's and the full-data student's accuracies (ipc empty); the teacher's alone with
        `full_data=False` or from another teacher's Context (for_teacher)."""
        _, meta = self.ws.teacher()
        rows = self._rows("teacher", None, replace(self.cfg.eval, arch=self.cfg.squeeze.arch, labels="hard",
                                                   seed=self.cfg.squeeze.seed), meta["metrics"], tags)
        if not (full_data and self.cfg.full_data) or self._root is not self:
            return rows

        def full() -> list[dict]:
            e = replace(self.cfg.eval, labels="hard", seed=self.cfg.squeeze.seed + 1)
            metrics = self.ws.full_data()
            self._done("full", None, e, {}, f"top-1 {metrics['top1']:.1f}%")
            return self._rows("full", None, e, metrics, tags)

        if not self.deferred:
            return rows + full()
        self.wants_full_data = True
        return rows + [Pending(full)]


def set_label(method: str, ipc: int | None, tags: dict) -> str:
    """A distilled set for people: the method, the IPC and the study's variant, if any."""
    name = methods.label(method)
    if ipc is None:
        return f"{name} (all training images)"
    detail = tags.get("variant") or (f"{tags['iterations']} recovery iterations" if "iterations" in tags else "")
    return f"{name}, IPC {ipc}" + (f" ({detail})" if detail else "")


def main_table_rows(ctx: Context, ipcs, methods, students, extra_student_max_ipc: int | None = None,
                    hard_labels: bool = False) -> list[dict]:
    """The main table (CDA's Table 2, and `cda run`): every method at every IPC with the first
    student, the other students at the IPCs up to `extra_student_max_ipc`, then the teacher's and
    the full-data student's rows. `hard_labels`: the first student also trains on each set with its
    class labels alone (labels "hard"), for DD-Ranking's HLR (cda.verdicts.field_metrics)."""
    rows = []
    for i, arch in enumerate(students):
        for ipc in ipcs:
            if i > 0 and extra_student_max_ipc is not None and ipc > extra_student_max_ipc:
                continue
            for method in methods:
                e = replace(ctx.cfg.eval_for(method), arch=arch)  # each method's own student recipe
                rows += ctx.cells(method, ipc, e)
                if hard_labels and i == 0 and e.labels != "hard":
                    rows += ctx.cells(method, ipc, replace(e, labels="hard"))
    return rows + ctx.reference_rows()
