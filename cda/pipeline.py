"""The whole pipeline, with every artifact cached by the hash of the config that made it.

Teachers, distilled sets, stored labels and evaluation results are each computed once; a rerun (or
another notebook asking for the same thing) loads them, and an interrupted run resumes at the last
finished artifact.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch import nn

from .cache import Cache, write_json
from .checkpoint import load_checkpoint
from .config import CuddConfig, EvalConfig, RecoverConfig, RelabelConfig, RunConfig, SqueezeConfig
from .cudd import distill_cudd
from .data import DatasetInfo, load_split
from .evaluate import evaluate, noisy_accuracy, train_student
from .recover import Distilled, real_subset, recover
from .relabel import StoredLabels, relabel
from .squeeze import squeeze


class Workspace:
    """Cached access to every artifact of a run: teacher, distilled sets, labels, evaluations."""

    def __init__(self, cfg: RunConfig, progress: bool = True, log: Callable[[str], None] = print):
        self.cfg, self.progress, self.log = cfg, progress, log
        self.cache = Cache(cfg.cache_dir)
        self.train = load_split(cfg.data, train=True)
        self.test = load_split(cfg.data, train=False)
        self.info: DatasetInfo = self.train.info
        self._teachers: dict[str, tuple[nn.Module, dict]] = {}

    def teacher(self, squeeze_cfg: SqueezeConfig | None = None) -> tuple[nn.Module, dict]:
        """A trained model and its checkpoint metadata (test accuracy, seconds)."""
        s = squeeze_cfg or self.cfg.squeeze
        key = self.cache.folder("teacher", self.cfg.data, s).name
        if key not in self._teachers:
            def make(folder: Path):
                self.log(f"squeeze: training {s.arch} on {self.info.name} ({s.epochs} epochs)")
                squeeze(self.cfg.data, s, self.cfg.device, folder / "teacher.pt", self.progress, progress_dir=folder)
                (folder / "squeeze_progress.pt").unlink(missing_ok=True)

            self._teachers[key] = self.cache.get_or_make(
                "teacher", (self.cfg.data, s), make,
                lambda folder: load_checkpoint(folder / "teacher.pt", self.info, self.cfg.device))
        return self._teachers[key]

    def _made_by(self, method: str, ipc: int) -> RecoverConfig | CuddConfig | None:
        """The config that synthesizes a method's set at one IPC (None for random real images)."""
        if method == "random":
            return None
        return self.cfg.cudd_for(ipc) if method == "cudd" else self.cfg.recover_for(method, ipc)

    def distilled(self, method: str, ipc: int, recover_cfg: RecoverConfig | CuddConfig | None = None,
                  snapshot_at: tuple[int, ...] = ()) -> Distilled:
        """The distilled set of a method at one IPC: 'random' real images, a recovered set, or a
        CUDD set (`recover_cfg` is then a CuddConfig)."""
        if method == "random":
            return real_subset(self.train, ipc, seed=self.cfg.recover.seed)
        rcfg = recover_cfg or self._made_by(method, ipc)
        teacher, _ = self.teacher()
        if method == "cudd":
            if snapshot_at:
                raise ValueError("CUDD sets record no snapshots; leave snapshot_at empty")
            return self._cudd(teacher, rcfg)

        def make(folder: Path):
            self.log(f"recover: {method} IPC {ipc}, {rcfg.iterations} iterations")
            d = recover(teacher, self.info, rcfg, self.cfg.device, self.progress, snapshot_at,
                        desc=f"{method} ipc{ipc}", progress_dir=folder)
            d.meta["method"] = method
            d.save(folder, self.info)
            (folder / "recover_progress.pt").unlink(missing_ok=True)

        return self.cache.get_or_make("distilled", (self.cfg.data, self.cfg.squeeze, rcfg, list(snapshot_at)),
                                      make, Distilled.load)

    def _cudd(self, teacher: nn.Module, cudd_cfg: CuddConfig) -> Distilled:
        def make(folder: Path):
            self.log(f"recover: cudd IPC {cudd_cfg.stages[-1]}, stages {cudd_cfg.stages}, "
                     f"{cudd_cfg.recover.iterations} iterations")
            d = distill_cudd(teacher, self.train, self.info, cudd_cfg, self.cfg.device, self.progress)
            d.save(folder, self.info)

        return self.cache.get_or_make("distilled", (self.cfg.data, self.cfg.squeeze, cudd_cfg), make,
                                      Distilled.load)

    def _source(self, method: str, ipc: int, rcfg: RecoverConfig | CuddConfig | None) -> tuple:
        """What identifies a distilled set: the data, the teacher and how the set was made."""
        return (self.cfg.data, self.cfg.squeeze, method, ipc, rcfg, self.cfg.recover.seed)

    def _student_source(self, method: str, ipc: int, eval_cfg: EvalConfig | None,
                        recover_cfg: RecoverConfig | CuddConfig | None
                        ) -> tuple[EvalConfig, RecoverConfig | CuddConfig | None, tuple]:
        """The eval config, the set's recovery config and source key of a student result; what the
        result is built from goes in the cost ledger, even when the result itself comes from the cache
        and so never asks for it."""
        e = eval_cfg or self.cfg.eval
        rcfg = None if method == "random" else (recover_cfg or self._made_by(method, ipc))
        source = self._source(method, ipc, rcfg)
        self.cache.note("teacher", (self.cfg.data, self.cfg.squeeze))
        if method == "cudd":
            self.cache.note("distilled", (self.cfg.data, self.cfg.squeeze, rcfg))
        elif method != "random":
            self.cache.note("distilled", (self.cfg.data, self.cfg.squeeze, rcfg, []))
        if e.labels == "stored":
            self.cache.note("labels", (*source, RelabelConfig(aug=e.aug)))
        return e, rcfg, source

    def _student_inputs(self, method: str, ipc: int, rcfg, source: tuple,
                        e: EvalConfig) -> tuple[Distilled, nn.Module | None, StoredLabels | None]:
        """The distilled set a student trains on, and its labels: the teacher (online) or stored files."""
        d = self.distilled(method, ipc, rcfg)
        teacher, _ = self.teacher()
        stored = self.stored_labels(d, source, e) if e.labels == "stored" else None
        return d, teacher if e.labels == "online" else None, stored

    def stored_labels(self, distilled: Distilled, source: tuple, eval_cfg: EvalConfig) -> StoredLabels:
        teacher, _ = self.teacher()
        rl = RelabelConfig(aug=eval_cfg.aug)
        return self.cache.get_or_make(
            "labels", (*source, rl),
            lambda folder: relabel(teacher, distilled.images, self.info, rl, folder, self.cfg.device, self.progress),
            StoredLabels)

    def evaluation(self, method: str, ipc: int, eval_cfg: EvalConfig | None = None,
                   recover_cfg: RecoverConfig | CuddConfig | None = None) -> dict:
        """Train and test a student on a distilled set; the metrics are cached."""
        e, rcfg, source = self._student_source(method, ipc, eval_cfg, recover_cfg)

        def make(folder: Path):
            d, teacher, stored = self._student_inputs(method, ipc, rcfg, source, e)
            self.log(f"evaluate: {e.arch} on {method} IPC {ipc} ({e.labels} labels, seed {e.seed})")
            metrics = evaluate(d, self.test, e, teacher, stored, self.cfg.device, self.progress,
                               desc=f"student {method} ipc{ipc}", progress_dir=folder)
            (folder / "student_progress.pt").unlink(missing_ok=True)
            metrics["recover_seconds"] = d.meta.get("seconds", 0.0)
            write_json(metrics, folder / "metrics.json")

        return self.cache.get_or_make("evaluation", (*source, e), make,
                                      lambda folder: json.loads((folder / "metrics.json").read_text()))

    def robustness(self, method: str, ipc: int, sigmas: tuple[float, ...], eval_cfg: EvalConfig | None = None,
                   recover_cfg: RecoverConfig | CuddConfig | None = None) -> dict[float, dict]:
        """Train a student on a distilled set, then test it on the test set with Gaussian pixel noise
        of each std in `sigmas`; {sigma: {"top1": .., "top5": ..}}, cached."""
        e, rcfg, source = self._student_source(method, ipc, eval_cfg, recover_cfg)

        def make(folder: Path):
            d, teacher, stored = self._student_inputs(method, ipc, rcfg, source, e)
            self.log(f"robustness: {e.arch} on {method} IPC {ipc}, noise std {list(sigmas)}")
            student = train_student(d, self.info, e, teacher, stored, self.cfg.device, self.progress,
                                    f"student {method} ipc{ipc}", progress_dir=folder)
            (folder / "student_progress.pt").unlink(missing_ok=True)
            out = {str(s): noisy_accuracy(student, self.test, s, self.cfg.device, amp=e.amp) for s in sigmas}
            write_json(out, folder / "noise.json")

        blob = self.cache.get_or_make("robustness", (*source, e, list(sigmas)), make,
                                      lambda folder: json.loads((folder / "noise.json").read_text()))
        return {float(k): v for k, v in blob.items()}

    def full_data(self) -> dict:
        """The student architecture trained on all the training data with the teacher's recipe."""
        s = replace(self.cfg.squeeze, arch=self.cfg.eval.arch, pretrained=None)
        _, meta = self.teacher(s)
        return meta["metrics"]


def run(cfg: RunConfig, progress: bool = True, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Squeeze, recover, relabel and evaluate every method at every IPC; write results and figures."""
    from .results import accuracy_table, timing_table, write_results

    start = time.perf_counter()
    torch.manual_seed(0)
    ws = Workspace(cfg, progress, log)
    out = Path(cfg.out_dir)
    teacher_arch = cfg.squeeze.arch
    _, tmeta = ws.teacher()
    log(f"teacher {teacher_arch}: top-1 {tmeta['metrics']['top1']:.2f}%")
    from .studies import Context, main_table_rows  # the main table has one producer: this and its notebook

    rows = main_table_rows(Context(ws), cfg.ipcs, cfg.methods, (cfg.eval.arch,))
    wall = time.perf_counter() - start
    df = write_results(rows, out / "results.csv", cfg, wall, cfg.device, extra=ws.cache.cost())
    table, timing = accuracy_table(df), timing_table(df)
    (out / "table.md").write_text(table.to_markdown() + "\n\nWall time per step (s):\n\n" + timing.to_markdown() + "\n")
    _figures(ws, cfg, df, out)
    log(f"\nTop-1 (%) on the {ws.info.name} test set, student {cfg.eval.arch}, teacher {teacher_arch}:\n")
    log(table.to_markdown())
    log("\nWall time per step (s; random real images need no recovery):\n")
    log(timing.to_markdown())
    log(f"\nwall time {wall / 60:.1f} min; results in {out}/")
    return df


def _figures(ws: Workspace, cfg: RunConfig, df: pd.DataFrame, out: Path) -> None:
    from . import plots

    plots.save_figure(plots.accuracy_vs_ipc(df, title=f"{ws.info.name}: student top-1"), out / "accuracy_vs_ipc")
    ipc = max(i for i in cfg.ipcs if i <= 10) if min(cfg.ipcs) <= 10 else min(cfg.ipcs)
    names = {"random": "Random real", "sre2l": "SRe2L", "cda": "CDA", "cudd": "CUDD"}
    sets = {}
    for method in cfg.methods:
        d = ws.distilled(method, ipc)
        sets[names.get(method, method)] = (d.images, d.labels)
    classes = ws.info.classes or tuple(str(i) for i in range(ws.info.num_classes))
    fig = plots.distilled_grid(sets, classes, per_class=min(ipc, 4), title=f"{ws.info.name}, IPC {ipc}")
    plots.save_figure(fig, out / "distilled_images")
