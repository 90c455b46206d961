"""Student-training throughput on a distilled set with soft labels: cda's loop against the official
pipeline's shape (benchmarks/reference_student.py), same images, plans, labels and epochs.

    python benchmarks/student.py [--device cpu|cuda] [--quick] [--teacher T.pt] [--ipc 50] [--epochs 20]
                                 [--workers 2] [--rounds 3]

cda: uint8 images on the device, crops/flips/CutMix for a whole batch in one grid_sample, labels
from the teacher online or from stored files (full fp16 and compact top-k). Reference: PNG
ImageFolder + PIL transforms in DataLoader workers + per-batch FKD label files. Reported: images/s
of the training loop, the median of `--rounds` interleaved runs (label generation and file writing
are timed apart), and the test accuracy of the last student of each variant.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from _common import (
    Timer,
    auto_settings,
    data_config,
    dataset_fields,
    median_and_rounds,
    parser,
    save,
    setup,
    table,
    teacher_for,
    timed_rounds,
)
from reference_student import train_reference, write_fkd_files

from cda.config import AugConfig, EvalConfig, RelabelConfig
from cda.data import info_for, load_split
from cda.models import create_model
from cda.recover import real_subset
from cda.relabel import batch_inputs, epoch_plan, relabel
from cda.runtime import Speed
from cda.student import train_student
from cda.training import test_accuracy


def main():
    p = parser(__doc__)
    p.add_argument("--ipc", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--arch", default="convnet3", help="student (and default teacher) architecture")
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    p.add_argument("--rounds", type=int, default=3, help="timed runs of every variant, interleaved (median)")
    args = p.parse_args()
    setup(args)
    dev = args.device
    info = info_for(data_config(args))
    ipc = args.ipc or (10 if args.quick else 50)
    epochs = args.epochs or (3 if args.quick else 20)
    teacher, tarch = teacher_for(args, info, args.arch)
    teacher = teacher.to(dev).eval()
    d = real_subset(load_split(data_config(args, train_per_class=ipc if args.data_root else max(ipc, 50)),
                               train=True), ipc)
    n = len(d.images)
    aug = AugConfig(epochs=epochs, batch_size=args.batch_size, crop_scale=(0.25, 1.0), mix="cutmix")
    ecfg = EvalConfig(arch=args.arch, aug=aug)
    total = n * epochs
    test = load_split(data_config(args, test_per_class=None if args.data_root or not args.quick else 100), train=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # compile is timed as its own variant below, not inside speed's choice (two more compilations,
        # minutes of a GPU call at ResNet-18 size)
        fast, fast_name = auto_settings("train", args.arch, info, args.batch_size, dev, compile_ok=False)
        # Labels and the reference's files are made once, timed apart ("prep").
        labels, prep = {}, {}
        for topk in (0, 3):
            with Timer(dev) as t:
                labels[topk] = relabel(teacher, d.images, info, RelabelConfig(aug=aug, topk=topk),
                                       tmp / f"labels_top{topk}", dev, progress=False)
            prep[topk] = t.seconds
        with Timer(dev) as t:  # the reference: PNG tree + per-batch FKD files, same plans and teacher logits
            d.save(tmp / "syn", info)
            plans = [epoch_plan(aug, n, info.image_size, e) for e in range(epochs)]
            images = d.images.to(dev)
            with torch.no_grad():
                logits = [[teacher(batch_inputs(images, pl, info)).cpu() for pl in ps] for ps in plans]
            fkd_bytes = write_fkd_files(plans, logits, tmp / "fkd")
        prep["reference"] = t.seconds

        def cda(extra, topk=None):  # `extra`: speed settings (the runtime's, cda.runtime.Speed)
            speed = Speed(**extra)
            if topk is None:
                return lambda: train_student(d, info, ecfg, teacher, device=dev, progress=False, speed=speed)
            return lambda: train_student(d, info, replace(ecfg, labels="stored"), stored=labels[topk],
                                         device=dev, progress=False, speed=speed)

        def reference():
            torch.manual_seed(0)
            student = create_model(args.arch, info.num_classes, info.channels, info.image_size).to(dev)
            seen = train_reference(student, tmp / "syn" / "images", tmp / "fkd", plans, info, ecfg.lr,
                                   ecfg.temperature, args.workers, dev)
            assert seen == total, (seen, total)
            return student

        # name: (training run, label set or "reference" for the prep columns)
        variants = {
            "cda, online teacher": (cda({}), None),
            f"cda, online teacher, {fast_name}": (cda(fast), None),
            "cda, stored full fp16": (cda({}, 0), 0),
            f"cda, stored full fp16, {fast_name}": (cda(fast, 0), 0),
            "cda, stored top-3 int8": (cda({}, 3), 3),
            f"cda, stored top-3 int8, {fast_name}": (cda(fast, 3), 3),
            f"reference: PNG + PIL + {args.workers} workers + per-batch files": (reference, "reference"),
        }
        if not fast["compile"] and not args.no_compile:  # what torch.compile would add to the chosen settings
            variants[f"cda, stored full fp16, {fast_name} + compile"] = (cda({**fast, "compile": True}, 0), 0)
        # Warm-up (allocator, cuDNN), not timed.
        train_student(d, info, replace(ecfg, aug=replace(aug, epochs=1)), teacher, device=dev, progress=False)
        # torch.compile compiles inside its timed runs.
        times, students = timed_rounds({name: run for name, (run, _) in variants.items()}, args.rounds, dev)
        rows = []
        for name, (_, source) in variants.items():
            timing = median_and_rounds(times[name])
            label_bytes = fkd_bytes if source == "reference" else None if source is None else labels[source].nbytes()
            rows.append({"variant": name, "images": total, **timing, "images_per_s": total / timing["seconds"],
                         "prep_seconds": prep.get(source), "label_bytes": label_bytes,
                         # a faster variant must train as good a student
                         "student_top1": test_accuracy(students[name], test, torch.device(dev), 512, amp=False)["top1"]})

    ref = next(r for r in rows if r["variant"].startswith("reference"))["images_per_s"]
    for r in rows:
        r["speedup_vs_reference"] = r["images_per_s"] / ref
    print(f"student training: {args.arch} on {n} images (IPC {ipc}) x {epochs} epochs, batch {args.batch_size}, "
          f"teacher {tarch}, device {dev}, torch threads {torch.get_num_threads()}")
    print(table(rows, ["variant", "images", "seconds", "images_per_s", "speedup_vs_reference", "student_top1",
                       "prep_seconds", "label_bytes"]))
    paths = save("student", args, rows, {"arch": args.arch, "teacher_arch": tarch, "ipc": ipc, "epochs": epochs,
                                         "batch_size": args.batch_size, "workers": args.workers,
                                         **dataset_fields(info)})
    print("-> " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
