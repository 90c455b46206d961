"""Every CUDA path and the ImageNet-shape benchmarks in one prepared call on a GPU machine.

    bash scripts/gpu_check.sh OUTDIR [--device cuda] [--tiny] [--list] [--budget SECONDS]

Runs with `PYTHONPATH=.` from the repo root (the package need not be installed; no papermill).
Parts, in order, each a subprocess with its own time budget and timeout, so that one that hangs
cannot eat the others' time (the whole call must end within 8 minutes on an H100/H200):

  env        GPU, driver, CUDA, versions, nvidia-smi
  standin    a generated ImageNet-shaped stand-in (100 classes, 224 px; `cda standin`)
  tests      the device-sensitive tests under `pytest --device` (junit XML)
  recovery   benchmarks/recovery.py at ImageNet shape against the official-shape loop
  student    benchmarks/student.py at ImageNet shape against the official-shape pipeline
  plan       `cda plan --measure` for ImageNet-1K IPC 50, and each recovering method's measured rate
  paper      `cda run --preset paper` on the stand-in, every registered method at a tiny budget

OUTDIR receives at most 8 files (the device tool's limit): summary.json (each part's status, wall
time, budget and error tail, and the environment), junit.xml, the benchmarks' CSV and JSON,
paper_results.json (the run's timings), and gpu_check.tar.gz (logs, plan, env, the paper run's
tables). summary.json is rewritten after every part, so a call cut short still says how far it got.
`--tiny` runs the same parts on the same code paths at toy sizes (a few classes, 32 px, a couple of
iterations, a handful of tests): the CPU dry run in CI (tests/test_gpu_check.py).

The stand-in is drawn from Fashion-MNIST. On a machine without it, copy its four .gz files into
.data/fashion-mnist/ of the checkout (git ignores it; about 30 MB) and send that folder along
(the device tool's `carry: [".data"]`); scripts/gpu_check.sh points cda at it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_BUDGET_S = 450  # the whole call: under 8 minutes with room for start-up and the tarball
TINY_BUDGET_S = 960
RESERVE_S = 15  # kept back from the last part for the summary and the tarball
TAIL_LINES = 30
MAX_TAR_FILE = 4 * 2 ** 20  # larger files (images, checkpoints) stay out of the tarball


@dataclass(frozen=True)
class Part:
    name: str
    budget_s: int
    argv: tuple[str, ...]
    produces: tuple[str, ...] = ()  # paths under the work folder that must exist afterwards
    needs: tuple[str, ...] = ()  # parts that must have ended "ok" first
    env: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Sizes:
    """What differs between the full call and the tiny dry run: sizes only, never the code path."""

    classes: int
    size: int
    train_per_class: int
    val_per_class: int
    tests: tuple[str, ...]
    recovery: tuple[str, ...]
    student: tuple[str, ...]
    paper: tuple[str, ...]
    plan_classes: int
    plan_size: int
    plan_ipc: int
    budgets: dict


# The device-sensitive tests (those taking the `device` fixture; tests/test_device_paths.py holds
# relabel, compact labels, bf16, CUDD, resume after a kill and torchrun over nccl).
FULL_TESTS = ("tests/test_device.py", "tests/test_device_paths.py",
              "tests/test_data_models.py::test_every_listed_model_builds_and_gives_logits")
# quick ones that need no trained teacher: the part's mechanics (pytest --device, junit) are the point
TINY_TESTS = ("tests/test_device.py::test_device_names_resolve_on_this_machine",
              "tests/test_data_models.py::test_every_listed_model_builds_and_gives_logits[resnet18-3]",
              "tests/test_device_paths.py::test_torchrun_recovery_over_two_gpus_with_nccl")

FULL = Sizes(classes=100, size=224, train_per_class=10, val_per_class=2, tests=FULL_TESTS,
             recovery=("--arch", "resnet18", "--ipc", "1", "--iterations", "30", "--rounds", "3"),
             student=("--arch", "resnet18", "--ipc", "10", "--epochs", "2", "--batch-size", "100", "--workers", "8",
                      "--rounds", "2"),
             paper=("recover.iterations=20", "eval.aug.epochs=2", "eval.aug.batch_size=100", "cudd.student_epochs=1",
                    "cudd.student.aug.batch_size=100", "squeeze.epochs=1", "squeeze.batch_size=100", "ipcs=[1]"),
             plan_classes=1000, plan_size=224, plan_ipc=50,
             budgets={"env": 10, "standin": 25, "tests": 90, "recovery": 130, "student": 100, "plan": 35,
                      "paper": 60})
TINY = Sizes(classes=4, size=32, train_per_class=4, val_per_class=1, tests=TINY_TESTS,
             recovery=("--quick", "--arch", "convnet3_w8", "--ipc", "1", "--iterations", "2", "--rounds", "1",
                       "--no-compile"),
             # toy models (the plan part times ResNet-18)
             student=("--quick", "--arch", "convnet3_w8", "--ipc", "2", "--epochs", "1", "--batch-size", "4",
                      "--workers", "1", "--rounds", "1", "--no-compile"),
             paper=("recover.iterations=2", "eval.aug.epochs=1", "eval.aug.batch_size=8", "cudd.student_epochs=1",
                    "cudd.student.aug.batch_size=8", "squeeze.epochs=1", "squeeze.batch_size=8", "ipcs=[1]",
                    "squeeze.arch=convnet3_w8", "eval.arch=convnet3_w8"),
             plan_classes=4, plan_size=32, plan_ipc=1,
             # generous: the dry run checks the code paths, on CPUs shared with other work
             budgets={"env": 60, "standin": 60, "tests": 180, "recovery": 180, "student": 180, "plan": 120,
                      "paper": 180})


def methods() -> list[str]:
    """Every registered method (the paper run makes each)."""
    sys.path.insert(0, str(ROOT))
    from cda.methods import list_methods

    return list_methods()


def bench_dir(work: Path, tiny: bool) -> Path:
    """Where the benchmarks write: results/bench of the checkout (the files to commit), or for a tiny
    run the working folder (toy rows are never published)."""
    return work / "bench" if tiny else ROOT / "results" / "bench"


def plan_parts(work: Path, device: str, tiny: bool) -> list[Part]:
    """The parts of the call, with their commands and budgets."""
    s = TINY if tiny else FULL
    py = sys.executable
    me = str(Path(__file__).resolve())
    standin = work / "standin"
    bench = bench_dir(work, tiny)
    stem = device.split(":")[0] + ("-quick" if tiny else "")
    data = ("--device", device, "--data-root", str(standin), "--out-dir", str(bench))
    paper_sets = ["data.name=imagefolder", f"data.root={standin}", f"data.image_size={s.size}", "data.workers=0",
                  "squeeze.pretrained=null", f"methods=[{','.join(methods())}]", f"cache_dir={work / 'paper_cache'}",
                  f"out_dir={work / 'paper'}", *s.paper]
    b = s.budgets
    return [
        Part("env", b["env"], (py, me, "--env", str(work), "--device", device), ("env.json",)),
        Part("standin", b["standin"], (py, "-m", "cda", "standin", "--out", str(standin), "--classes", str(s.classes),
                                       "--size", str(s.size), "--train-per-class", str(s.train_per_class),
                                       "--val-per-class", str(s.val_per_class), "--no-progress"),
             ("standin/standin.json",)),
        Part("tests", b["tests"], (py, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--device", device,
                                   f"--junitxml={work / 'junit.xml'}", *s.tests), ("junit.xml",)),
        Part("recovery", b["recovery"], (py, str(ROOT / "benchmarks" / "recovery.py"), *data, *s.recovery),
             (str(bench / f"recovery-{stem}.csv"), str(bench / f"recovery-{stem}.json")), ("standin",)),
        Part("student", b["student"], (py, str(ROOT / "benchmarks" / "student.py"), *data, *s.student),
             (str(bench / f"student-{stem}.csv"), str(bench / f"student-{stem}.json")), ("standin",)),
        Part("plan", b["plan"], (py, me, "--plan-part", str(work), "--device", device,
                                 "--plan-shape", f"{s.plan_classes},{s.plan_size},{s.plan_ipc}"), ("plan/plan.json",)),
        Part("paper", b["paper"], (py, "-m", "cda", "run", "--preset", "paper", "--device", device, "--no-progress",
                                   *[x for o in paper_sets for x in ("--set", o)]),
             ("paper/results.json", "paper/results.csv"), ("standin",)),
    ]


# ---------------------------------------------------------------------------------------------
# Running the parts

def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_part(part: Part, work: Path, timeout: float, env: dict) -> dict:
    """Run one part in its own process group; kill the group at its timeout."""
    log = work / "logs" / f"{part.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    for p in part.produces:  # a file left by an earlier call must not pass for this one's
        (work / p).unlink(missing_ok=True)
    start = time.perf_counter()
    status, code = "ok", None
    with open(log, "w") as out:
        out.write("$ " + " ".join(part.argv) + "\n")
        out.flush()
        proc = subprocess.Popen(part.argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**env, **part.env},
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = "timeout"
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                    code = proc.wait(timeout=wait)
                    break
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    continue
    seconds = time.perf_counter() - start
    missing = [p for p in part.produces if not (work / p).exists()]
    if status == "ok" and (code != 0 or missing):
        status = "failed"
    row = {"name": part.name, "status": status, "seconds": round(seconds, 1), "budget_s": part.budget_s,
           "timeout_s": round(timeout, 1), "returncode": code, "command": " ".join(part.argv), "log": f"logs/{log.name}",
           "missing": missing}
    if status != "ok":
        row["error_tail"] = _tail(log)
    return row


def _env_for_parts(work: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "CDA_CACHE_DIR": str(work / "cache")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def outputs(work: Path, out: Path, parts: list[Part], device: str, tiny: bool) -> dict:
    """Copy the files that come back to OUTDIR (at most 8 with the summary); the rest goes into the tarball."""
    stem = device.split(":")[0] + ("-quick" if tiny else "")
    copied = {}
    bench = bench_dir(work, tiny)
    wanted = {work / "junit.xml": "junit.xml",
              **{bench / f"{n}-{stem}.{e}": f"{n}-{stem}.{e}" for n in ("recovery", "student") for e in ("csv", "json")}}
    for src, dst in wanted.items():
        if src.is_file():
            shutil.copy2(src, out / dst)
            copied[str(src)] = dst
    paper = work / "paper"
    if (paper / "results.json").is_file():  # the run's provenance, its rows (step timings too) and table
        import csv

        with open(paper / "results.csv", newline="") as f:
            rows = list(csv.DictReader(f)) if (paper / "results.csv").is_file() else []
        table = (paper / "table.md").read_text() if (paper / "table.md").is_file() else ""
        (out / "paper_results.json").write_text(json.dumps({"results": json.loads((paper / "results.json").read_text()),
                                                            "rows": rows, "table": table}, indent=1) + "\n")
        copied["paper/results.*"] = "paper_results.json"
    with tarfile.open(out / "gpu_check.tar.gz", "w:gz") as tar:
        for path in sorted(work.rglob("*")):
            rel = path.relative_to(work)
            if not path.is_file() or rel.parts[0] in ("standin", "cache", "paper_cache") or \
                    path.stat().st_size > MAX_TAR_FILE:
                continue
            tar.add(path, arcname=f"gpu_check/{rel}")
    copied["(the rest)"] = "gpu_check.tar.gz"
    return copied


def write_summary(out: Path, rows: list[dict], args, started: float, budget: float, extra: dict) -> dict:
    env = {}
    env_file = Path(args.work) / "env.json"
    if env_file.is_file():
        env = json.loads(env_file.read_text())
    summary = {"device": args.device, "tiny": args.tiny, "budget_s": budget,
               "seconds": round(time.perf_counter() - started, 1),
               "ok": bool(rows) and all(r["status"] == "ok" for r in rows), "parts": rows, "env": env, **extra}
    tmp = out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(out / "summary.json")
    return summary


def run_all(args) -> int:
    out = Path(args.outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_")).resolve()
    args.work = str(work)
    parts = plan_parts(work, args.device, args.tiny)
    budget = args.budget or (TINY_BUDGET_S if args.tiny else FULL_BUDGET_S)
    started = time.perf_counter()
    deadline = started + budget
    env = _env_for_parts(work)
    rows: list[dict] = []
    done: dict[str, str] = {}
    for part in parts:
        left = deadline - time.perf_counter() - RESERVE_S
        blocked = [n for n in part.needs if done.get(n) != "ok"]
        if blocked or left < 5:
            why = f"needs {blocked} to succeed first" if blocked else "no time left in the call's budget"
            row = {"name": part.name, "status": "skipped", "seconds": 0.0, "budget_s": part.budget_s,
                   "command": " ".join(part.argv), "error_tail": why}
        else:
            print(f"gpu_check: {part.name} (budget {part.budget_s} s, timeout {min(part.budget_s, left):.0f} s)",
                  flush=True)
            row = run_part(part, work, min(part.budget_s, left), env)
            print(f"gpu_check: {part.name}: {row['status']} in {row['seconds']} s", flush=True)
            if row["status"] != "ok":
                print(row.get("error_tail", ""), flush=True)
        rows.append(row)
        done[part.name] = row["status"]
        write_summary(out, rows, args, started, budget, {"work": str(work)})
    files = outputs(work, out, parts, args.device, args.tiny)
    summary = write_summary(out, rows, args, started, budget, {"work": str(work), "files": files})
    if not args.work_kept:
        shutil.rmtree(work, ignore_errors=True)
    print(f"gpu_check: {'all parts ok' if summary['ok'] else 'some parts did not succeed'} in "
          f"{summary['seconds']} s -> {out}")
    return 0 if summary["ok"] else 1


# ---------------------------------------------------------------------------------------------
# Parts that run inside this script

def env_part(work: Path, device: str) -> None:
    """The machine: GPU, driver, CUDA, versions, nvidia-smi."""
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "device": device, "cuda_available": torch.cuda.is_available(),
            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    for name in ("torchvision", "timm", "numpy", "pandas", "PIL", "pytest"):
        try:
            info[name] = __import__(name).__version__
        except Exception as err:  # absent: say so
            info[name] = f"absent ({type(err).__name__})"
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        props = torch.cuda.get_device_properties(0)
        info["gpu0"] = {"memory_gib": round(props.total_memory / 2 ** 30, 1), "capability": f"{props.major}.{props.minor}",
                        "multiprocessors": props.multi_processor_count}
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
        info["nvidia_smi_query"] = q.stdout.strip()
        if q.stdout.strip():
            info["driver"] = q.stdout.strip().splitlines()[0].split(",")[1].strip()
        (work / "nvidia-smi.txt").write_text(subprocess.run([smi], capture_output=True, text=True, timeout=30).stdout)
    else:
        info["nvidia_smi"] = "not found"
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                            timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    work.mkdir(parents=True, exist_ok=True)
    (work / "env.json").write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps(info, indent=1))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"gpu_check: --device {device}, but PyTorch sees no CUDA device here")


def plan_part(work: Path, device: str, shape: str) -> None:
    """`cda plan --measure` at the paper preset for ImageNet-1K at one IPC, then each recovering
    method's own measured rate and projected time."""
    import contextlib
    import io

    from cda.cli import main
    from cda.config import CuddConfig, RecoverConfig, preset
    from cda.methods import get
    from cda.plan import Shape, make_plan, measure_rate

    classes, size, ipc = (int(x) for x in shape.split(","))
    folder = work / "plan"
    folder.mkdir(parents=True, exist_ok=True)
    argv = ["plan", "--preset", "paper", "--device", device, "--classes", str(classes), "--size", str(size),
            "--set", f"ipcs=[{ipc}]", "--set", f"cache_dir={work / 'cache'}", "--measure"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    (folder / "cda_plan.txt").write_text("$ cda " + " ".join(argv) + "\n" + buf.getvalue())
    print(buf.getvalue())
    if code != 0:
        raise SystemExit(f"gpu_check: `cda plan --measure` exited {code}")
    rows = []
    for name in methods():
        cfg = preset("paper", ipcs=(ipc,), methods=(name,), device=device, cache_dir=str(work / "cache"))
        if not isinstance(get(name).options(cfg, ipc), (RecoverConfig, CuddConfig)):
            rows.append({"method": name, "recovers": False})  # real images picked: no recovery to time
            continue
        shp = Shape(classes, 3, size)
        if name == "cudd":  # measure_rate has no CUDD path: time the teacher part of its recovery steps
            measured = measure_rate(replace(cfg, recover=cfg.cudd_for(ipc).recover), shp, method="cda")
            measured["note"] = ("the teacher part of CUDD's recovery only: its iterations also run a student "
                                "forward, so the projection is a lower bound")
        else:
            measured = measure_rate(cfg, shp, method=name)
        plan = make_plan(cfg, shp)
        hours = {k: v / 3600 for k, v in plan.project(measured["recover_images_per_s"]).items()}
        rows.append({"method": name, "recovers": True, **measured, "projected_hours": hours})
        (folder / f"plan_{name}.txt").write_text(plan.render({"recover_images_per_s": measured["recover_images_per_s"]}))
        print(f"{name}: {measured['recover_images_per_s']:.1f} image-iterations/s, projected hours {hours}")
    (folder / "plan.json").write_text(json.dumps({"classes": classes, "size": size, "ipc": ipc, "device": device,
                                                  "methods": rows}, indent=1, default=str) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", nargs="?", help="where the files that come back go (at most 8)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--tiny", action="store_true", help="toy sizes: the CPU dry run of every part")
    p.add_argument("--list", action="store_true", help="print the parts, budgets and commands; run nothing")
    p.add_argument("--budget", type=float, help="seconds for the whole call (default: 450; --tiny: 960)")
    p.add_argument("--work", help="working folder (default: a new temporary folder, removed at the end)")
    p.add_argument("--env", metavar="WORK", help=argparse.SUPPRESS)
    p.add_argument("--plan-part", metavar="WORK", help=argparse.SUPPRESS)
    p.add_argument("--plan-shape", default="1000,224,50", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.env:
        env_part(Path(args.env), args.device)
        return 0
    if args.plan_part:
        plan_part(Path(args.plan_part), args.device, args.plan_shape)
        return 0
    if args.list:
        work = Path(args.work or "WORK")
        parts = plan_parts(work, args.device, args.tiny)
        budget = args.budget or (TINY_BUDGET_S if args.tiny else FULL_BUDGET_S)
        print(f"gpu_check plan: device {args.device}, {'tiny' if args.tiny else 'full'}, whole call {budget:.0f} s, "
              f"parts {sum(x.budget_s for x in parts)} s")
        for part in parts:
            print(json.dumps(asdict(part)))
        return 0
    if not args.outdir:
        p.error("give the output folder: bash scripts/gpu_check.sh OUTDIR [--device cuda] [--tiny]")
    args.work_kept = args.work is not None
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
