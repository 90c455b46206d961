"""Recovery speed and quality: `cda.recover.recover` against the official loop's shape
(benchmarks/reference_recovery.py), same teacher, same hyperparameters, measured in one run.

    python benchmarks/recovery.py [--device cpu|cuda] [--quick] [--teacher T.pt] [--arch resnet18_modified]
                                  [--ipc 10] [--iterations 200] [--quality] [--rounds 3]

Speed is image-iterations per second (images x iterations / wall seconds), from the median of
`--rounds` interleaved runs of every variant. Cost per image-iteration is about 3 teacher forwards
(forward + backward to the input), counted with FlopCounterMode, which gives the achieved GFLOP/s
and the fraction of the peak: the data sheet's on known GPUs, and on the CPU the best rate of a
2048 x 2048 matrix product measured in the same run (in the variant's precision).
Quality: the teacher's cross-entropy and the BN-matching loss on the final uint8 images (no
augmentation), and with --quality the accuracy of students trained on each set (--seeds of them:
mean, std and each seed's).
"""
from __future__ import annotations

import contextlib
import statistics
from dataclasses import replace

import torch
import torch.nn.functional as F
from _common import (
    PEAK_SOURCE,
    auto_settings,
    data_config,
    dataset_fields,
    median_and_rounds,
    parser,
    peak_tflops,
    save,
    setup,
    table,
    teacher_for,
    timed_rounds,
)
from reference_recovery import reference_recover
from torch.utils.flop_counter import FlopCounterMode

from cda.config import AugConfig, CurriculumConfig, EvalConfig, RecoverConfig, preset
from cda.data import info_for, load_split
from cda.methods import recover_for
from cda.recover import BNStatsLoss, Distilled, recover
from cda.runtime import SPEED_FIELDS, Speed


def forward_flops(model, info, device) -> float:
    x = torch.randn(1, info.channels, info.image_size, info.image_size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


@torch.no_grad()
def quality(teacher, info, images_cm, ipc, device, r_bn_first=10.0) -> dict:
    """Teacher CE and BN loss of class-major uint8 images; BN statistics per IPC slot (all classes)."""
    c = info.num_classes
    x = info.normalize(images_cm.to(device))
    y = torch.arange(c, device=device).repeat_interleave(ipc)
    hooks = BNStatsLoss(teacher, r_bn_first)
    try:
        ce = F.cross_entropy(teacher(x).float(), y).item()
        hooks.take()
        hooks.group_size = c  # IPC-major order: each consecutive block of c images is one IPC slot
        ipc_major = x.view(c, ipc, *x.shape[1:]).transpose(0, 1).reshape(x.shape)
        teacher(ipc_major)
        bn = hooks.take().mean().item()
    finally:
        hooks.remove()
    return {"teacher_ce": ce, "bn_loss": bn}


@contextlib.contextmanager
def tf32_mode(name: str, device: str):
    """fp32 variants on CUDA: "fp32" turns TF32 off for cuDNN convolutions and matrix products, "tf32"
    turns it on for both (cuDNN's default for convolutions); bf16 variants run under the library's
    own autocast and keep the defaults. Restored afterwards. No effect on the CPU."""
    if not device.startswith("cuda") or name == "bf16":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = name == "tf32"
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def main():
    p = parser(__doc__)
    p.add_argument("--arch", default="convnet3", help="teacher architecture when no --teacher is given")
    p.add_argument("--ipc", type=int, default=None)
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--quality", action="store_true", help="also train a student on each set (slow)")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of every variant, interleaved (median)")
    p.add_argument("--seeds", type=int, default=3, help="--quality: students per set (seeds 0..n-1), mean and std")
    args = p.parse_args()
    setup(args)
    dev = args.device
    cuda = dev.startswith("cuda")
    info = info_for(data_config(args))
    ipc = args.ipc or (2 if args.quick else 10)
    iterations = args.iterations or (20 if args.quick else 200)
    teacher, arch = teacher_for(args, info, args.arch)
    teacher = teacher.to(dev)
    if args.data_root:  # ImageNet shape: the paper preset's CDA recipe, one group of up to 100 classes per step
        r = recover_for(preset("paper"), "cda", ipc)
        hp = dict(lr=r.lr, r_bn=r.r_bn, jitter=r.jitter, schedule=r.curriculum.schedule,
                  milestone=r.curriculum.milestone)
        per_group = min(r.classes_per_group, info.num_classes)
    else:
        hp = dict(lr=0.1, r_bn=0.05, jitter=2, schedule="cosine", milestone=1.0)  # the cpu preset's CDA recipe
        per_group = info.num_classes
    cfg = RecoverConfig(ipc=ipc, iterations=iterations, lr=hp["lr"], r_bn=hp["r_bn"], jitter=hp["jitter"],
                        curriculum=CurriculumConfig("cosine", hp["milestone"]),
                        classes_per_group=per_group, groups_per_step=0)
    flops = forward_flops(teacher, info, dev)
    work = ipc * info.num_classes * iterations  # image-iterations

    def run_reference(n_iter=iterations):
        return reference_recover(teacher, info, ipc, n_iter, hp["lr"], hp["r_bn"], jitter=hp["jitter"],
                                 schedule=hp["schedule"], milestone=hp["milestone"], device=dev)

    def cda(teacher_=teacher, **kw):  # the speed settings are the runtime's (cda.runtime.Speed), the rest the config's
        speed = Speed(**{k: kw.pop(k) for k in SPEED_FIELDS if k in kw})
        return lambda n: recover(teacher_, info, replace(cfg, iterations=n, **kw), dev, False, speed=speed)

    # name: (precision, run). On CUDA, "bf16" is the library's autocast (RecoverConfig.amp); on the
    # CPU the fp32 rows are plain fp32 and bf16 is amp_cpu.
    bf16 = "bf16"
    fp = "tf32" if cuda else "fp32"
    variants = {
        f"reference (official shape, {fp})": (fp, run_reference),
        "cda (all IPC slots batched)": (bf16 if cuda else "fp32", cda()),
        f"cda (one IPC slot per step, {fp})": (fp, cda(groups_per_step=1, amp=False)),
        "cda (one IPC slot per step, bf16)": (bf16, cda(groups_per_step=1, amp=True, amp_cpu=True)),
        "cda (one IPC slot per step, bf16 + channels_last)": (bf16, cda(groups_per_step=1, amp=True, amp_cpu=True,
                                                                         channels_last=True)),
    }
    if cuda:  # strict fp32 (TF32 off) for the reference and cda
        variants["reference (official shape, fp32)"] = ("fp32", run_reference)
        variants["cda (one IPC slot per step, fp32)"] = ("fp32", cda(groups_per_step=1, amp=False))
    if not args.no_compile:  # the teacher compiled (the library has no switch for it in recovery)
        compiled = torch.compile(teacher)
        variants["cda (one IPC slot per step, bf16 + compile)"] = (
            bf16, cda(compiled, groups_per_step=1, amp=True, amp_cpu=True))
    fast, fast_name = auto_settings("recover", arch, info, per_group, dev)
    variants[f"cda (one IPC slot per step, {fast_name})"] = (
        "bf16" if fast["amp_cpu"] or (cuda and cfg.amp) else "fp32", cda(groups_per_step=1, **fast))

    failed = {}
    for name, (prec, fn) in list(variants.items()):
        try:
            with tf32_mode(prec, dev):
                fn(2)  # warm-up: allocator, cuDNN autotuning, compilation
        except Exception as err:  # a variant that cannot run here is reported, not fatal
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:500]
            print(f"recovery: variant {name!r} failed in its warm-up: {failed[name]}")
            del variants[name]

    def timed(prec, fn):
        def run():
            with tf32_mode(prec, dev):
                return fn(iterations)
        return run

    if not any(name.startswith("reference") for name in variants):
        raise SystemExit(f"recovery: the reference loop failed, nothing to compare with: {failed}")
    times, outputs = timed_rounds({name: timed(prec, fn) for name, (prec, fn) in variants.items()}, args.rounds, dev)
    rows, results = [], {}
    for name, (precision, _) in variants.items():
        out = outputs[name]
        if isinstance(out, Distilled):
            images = out.images
        else:  # reference: IPC-major -> class-major
            images = out[0].view(ipc, info.num_classes, *out[0].shape[1:]).transpose(0, 1).reshape(out[0].shape)
        results[name] = images
        timing = median_and_rounds(times[name])
        rate = work / timing["seconds"]
        gflops = 3 * flops * rate / 1e9
        peak = peak_tflops(dev, precision, args.quick)
        rows.append({"variant": name, "precision": precision, **timing, "img_it_per_s": rate,
                     "gflop_per_s": gflops, "peak_gflop_per_s": peak * 1e3 if peak else None,
                     "peak_fraction": gflops / (peak * 1e3) if peak else None,
                     **quality(teacher, info, images, ipc, dev)})
    base = rows[0]["img_it_per_s"]
    for r in rows:
        r["speedup_vs_reference"] = r["img_it_per_s"] / base

    if args.quality:
        test = load_split(data_config(args, test_per_class=None if args.data_root or not args.quick else 100),
                          train=False)
        ecfg = EvalConfig(arch=args.arch if args.data_root else "convnet3",
                          aug=AugConfig(epochs=10 if args.quick else 200, batch_size=64, crop_scale=(0.25, 1.0)))
        from cda.student import evaluate

        labels = torch.arange(info.num_classes).repeat_interleave(ipc)
        for r in rows:
            top1 = [evaluate(Distilled(results[r["variant"]], labels), test, replace(ecfg, seed=seed), teacher,
                             device=dev, progress=False)["top1"] for seed in range(args.seeds)]
            r["student_top1"] = statistics.mean(top1)
            r["student_top1_std"] = statistics.stdev(top1) if len(top1) > 1 else 0.0
            r["student_top1_seeds"] = " ".join(f"{v:.2f}" for v in top1)

    cols = ["variant", "precision", "seconds", "img_it_per_s", "speedup_vs_reference", "gflop_per_s",
            "peak_gflop_per_s", "peak_fraction", "teacher_ce", "bn_loss"] + (
        ["student_top1", "student_top1_std", "student_top1_seeds"] if args.quality else [])
    print(f"recovery: teacher {arch}, {info.name} ({info.num_classes} classes, {info.image_size} px), IPC {ipc}, "
          f"{iterations} iterations, device {dev}, {flops / 1e6:.1f} MFLOP per forward, torch threads {torch.get_num_threads()}")
    print(table(rows, cols))
    csv_path, json_path = save("recovery", args, rows, {"teacher_arch": arch, "ipc": ipc, "iterations": iterations,
                                                        "forward_flops": flops, "hyperparameters": hp,
                                                        "flops_per_image_iteration": 3 * flops,
                                                        "classes_per_group": per_group, **dataset_fields(info),
                                                        "peak_source": PEAK_SOURCE, "failed_variants": failed})
    print(f"-> {csv_path}, {json_path}")


if __name__ == "__main__":
    main()
