"""Students per second: K students at once (cda.students_batched) against K `train_student` runs one at a
time and against K runs of the official pipeline's shape (benchmarks/reference_student.py), side by side
in one run, interleaved rounds, the same images, recipe and teacher.

    python benchmarks/students_batched.py [--quick] [--k 5] [--ipc 10] [--epochs 5] [--rounds 3]

The recipe is the cpu preset's student (convnet3, AdamW at 2e-3 with a per-epoch cosine, batch 64, crops
0.25-1, flips, CutMix, online soft labels at T 20); student k has the seed k (cda.config.seeded_eval).
The reference reads its labels from per-batch files made beforehand (not timed), as the official code.
Also written: the FLOPs of each way (torch's FlopCounterMode on the one-at-a-time way: convolutions and
matrix products, forward and backward, the teacher's forwards included; the reference's without them),
the achieved FLOP/s as a fraction of the peak measured with a 2048x2048 matrix product in the same run,
the load average while it ran (other processes share the cores), and a torch.profiler table of the top
ops of each cda way (`students_batched-<device>-profile.txt`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from _common import (
    data_config,
    dataset_fields,
    matmul_tflops,
    median_and_rounds,
    parser,
    save,
    setup,
    table,
    teacher_for,
    timed_rounds,
)
from reference_student import train_reference, write_fkd_files
from torch.utils.flop_counter import FlopCounterMode

from cda.config import AugConfig, EvalConfig, seeded_eval
from cda.data import info_for, load_split
from cda.models import create_model
from cda.recover import real_subset
from cda.relabel import batch_inputs, epoch_plan
from cda.student import train_student
from cda.students_batched import train_students
from cda.training import test_accuracy


def flops(run) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def main():
    p = parser(__doc__)
    p.add_argument("--k", type=int, default=5, help="students trained at once")
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of every way, interleaved (median)")
    args = p.parse_args()
    setup(args)
    dev = args.device
    load_before = os.getloadavg()
    info = info_for(data_config(args))
    epochs = args.epochs or (2 if args.quick else 5)
    teacher, tarch = teacher_for(args, info, "convnet3")
    teacher = teacher.to(dev).eval()
    d = real_subset(load_split(data_config(args, train_per_class=max(args.ipc, 50)), train=True), args.ipc)
    test = load_split(data_config(args, test_per_class=100), train=False)
    base = EvalConfig(arch="convnet3", lr=0.002, aug=AugConfig(epochs=epochs, batch_size=64, crop_scale=(0.25, 1.0)))
    cfgs = [seeded_eval(base, s) for s in range(args.k)]
    peak = matmul_tflops("fp32") * 1e12
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        d.save(tmp / "syn", info)
        plans, logits, images = {}, {}, d.images.to(dev)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:  # the teacher's share of the FLOPs
            for k, c in enumerate(cfgs):
                plans[k] = [epoch_plan(c.aug, len(d.images), info.image_size, e) for e in range(epochs)]
                logits[k] = [[teacher(batch_inputs(images, pl, info)).cpu() for pl in ps] for ps in plans[k]]
        teacher_flops = counter.get_total_flops()
        for k in range(args.k):  # the reference's per-batch label files, one folder per student
            write_fkd_files(plans[k], logits[k], tmp / f"fkd{k}")

        def batched():
            return train_students(d, info, cfgs, teacher, dev, progress=False)

        def one_at_a_time():
            return [train_student(d, info, c, teacher, device=dev, progress=False) for c in cfgs]

        def reference():
            out = []
            for k, c in enumerate(cfgs):
                torch.manual_seed(c.seed)
                student = create_model(c.arch, info.num_classes, info.channels, info.image_size).to(dev)
                train_reference(student, tmp / "syn" / "images", tmp / f"fkd{k}", plans[k], info, c.lr, c.temperature,
                                args.workers, dev)
                out.append(student.eval())
            return out

        ways = {f"cda, {args.k} students at once": batched, "cda, one at a time (train_student)": one_at_a_time,
                f"reference: PNG + PIL + {args.workers} workers + per-batch files, one at a time": reference}
        train_students(d, info, cfgs[:2], teacher, dev, progress=False)  # warm-up, not timed
        times, students = timed_rounds(ways, args.rounds, dev)
        load_after = os.getloadavg()
        # Both cda ways do the same multiply-adds per student; they are counted on the one-at-a-time way,
        # since FlopCounterMode overcounts the backward of grouped convolutions (torch 2.x: about 3x).
        # The reference does the same work but for the teacher's forwards, which it reads from files.
        student_flops = flops(one_at_a_time)
        rows = []
        for name, way in ways.items():
            timing = median_and_rounds(times[name])
            n_flops = student_flops - teacher_flops if way is reference else student_flops
            accs = [test_accuracy(s, test, torch.device(dev), 512, amp=False)["top1"] for s in students[name]]
            rows.append({"way": name, "students": args.k, **timing, "students_per_s": args.k / timing["seconds"],
                         "gflop": n_flops / 1e9, "gflop_per_s": n_flops / timing["seconds"] / 1e9,
                         "peak_fraction": n_flops / timing["seconds"] / peak,
                         "mean_student_top1": sum(accs) / len(accs)})
        one = rows[1]["students_per_s"]
        for r in rows:
            r["speedup_vs_one_at_a_time"] = r["students_per_s"] / one
        profile = profiles(batched, one_at_a_time, args.k)
    print(f"{args.k} students: convnet3 on {len(d.images)} images (IPC {args.ipc}) x {epochs} epochs, batch 64, "
          f"teacher {tarch}, device {dev}, torch threads {torch.get_num_threads()}, measured fp32 peak "
          f"{peak / 1e9:.1f} GFLOP/s, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(table(rows, ["way", "students", "seconds", "students_per_s", "speedup_vs_one_at_a_time", "gflop_per_s",
                       "peak_fraction", "mean_student_top1"]))
    paths = save("students_batched", args, rows,
                 {"arch": "convnet3", "teacher_arch": tarch, "ipc": args.ipc, "images": len(d.images), "epochs": epochs,
                  "batch_size": 64, "k": args.k, "workers": args.workers, "peak_gflop_per_s": peak / 1e9,
                  "peak_source": "measured: best of 10 fp32 2048x2048 matrix products in this run",
                  "load_average_before": load_before, "load_average_after": load_after, **dataset_fields(info)})
    text = paths[1].with_name(paths[1].stem + "-profile.txt")
    text.write_text(profile)
    print("-> " + ", ".join(map(str, (*paths, text))))


def profiles(batched, one_at_a_time, k: int) -> str:
    """torch.profiler's top ops (self CPU time) of one run of each cda way."""
    from torch.profiler import profile

    out = []
    for name, run in ((f"{k} students at once", batched), (f"{k} students one at a time", one_at_a_time)):
        with profile() as prof:
            run()
        out.append(f"== {name}: top ops by self CPU time ==\n"
                   + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return "\n\n".join(out) + "\n"


if __name__ == "__main__":
    main()
