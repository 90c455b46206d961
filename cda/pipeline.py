"""The whole pipeline, with every artifact cached by the hash of the config that made it.

Teachers, distilled sets, stored labels and evaluation results are each computed once; a rerun (or
another notebook asking for the same thing) loads them, and an interrupted run resumes at the last
finished artifact.
"""
from __future__ import annotations

import functools
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch
from torch import nn

from . import methods, speed
from .cache import Cache, publishing, read_json, write_json
from .cells import Context, main_table_rows  # the main table's one producer, for this and its notebook
from .checkpoint import load_checkpoint
from .config import EvalConfig, RecoverConfig, RunConfig, SqueezeConfig
from .data import DatasetInfo, info_for, load_split, with_image_size
from .distilled import Distilled
from .plan import plan_run
from .relabel import StoredLabels, relabel
from .results import git_commit
from .runtime import Runtime
from .squeeze import squeeze
from .student import evaluate, noisy_accuracy, train_student
from .students_batched import batchable, recipe, train_students
from .training import test_accuracy


class Workspace:
    """Cached access to every artifact of a run: teacher, distilled sets, labels, evaluations."""

    def __init__(self, cfg: RunConfig, progress: bool = True, log: Callable[[str], None] = print):
        # Opening a workspace reads nothing: the splits, the speed choice and the commit are read
        # when first asked for (the properties below).
        self.progress, self.log = progress, log
        methods.check_run(cfg)
        self._given = cfg
        # under speed="auto" the speeds are set with the runtime (measured), before any key is made
        self.cache = Cache(cfg.cache_dir, log, speeds=cfg.speeds if cfg.speed == "fixed" else None)
        self._val = None
        self._teachers: dict[str, tuple[nn.Module, dict]] = {}

    @functools.cached_property
    def info(self) -> DatasetInfo:
        return info_for(self._sized.data)

    @functools.cached_property
    def _sized(self) -> RunConfig:
        return replace(self._given, data=with_image_size(self._given.data))  # a tree's own size, in every key

    @functools.cached_property
    def runtime(self) -> Runtime:
        """Where and how the work runs: the device, TF32 on CUDA (entered around each artifact's making)
        and each stage's speed settings, chosen for this machine under speed="auto" (measured once,
        cda.speed); the cache stamps them into its keys (cda.cache.stamped)."""
        with Runtime(self._given.device).applied():
            speeds = speed.resolve(self._sized, self.info, self.log)
        self.cache.speeds = speeds
        return Runtime(self._given.device, speeds=speeds)

    @functools.cached_property
    def cfg(self) -> RunConfig:
        """The run's config (a tree's image size filled in) with its runtime's speed settings (under
        speed="auto" the ones chosen for this machine), resolved before any cache key is made."""
        return replace(self._sized, speeds=self.runtime.speeds)

    @functools.cached_property
    def train(self):
        return load_split(self.cfg.data, train=True)

    @functools.cached_property
    def test(self):
        return load_split(self.cfg.data, train=False)

    @functools.cached_property
    def commit(self) -> str:
        """The checkout's commit, read once per process (cda.results.git_commit): ask for it at the
        start of a long run, so that its provenance names the code it started with."""
        return git_commit(str(Path(__file__).parent))

    def _applied(self, make: Callable[[Path], Any]) -> Callable[[Path], Any]:
        """`make` run under the workspace's runtime (TF32 on CUDA), which is put back after it."""
        def run(folder: Path):
            with self.runtime.applied():
                return make(folder)
        return run

    def tested_on(self, e: EvalConfig):
        """The split a student of `e` is tested on: the test set, or the validation images for tuning."""
        if e.split == "test":
            return self.test
        if self._val is None:
            self._val = load_split(self.cfg.data, split="val")
        return self._val

    def teacher(self, squeeze_cfg: SqueezeConfig | None = None) -> tuple[nn.Module, dict]:
        """A trained model and its checkpoint metadata (test accuracy, seconds)."""
        s = squeeze_cfg or self.cfg.squeeze
        key = self.cache.folder("teacher", self.cfg.data, s).name
        if key not in self._teachers:
            def make(folder: Path):
                self.log(f"squeeze: training {s.arch} on {self.info.name} ({s.epochs} epochs)")
                squeeze(self.cfg.data, s, self.cfg.device, folder / "teacher.pt", self.progress, progress_dir=folder,
                        speed=self.runtime.speeds.teacher)

            self._teachers[key] = self.cache.get_or_make(
                "teacher", (self.cfg.data, s), self._applied(make),
                lambda folder: load_checkpoint(folder / "teacher.pt", self.info, self.cfg.device))
        return self._teachers[key]

    def for_teacher(self, squeeze_cfg: SqueezeConfig) -> Workspace:
        """A workspace like this one whose teacher is `squeeze_cfg` (a study with several recovery
        models): the same data, cache folder and log; the splits already read are shared, and its
        artifacts are counted in this one's cost ledger. Its own runtime stamps its keys (under
        speed="auto", recovery's settings are chosen for its teacher)."""
        other = Workspace(replace(self._given, squeeze=squeeze_cfg), self.progress, self.log)
        other.cache.ledger = self.cache.ledger
        for name in ("train", "test"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        other._val = self._val
        return other

    def _distilled_configs(self, options: Any, snapshot_at: tuple[int, ...] = ()) -> tuple:
        """What a distilled set's cache key is made of: the data, the teacher, how the set is made."""
        return (self.cfg.data, self.cfg.squeeze, options, list(snapshot_at))

    def distilled(self, method: str, ipc: int, options: Any = None, snapshot_at: tuple[int, ...] = ()) -> Distilled:
        """The distilled set of a method at one IPC, made by its registered entry (cda.methods) with
        `options` (default: the run's config for that method) and cached by config."""
        m = methods.get(method)
        opts = options if options is not None else methods.options_for(self.cfg, method, ipc)
        if snapshot_at and not m.snapshots:
            raise ValueError(f"method {method!r} records no snapshots; leave snapshot_at empty")
        if not m.cached:
            with self.runtime.applied():
                return m.make(methods.Inputs(None, self.train, self.cfg.device, self.progress,
                                             speeds=self.runtime.speeds), opts)
        teacher, _ = self.teacher()
        # Finished recovery steps are shared between IPCs: the IPC-10 set's slots are the IPC-50 set's first.
        store = self.cache.folder("slots", self.cfg.data, self.cfg.squeeze, _without_ipc(opts), list(snapshot_at))

        def make(folder: Path):
            self.log(f"distill: {m.label} IPC {ipc}")
            d = m.make(methods.Inputs(teacher, self.train, self.cfg.device, self.progress, folder,
                                      store if isinstance(opts, RecoverConfig) else None, snapshot_at,
                                      self.runtime.speeds), opts)
            d.meta["method"] = method
            d.save(folder, self.info)
            methods.clear_progress(folder)

        return self.cache.get_or_make("distilled", self._distilled_configs(opts, snapshot_at), self._applied(make),
                                      Distilled.load)

    def _source(self, method: str, ipc: int, options: Any) -> tuple:
        """What identifies a distilled set: the data, the teacher and how the set was made."""
        return (self.cfg.data, self.cfg.squeeze, method, ipc, options, self.cfg.recover.seed)

    def _student_source(self, method: str, ipc: int, eval_cfg: EvalConfig | None,
                        options: Any) -> tuple[EvalConfig, Any, tuple]:
        """The eval config, the set's config and source key of a student result; what the result is
        built from goes in the cost ledger, even when the result itself comes from the cache and so
        never asks for it."""
        e = eval_cfg or self.cfg.eval_for(method)
        opts = options if options is not None else methods.options_for(self.cfg, method, ipc)
        source = self._source(method, ipc, opts)
        self.cache.note("teacher", (self.cfg.data, self.cfg.squeeze))
        if methods.get(method).cached:
            self.cache.note("distilled", self._distilled_configs(opts))
        if e.labels == "stored":
            self.cache.note("labels", (*source, self.cfg.relabel_for(e)))
        return e, opts, source

    def _student_inputs(self, method: str, ipc: int, opts, source: tuple,
                        e: EvalConfig) -> tuple[Distilled, nn.Module | None, StoredLabels | None]:
        """The distilled set a student trains on, and its labels: the teacher (online) or stored files."""
        d = self.distilled(method, ipc, opts)
        teacher, _ = self.teacher()
        stored = self.stored_labels(d, source, e) if e.labels == "stored" else None
        return d, teacher if e.labels == "online" else None, stored

    def labels(self, method: str, ipc: int, eval_cfg: EvalConfig | None = None,
               options: Any = None) -> StoredLabels | None:
        """The stored labels a student of `eval_cfg` trains on (built now if missing); None unless the
        recipe stores its labels."""
        e, opts, source = self._student_source(method, ipc, eval_cfg, options)
        return self._student_inputs(method, ipc, opts, source, e)[2]

    def stored_labels(self, distilled: Distilled, source: tuple, eval_cfg: EvalConfig) -> StoredLabels:
        teacher, _ = self.teacher()
        rl = self.cfg.relabel_for(eval_cfg)
        return self.cache.get_or_make(
            "labels", (*source, rl),
            self._applied(lambda folder: relabel(teacher, distilled.images, self.info, rl, folder, self.cfg.device,
                                                 self.progress)),
            StoredLabels)

    def evaluation(self, method: str, ipc: int, eval_cfg: EvalConfig | None = None,
                   options: Any = None) -> dict:
        """Train and test a student on a distilled set; the metrics are cached."""
        e, rcfg, source = self._student_source(method, ipc, eval_cfg, options)

        def make(folder: Path):
            d, teacher, stored = self._student_inputs(method, ipc, rcfg, source, e)
            self.log(f"evaluate: {e.arch} on {method} IPC {ipc} ({e.labels} labels, seed {e.seed})")
            val = self.tested_on(replace(e, split="val")) if e.val_every else None  # best and last (EvalConfig.val_every)
            metrics = evaluate(d, self.tested_on(e), e, teacher, stored, self.cfg.device, self.progress,
                               desc=f"student {method} ipc{ipc}", progress_dir=folder,
                               speed=self.runtime.speeds.student, val_split=val)
            metrics["recover_seconds"] = d.meta.get("seconds", 0.0)
            write_json(metrics, folder / "metrics.json")

        return self.cache.get_or_make("evaluation", (*source, e), self._applied(make),
                                      lambda folder: read_json(folder / "metrics.json", what="metrics"))

    def evaluations_at_once(self, asks: Sequence[tuple[str, int, EvalConfig | None, Any]]) -> int:
        """Train together (cda.students_batched) the students of `asks` [(method, ipc, eval_cfg, options)]
        that `evaluation` would train now, and store their metrics under its keys, where it then finds
        them. A pass holds at most `cfg.students_at_once` students of one recipe but for the seed, one
        set size and online labels, without validation; the others are left to `evaluation`, one at a
        time. A student trained with others is the one trained alone up to float rounding
        (tests/test_students_batched.py), so the key does not say how it was trained (cda.runtime); its
        `seconds` is its share of the pass. Returns how many students were trained."""
        at_once = self.cfg.students_at_once
        groups: dict[tuple, list] = {}
        for method, ipc, eval_cfg, options in asks if at_once > 1 else ():
            e, opts, source = self._student_source(method, ipc, eval_cfg, options)
            if not batchable(e, self.runtime.speeds.student) or self.cache.folder("evaluation", *source, e).exists():
                continue
            d = self.distilled(method, ipc, opts)
            ask = (method, ipc, e, source, d)
            if ask[2:4] not in [a[2:4] for a in groups.get((recipe(e), len(d.images)), [])]:
                groups.setdefault((recipe(e), len(d.images)), []).append(ask)
        teacher = self.teacher()[0] if groups else None
        trained = 0
        for group in groups.values():
            for i in range(0, len(group) - 1, at_once):
                chunk = group[i:i + at_once]
                if len(chunk) > 1:
                    self._train_at_once(chunk, teacher)
                    trained += len(chunk)
        return trained

    def _train_at_once(self, chunk: list[tuple], teacher: nn.Module) -> None:
        cfgs = [e for _, _, e, _, _ in chunk]
        self.log(f"evaluate: {len(chunk)} {cfgs[0].arch} students at once (" + ", ".join(
            f"{method} IPC {ipc} seed {e.seed}" for method, ipc, e, _, _ in chunk) + ")")
        start = time.perf_counter()
        with self.runtime.applied():
            students = train_students([d for *_, d in chunk], self.info, cfgs, teacher, self.cfg.device, self.progress,
                                      desc=f"{len(chunk)} students at once")
            dev = next(students[0].parameters()).device
            tested = [test_accuracy(s, self.tested_on(e), dev, e.test_batch_size, e.amp)
                      for s, e in zip(students, cfgs)]
        share = (time.perf_counter() - start) / len(chunk)
        for (_, _, e, source, d), metrics in zip(chunk, tested):
            metrics = {**metrics, "seconds": share, "recover_seconds": d.meta.get("seconds", 0.0)}
            self.cache.get_or_make("evaluation", (*source, e),
                                   lambda folder, m=metrics: write_json(m, folder / "metrics.json"),
                                   lambda folder: read_json(folder / "metrics.json", what="metrics"), seconds=share)

    def robustness(self, method: str, ipc: int, sigmas: tuple[float, ...], eval_cfg: EvalConfig | None = None,
                   options: Any = None) -> dict[float, dict]:
        """Train a student on a distilled set, then test it on the test set with Gaussian pixel noise
        of each std in `sigmas`; {sigma: {"top1": .., "top5": ..}}, cached."""
        e, rcfg, source = self._student_source(method, ipc, eval_cfg, options)

        def make(folder: Path):
            d, teacher, stored = self._student_inputs(method, ipc, rcfg, source, e)
            self.log(f"robustness: {e.arch} on {method} IPC {ipc}, noise std {list(sigmas)}")
            student = train_student(d, self.info, e, teacher, stored, self.cfg.device, self.progress,
                                    f"student {method} ipc{ipc}", progress_dir=folder,
                                    speed=self.runtime.speeds.student)
            out = {str(s): noisy_accuracy(student, self.tested_on(e), s, self.cfg.device, amp=e.amp) for s in sigmas}
            write_json(out, folder / "noise.json")

        blob = self.cache.get_or_make("robustness", (*source, e, list(sigmas)), self._applied(make),
                                      lambda folder: read_json(folder / "noise.json", what="metrics"))
        return {float(k): v for k, v in blob.items()}

    def full_data(self) -> dict:
        """The student architecture trained on all the training data with the teacher's recipe: a model
        of its own (the next seed), never the teacher reused where the architectures agree."""
        _, meta = self.teacher(self.cfg.full_data_recipe())  # the one definition (cda.config)
        return meta["metrics"]


def _without_ipc(options: Any) -> Any:
    """A method's options with the IPC left out (the key of the slots shared between IPCs)."""
    return replace(options, ipc=1) if isinstance(options, RecoverConfig) else options


def run(cfg: RunConfig, progress: bool = True, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Squeeze, recover, relabel and evaluate every method at every IPC; write results and figures."""
    from .results import accuracy_table, timing_table, write_results

    start = time.perf_counter()
    torch.manual_seed(0)
    ws = Workspace(cfg, progress, log)
    ws.commit  # noqa: B018 (read now: the provenance names the code this run started with)
    plan_run(cfg, ws.info, log, speeds=ws.runtime.speeds)  # what the run needs; refuses when the disk cannot hold it
    out = Path(cfg.out_dir)
    teacher_arch = cfg.squeeze.arch
    _, tmeta = ws.teacher()
    log(f"teacher {teacher_arch}: top-1 {tmeta['metrics']['top1']:.2f}%")
    rows = main_table_rows(Context(ws), cfg.ipcs, cfg.methods, cfg.students or (cfg.eval.arch,))
    ipc, sets = _figure_sets(ws, cfg)  # every artifact the outputs show is read before any is written
    wall = time.perf_counter() - start
    with publishing(out / "results.csv"):
        df = write_results(rows, out / "results.csv", cfg, wall, cfg.device, extra=ws.cache.cost())
        table, timing = accuracy_table(df, order=methods.list_methods()), timing_table(df)
        (out / "table.md").write_text(table.to_markdown() + "\n\nWall time per step (s):\n\n" + timing.to_markdown()
                                      + "\n")
        _figures(ws, df, out, ipc, sets)
    log(f"\nTop-1 (%) on the {ws.info.name} test set, student {cfg.eval.arch}, teacher {teacher_arch}:\n")
    log(table.to_markdown())
    log("\nWall time per step (s; random real images need no recovery):\n")
    log(timing.to_markdown())
    log(f"\nwall time {wall / 60:.1f} min; results in {out}/")
    return df


def _figure_sets(ws: Workspace, cfg: RunConfig) -> tuple[int, dict]:
    """The IPC whose distilled sets the figure shows, and the sets ({label: (images, labels)})."""
    ipc = max(i for i in cfg.ipcs if i <= 10) if min(cfg.ipcs) <= 10 else min(cfg.ipcs)
    sets = {}
    for method in cfg.methods:
        d = ws.distilled(method, ipc)
        sets[methods.label(method)] = (d.images, d.labels)
    return ipc, sets


def _figures(ws: Workspace, df: pd.DataFrame, out: Path, ipc: int, sets: dict) -> None:
    from . import plots

    plots.save_figure(plots.accuracy_vs_ipc(df, title=f"{ws.info.name}: student top-1"), out / "accuracy_vs_ipc")
    classes = ws.info.classes or tuple(str(i) for i in range(ws.info.num_classes))
    fig = plots.distilled_grid(sets, classes, per_class=min(ipc, 4), title=f"{ws.info.name}, IPC {ipc}")
    plots.save_figure(fig, out / "distilled_images")
