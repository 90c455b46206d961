"""Per-machine speed settings: the memory layout, precision and compilation that run a stage fastest
on this machine, measured once per machine and shape and remembered (RunConfig.speed="auto").

Which settings win depends on the machine: on an AMD Zen 4 or 5, bf16 autocast with channels_last
tensors runs recovery and students several times faster than fp32; on an Intel Xeon whose bf16
matrix products are slower than fp32 ones, fp32 wins. So nothing is assumed: each candidate runs
a few steps of the stage's real work (the teacher's forward and backward to the input for
recovery; a student's training step) at the run's shapes, and the fastest is kept in
`<cache_dir>/speed.json`, keyed by the machine, the torch version and the shapes. The choice fills the
run's runtime (cda.runtime.Speeds) before any cache key is made, and a non-default choice is stamped
into the key of what it computes (cda.cache.stamped), so every artifact names the settings that made it.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .cache import read_json, write_json
from .config import RunConfig
from .models import create_model
from .runtime import Speed, Speeds
from .training import autocast, resolve_device, seeded

SPEED_FILE = "speed.json"
MIN_GAIN = 0.05  # leave the plain settings only for a gain above the timing noise
MEASURE_BATCH = 256  # larger batches are timed at this size: the ranking does not change, the cost does


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: without them bf16 autocast on the CPU is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> str:
    """What a measurement holds for: the processor, the thread count and the torch version."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{cpu_model()}, {torch.get_num_threads()} threads"
    return f"{device.type}: {name}, torch {torch.__version__}"


def candidates(device: torch.device, task: str, compile_ok: bool = True) -> list[dict]:
    """The settings timed for `task` ("recover" or "train"); the first is the plain one."""
    precisions = [False, True] if device.type == "cpu" and cpu_has_bf16() else [False]
    out = [{"channels_last": cl, "amp_cpu": bf16} for bf16 in precisions for cl in (False, True)]
    if task == "train" and compile_ok:
        out += [{**c, "compile": True} for c in out]
    return [{"compile": False, **c} for c in out]


def _name(c: dict) -> str:
    parts = ["channels_last" if c["channels_last"] else "contiguous", "bf16" if c["amp_cpu"] else "fp32"]
    return " + ".join(parts + (["compile"] if c["compile"] else []))


def _step_fn(task: str, arch: str, classes: int, channels: int, size: int, batch: int, c: dict,
             device: torch.device) -> Callable[[], None]:
    """One step of the stage's work under the settings `c`."""
    torch.manual_seed(0)
    model = create_model(arch, classes, channels, size).to(device)
    layout = torch.channels_last if c["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=layout)
    x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=layout)
    y = torch.arange(batch, device=device) % classes
    if task == "recover":
        from .recover import BNStatsLoss

        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        hooks = BNStatsLoss(model)
        hooks.group_size = min(batch, classes)
        x.requires_grad_(True)

        def step():
            with autocast(device, False, cpu=c["amp_cpu"]):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y) + 0.01 * hooks.take().sum()
            x.grad = None
            loss.backward()
        return step
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    forward = torch.compile(model) if c["compile"] else model
    model.train()

    def step():
        with autocast(device, False, cpu=c["amp_cpu"]):
            logits = forward(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def measure(task: str, arch: str, classes: int, channels: int, size: int, batch: int, device: torch.device,
            compile_ok: bool = True, seconds: float = 0.5) -> dict[str, float]:
    """Seconds per step of every candidate (_measure), leaving the caller's random streams as they were."""
    with seeded(0, device):
        return _measure(task, arch, classes, channels, size, batch, device, compile_ok, seconds)


def _measure(task: str, arch: str, classes: int, channels: int, size: int, batch: int, device: torch.device,
             compile_ok: bool = True, seconds: float = 0.5) -> dict[str, float]:
    """Seconds per step of every candidate: each warmed up (compiled), then timed for about
    `seconds`, in two interleaved rounds (the better one counts)."""
    batch = min(batch, MEASURE_BATCH)
    steps = {}
    for c in candidates(device, task, compile_ok):
        fn = _step_fn(task, arch, classes, channels, size, batch, c, device)
        for _ in range(2):
            fn()
        steps[_name(c)] = (c, fn)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(2):
        for name, (_, fn) in steps.items():
            n, start = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if time.perf_counter() - start > seconds / 2 or n >= 50:
                    break
            times[name].append((time.perf_counter() - start) / n)
    return {k: min(v) for k, v in times.items()}


def choose(task: str, arch: str, classes: int, channels: int, size: int, batch: int, device: str | torch.device,
           cache_dir: str | Path, compile_ok: bool = True, log: Callable[[str], None] = print) -> dict:
    """The fastest settings for `task` at these shapes on this machine: measured once, then read from
    `<cache_dir>/speed.json`. {"channels_last", "amp_cpu", "compile"}."""
    dev = resolve_device(device)
    path = Path(cache_dir) / SPEED_FILE
    key = (f"{machine(dev)} | {task} {arch} {classes} classes {channels}x{size}px batch "
           f"{min(batch, MEASURE_BATCH)}" + ("" if compile_ok or task != "train" else " no-compile"))
    known = read_json(path, what="speed choices") if path.is_file() else {}
    if key in known:
        return dict(known[key]["choice"])
    log(f"speed: timing {task} settings for {arch} at {size}px on this machine (once)")
    times = measure(task, arch, classes, channels, size, batch, dev, compile_ok)
    plain = candidates(dev, task, compile_ok)[0]
    best = min(times, key=times.get)
    choice = next(c for c in candidates(dev, task, compile_ok) if _name(c) == best)
    if times[best] > (1 - MIN_GAIN) * times[_name(plain)]:
        choice = plain
    known = read_json(path, what="speed choices") if path.is_file() else {}  # another process may have written
    known[key] = {"choice": choice, "seconds_per_step": times,
                  "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(known, path)
    log(f"speed: {task} -> {_name(choice)} ({times[_name(plain)] / times[_name(choice)]:.2f}x the plain settings)")
    return choice


def resolve(cfg: RunConfig, info, log: Callable[[str], None] = print) -> Speeds:
    """The run's per-stage speed settings (cda.runtime.Speeds): `cfg.speeds` as written when
    cfg.speed is "fixed"; under "auto", chosen for this machine for teacher training, recovery,
    students, and CUDD's own recovery and students where the run sets them. Studies that change a
    student's architecture keep its choice. The stages' configs are left as they are."""
    if cfg.speed != "auto":
        return cfg.speeds
    dims = (info.num_classes, info.channels, info.image_size)

    def pick(task, arch, batch, compile_ok) -> Speed:
        c = choose(task, arch, *dims, batch, cfg.device, cfg.cache_dir, compile_ok, log)
        return Speed(**{k: v for k, v in c.items() if compile_ok or k != "compile"})

    s = cfg.squeeze
    teacher = cfg.speeds.teacher if s.pretrained else pick("train", s.arch, s.batch_size, False)

    def recover(r):
        group = min(r.classes_per_group, info.num_classes)
        # groups_per_step=0 puts every group of the set in one step: time it at the largest IPC's batch
        batch = group * (r.groups_per_step or -(-info.num_classes // group) * max(cfg.ipcs))
        return pick("recover", cfg.squeeze.arch, batch, False)

    def student(e):
        return pick("train", e.arch, e.aug.batch_size, True)

    c = cfg.cudd
    return Speeds(teacher=teacher, recover=recover(cfg.recover), student=student(cfg.eval),
                  cudd_recover=recover(c.recover) if c.recover is not None else None,
                  cudd_student=student(c.student) if c.student is not None else None)
