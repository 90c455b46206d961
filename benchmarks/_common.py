"""Shared pieces of the benchmarks: arguments, the teacher, hardware facts, and the result files."""
from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python benchmarks/x.py` from a checkout

from cda.speed import cpu_model  # noqa: E402

# Dense peak throughput (TFLOP/s) from the vendors' data sheets (no sparsity). fp32 is the plain
# (non-tensor-core) rate; PyTorch uses it unless TF32 is enabled.
# tf32 is the tensor-core rate that cuDNN convolutions use for fp32 tensors by default
# (torch.backends.cudnn.allow_tf32 is True).
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0},
    "H100 SXM": {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "H100 NVL": {"bf16": 835.0, "tf32": 418.0, "fp32": 60.0},
    "H100": {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0},  # an H100 name without the form factor: assume SXM
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
}
PEAK_SOURCE = ("NVIDIA data sheets (dense: the with-sparsity tensor-core figures halved): H200 Tensor Core GPU "
               "(SXM), H100 Tensor Core GPU (SXM, PCIe, NVL), A100 Tensor Core GPU (SXM); on the CPU a measured "
               "2048x2048 matrix product")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--quick", action="store_true", help="tiny budgets: checks that the script runs (~1 min on a CPU)")
    p.add_argument("--teacher", help="cda teacher checkpoint (default: a teacher squeezed here for 1 epoch)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--out-dir", default=str(ROOT / "results" / "bench"))
    p.add_argument("--data-root", help="an ImageFolder tree (e.g. `cda standin`, 224 px): ImageNet shape "
                                       "instead of Fashion-MNIST")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variants (slow to "
                                                             "compile on a small CPU)")
    return p


def data_config(args, **subset):
    """The benchmark's dataset: Fashion-MNIST, or the ImageFolder tree at --data-root."""
    from cda.config import DataConfig

    if args.data_root:
        made = Path(args.data_root) / "standin.json"  # a stand-in's own size (else the 224 px of ImageNet)
        size = json.loads(made.read_text())["size"] if made.is_file() else None
        return DataConfig(name="imagefolder", root=args.data_root, workers=0, image_size=size, **subset)
    return DataConfig(**subset)


def dataset_fields(info) -> dict:
    """The shape a benchmark ran at, for its JSON."""
    return {"dataset": info.name, "classes": info.num_classes, "channels": info.channels,
            "image_size": info.image_size}


def setup(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def auto_settings(task: str, arch: str, info, batch: int, device: str, compile_ok: bool = True) -> tuple[dict, str]:
    """What RunConfig.speed="auto" picks on this machine for `task` ("recover" or "train") at these
    shapes (cda.speed: measured once, kept in the project's .cache/cda/speed.json), and its label."""
    from cda.speed import _name, choose

    choice = choose(task, arch, info.num_classes, info.channels, info.image_size, batch, device,
                    ROOT / ".cache" / "cda", compile_ok=task == "train" and compile_ok)
    name = "speed=auto: " + _name(choice)
    return (choice if task == "train" else {k: v for k, v in choice.items() if k != "compile"}), name


@functools.lru_cache(maxsize=None)  # once per precision and run: every row of a run shares the peak
def matmul_tflops(precision: str, n: int = 2048, repeats: int = 10) -> float:
    """The best rate of an n x n matrix product on the CPU in fp32 or bf16: a measured stand-in for
    the peak, since a virtual machine reports no clock rate to compute one from."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e12


def peak_tflops(device: str, precision: str, quick: bool = False) -> float | None:
    """The device's dense peak for `precision` ("bf16", "tf32" or "fp32"): from the data sheet on
    known GPUs (PEAK_SOURCE), None on unknown ones; on the CPU the measured matrix-product rate
    (matmul_tflops)."""
    if not device.startswith("cuda"):
        # --quick: a small product, far cheaper (a toy run's rows are not published)
        return matmul_tflops("bf16" if precision == "bf16" else "fp32", *((512, 3) if quick else ()))
    name = torch.cuda.get_device_name(torch.device(device))
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):  # the most specific name first
        if all(part in name for part in key.split()):
            return PEAK_TFLOPS[key][precision]
    return None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Timer:
    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


def timed_rounds(runs: dict, rounds: int, device: str) -> tuple[dict, dict]:
    """Time every run `rounds` times, interleaved: {name: each round's seconds} and {name: the last
    run's output}. On shared cloud cores the speed drifts by tens of percent
    between minutes, which one pass per variant would credit to whichever ran then."""
    times, outputs = {name: [] for name in runs}, {}
    for _ in range(rounds):
        for name, run in runs.items():
            with Timer(device) as t:
                outputs[name] = run()
            times[name].append(t.seconds)
    return times, outputs


def median_and_rounds(times: list[float]) -> dict:
    """The row fields of one variant's timings."""
    return {"seconds": statistics.median(times), "seconds_per_round": " ".join(f"{x:.2f}" for x in times)}


def teacher_for(args, info, arch: str = "convnet3"):
    """The teacher: a checkpoint, or `arch` squeezed for one epoch on 2,000 Fashion-MNIST images (or
    on the --data-root tree)."""
    from cda.checkpoint import load_checkpoint
    from cda.config import SqueezeConfig
    from cda.squeeze import squeeze

    if args.teacher:
        model, meta = load_checkpoint(args.teacher, info, args.device)
        return model, meta.get("arch", "?")
    # with --data-root: the whole (small) tree's training images, one epoch
    per_class = None if args.data_root else 50 if args.quick else 200
    model, _ = squeeze(data_config(args, train_per_class=per_class, test_per_class=None if args.data_root else 20),
                       SqueezeConfig(arch=arch, epochs=1, batch_size=64, lr=0.05), args.device, progress=False)
    return model.eval(), arch


def save(name: str, args, rows: list[dict], extra: dict) -> tuple[Path, Path]:
    """results/bench/<name>-<device>{-quick}.csv and .json (rows plus provenance)."""
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{args.device.split(':')[0]}" + ("-quick" if args.quick else "")
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    provenance = {"benchmark": name, "argv": sys.argv, "device": args.device, "device_name": device_name(args.device),
                  "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                  "torch": torch.__version__, "python": platform.python_version(), "quick": args.quick,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra, "rows": rows}
    try:
        import subprocess

        provenance["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                                  text=True).stdout.strip()
    except OSError:
        pass
    (out / f"{stem}.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return out / f"{stem}.csv", out / f"{stem}.json"


def table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
