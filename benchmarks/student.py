"""Student-training throughput on a distilled set with soft labels: cda's loop against the official
pipeline's shape (benchmarks/reference_student.py), same images, plans, labels and epochs.

    python benchmarks/student.py [--device cpu|cuda] [--quick] [--teacher T.pt] [--ipc 50] [--epochs 20]
                                 [--workers 2]

cda: uint8 images on the device, crops/flips/CutMix for a whole batch in one grid_sample, labels
from the teacher online or from stored files (full fp16 and compact top-k). Reference: PNG
ImageFolder + PIL transforms in DataLoader workers + per-batch FKD label files. Reported: images/s
of the training loop (label generation and file writing are timed apart).
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from _common import Timer, fast_settings, parser, save, setup, table, teacher_for
from reference_student import train_reference, write_fkd_files

from cda.config import AugConfig, DataConfig, EvalConfig, RelabelConfig
from cda.data import dataset_info, load_split
from cda.evaluate import train_student
from cda.models import create_model
from cda.recover import real_subset
from cda.relabel import batch_inputs, epoch_plan, relabel
from cda.training import test_accuracy


def main():
    p = parser(__doc__)
    p.add_argument("--ipc", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--arch", default="convnet3", help="student (and default teacher) architecture")
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    args = p.parse_args()
    setup(args)
    dev = args.device
    info = dataset_info("fashion_mnist")
    ipc = args.ipc or (10 if args.quick else 50)
    epochs = args.epochs or (3 if args.quick else 20)
    teacher, tarch = teacher_for(args, info, args.arch)
    teacher = teacher.to(dev).eval()
    d = real_subset(load_split(DataConfig(train_per_class=max(ipc, 50)), train=True), ipc)
    n = len(d.images)
    aug = AugConfig(epochs=epochs, batch_size=args.batch_size, crop_scale=(0.25, 1.0), mix="cutmix")
    ecfg = EvalConfig(arch=args.arch, aug=aug)
    total = n * epochs
    test = load_split(DataConfig(test_per_class=100 if args.quick else None), train=False)
    rows = []

    def add(name, seconds, student, prep=None, label_bytes=None):
        # Test accuracy too: a faster variant must train as good a student.
        top1 = test_accuracy(student, test, torch.device(dev), 512, amp=False)["top1"]
        rows.append({"variant": name, "images": total, "seconds": seconds, "images_per_s": total / seconds,
                     "prep_seconds": prep, "label_bytes": label_bytes, "student_top1": top1})

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Warm-up (allocator, cuDNN), not timed.
        train_student(d, info, replace(ecfg, aug=replace(aug, epochs=1)), teacher, device=dev, progress=False)

        fast, fast_name = fast_settings(dev)
        with Timer(dev) as t:
            s = train_student(d, info, ecfg, teacher, device=dev, progress=False)
        add("cda, online teacher", t.seconds, s)
        with Timer(dev) as t:
            s = train_student(d, info, replace(ecfg, **fast), teacher, device=dev, progress=False)
        add(f"cda, online teacher, {fast_name}", t.seconds, s)

        labels = {}
        for name, rl, extra in [("cda, stored full fp16", RelabelConfig(aug=aug), {}),
                                (f"cda, stored full fp16, {fast_name}", RelabelConfig(aug=aug), fast),
                                (f"cda, stored full fp16, {fast_name} + torch.compile", RelabelConfig(aug=aug),
                                 {**fast, "compile": True}),
                                ("cda, stored top-3 int8", RelabelConfig(aug=aug, topk=3), {}),
                                (f"cda, stored top-3 int8, {fast_name}", RelabelConfig(aug=aug, topk=3), fast)]:
            prep = None
            if rl.topk not in labels:  # each label set is made once and shared by its rows
                with Timer(dev) as prep:
                    labels[rl.topk] = relabel(teacher, d.images, info, rl, tmp / f"labels_top{rl.topk}", dev,
                                              progress=False)
            stored = labels[rl.topk]
            with Timer(dev) as t:  # torch.compile's compilation is inside the timed run
                s = train_student(d, info, replace(ecfg, labels="stored", **extra), stored=stored, device=dev,
                                  progress=False)
            add(name, t.seconds, s, prep and prep.seconds, stored.nbytes())

        # Reference: PNG tree + per-batch FKD files, written from the same plans and teacher logits.
        with Timer(dev) as prep:
            d.save(tmp / "syn", info)
            plans = [epoch_plan(aug, n, info.image_size, e) for e in range(epochs)]
            images = d.images.to(dev)
            with torch.no_grad():
                logits = [[teacher(batch_inputs(images, pl, info)).cpu() for pl in ps] for ps in plans]
            nbytes = write_fkd_files(plans, logits, tmp / "fkd")
        torch.manual_seed(0)
        student = create_model(args.arch, info.num_classes, info.channels, info.image_size).to(dev)
        with Timer(dev) as t:
            seen = train_reference(student, tmp / "syn" / "images", tmp / "fkd", plans, info, ecfg.lr,
                                   ecfg.temperature, args.workers, dev)
        assert seen == total, (seen, total)
        add(f"reference: PNG + PIL + {args.workers} workers + per-batch files", t.seconds, student, prep.seconds,
            nbytes)

    ref = rows[-1]["images_per_s"]
    for r in rows:
        r["speedup_vs_reference"] = r["images_per_s"] / ref
    print(f"student training: {args.arch} on {n} images (IPC {ipc}) x {epochs} epochs, batch {args.batch_size}, "
          f"teacher {tarch}, device {dev}, torch threads {torch.get_num_threads()}")
    print(table(rows, ["variant", "images", "seconds", "images_per_s", "speedup_vs_reference", "student_top1",
                       "prep_seconds", "label_bytes"]))
    paths = save("student", args, rows, {"arch": args.arch, "teacher_arch": tarch, "ipc": ipc, "epochs": epochs,
                                         "batch_size": args.batch_size, "workers": args.workers})
    print("-> " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
