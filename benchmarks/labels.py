"""Stored soft labels: bytes per image-epoch and student accuracy, full fp16 (FKD-style) against the
compact formats (cda.labels_compact: top-k or all logits in int8, optionally a pool of fewer labelled
epochs) and against regenerating them from the seed (the online teacher, nothing stored), on one
Fashion-MNIST distilled set with the same augmentation seed and epochs; plus the byte layout and
measured sizes at 1,000 classes (ImageNet-1K) with synthetic logits.

    python benchmarks/labels.py [--device cpu|cuda] [--quick] [--teacher T.pt] [--distilled FOLDER]
                                [--epochs 100] [--ks 1,3,5] [--label-epochs 5,10,20] [--seeds 3]

--distilled takes a folder from `cda recover` (default: an SRe2L set recovered here, IPC 10).
Each format trains `--seeds` students (initialization seeds 0..n-1, the same for every format), so
the accuracy change is a paired mean over seeds: students of one seed differ by a point or more.
"""
from __future__ import annotations

import io
import tempfile
from dataclasses import replace
from math import inf
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import Timer, parser, save, setup, table, teacher_for

from cda.config import AugConfig, DataConfig, EvalConfig, RecoverConfig, RelabelConfig
from cda.data import dataset_info, load_split
from cda.labels_compact import bytes_per_view, compress, decompress, to_rows
from cda.recover import Distilled, recover
from cda.relabel import _pack, epoch_plan, relabel
from cda.student import train_student
from cda.training import test_accuracy


def kl(p_logits, q_logits, t):
    return F.kl_div(F.log_softmax(q_logits.float() / t, 1), F.softmax(p_logits.float() / t, 1),
                    reduction="batchmean").item()


def imagenet_scale(t: float, n: int = 1024, batch: int = 1024) -> list[dict]:
    """Bytes per view at C = 1000: the layouts, and torch.save'd sizes of one batch of synthetic
    teacher-like logits (Gaussian, std 3, one winner +6)."""
    c = 1000
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, c, generator=g) * 3
    z[torch.arange(n), torch.randint(c, (n,), generator=g)] += 6
    plans = epoch_plan(AugConfig(batch_size=batch), n, 224, 0)

    def saved(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.tell()

    full_measured = saved(_pack(plans, [z.half()])) / n
    full_layout = bytes_per_view(c, 0, batch_size=batch)
    rows = [{"format": "full fp16 (FKD)", "k": c, "layout_B": full_layout, "measured_B": full_measured,
             "ratio_layout": 1.0, "ratio_measured": 1.0, "kl_T": 0.0}]
    for k, quant in [(k, q) for k in (10, 50, 100, 200) for q in ("int8", "fp16")] + [(c, "int8")]:
        blob = compress(z, k, quant, t)
        m = saved(to_rows(blob, c, k, quant)) / n  # as cda.relabel writes it
        layout = bytes_per_view(c, k, quant)
        rows.append({"format": f"top-{k} {quant}" if k < c else f"all {c} {quant}", "k": k, "layout_B": layout,
                     "measured_B": m, "ratio_layout": full_layout / layout, "ratio_measured": full_measured / m,
                     "kl_T": kl(z, decompress(blob, c), t)})
    return rows


def main():
    p = parser(__doc__)
    p.add_argument("--distilled", help="a `cda recover` output folder (Fashion-MNIST)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--ks", default="1,3,5", help="top-k values to compare")
    p.add_argument("--label-epochs", default="5,10,20",
                   help="pools of labelled epochs to compare (all-class int8; training cycles through them)")
    p.add_argument("--seeds", type=int, default=3, help="students per format")
    p.add_argument("--arch", default="convnet3")
    args = p.parse_args()
    setup(args)
    dev = args.device
    info = dataset_info("fashion_mnist")
    epochs = args.epochs or (4 if args.quick else 100)
    teacher, tarch = teacher_for(args, info, args.arch)
    teacher = teacher.to(dev).eval()
    if args.distilled:
        d = Distilled.load(args.distilled)
    else:
        d = recover(teacher, info, RecoverConfig(ipc=10, iterations=20 if args.quick else 300, lr=0.1, r_bn=0.05,
                                                 jitter=2), dev, progress=False)
    test = load_split(DataConfig(test_per_class=100 if args.quick else None), train=False)
    aug = AugConfig(epochs=epochs, batch_size=64, crop_scale=(0.25, 1.0), mix="cutmix")
    ecfg = EvalConfig(arch=args.arch, aug=aug, temperature=20.0)
    t = ecfg.temperature
    c = info.num_classes
    pools = sorted({min(int(n), epochs) for n in args.label_epochs.split(",")})
    formats = [("full fp16 (FKD)", RelabelConfig(aug=aug))]
    formats += [(f"top-{k} int8", RelabelConfig(aug=aug, topk=k, fill_temperature=t)) for k in map(int, args.ks.split(","))]
    formats += [(f"all {c} int8", RelabelConfig(aug=aug, topk=c))]
    formats += [(f"all {c} int8, {n} labelled epochs", RelabelConfig(aug=aug, topk=c, label_epochs=n)) for n in pools]
    formats += [("seed only: teacher regenerates them", None)]
    seeds = range(args.seeds)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        full = None
        for name, rl in formats:
            row = {"format": name}
            if rl is None:  # online labels: the plan comes from the seed, the logits from the teacher
                cfg = replace(ecfg, labels="online")
                stored, layout, disk = None, 0.0, 0.0
                row.update(kl_vs_full_T=0.0, top1_agreement=1.0)
            else:
                cfg = replace(ecfg, labels="stored")
                stored = relabel(teacher, d.images, info, rl, Path(tmp) / f"labels{len(rows)}", dev, progress=False)
                full = full or stored
                layout = bytes_per_view(c, rl.topk, rl.quant, aug.batch_size) * rl.stored_epochs / epochs
                disk = stored.bytes_per_view()
                kls, agree, views = 0.0, 0, 0
                for e in range(rl.stored_epochs):  # the labelled epochs are the same views as full's
                    for (_, zf), (_, zc) in zip(full.epoch(e), stored.epoch(e)):
                        kls += kl(zf, zc, t) * len(zf)
                        agree += int((zf.float().argmax(1) == zc.float().argmax(1)).sum())
                        views += len(zf)
                row.update(kl_vs_full_T=kls / views, top1_agreement=agree / views)
            accs, seconds = [], 0.0
            for seed in seeds:
                with Timer(dev) as timer:
                    student = train_student(d, info, replace(cfg, seed=seed), teacher=teacher, stored=stored,
                                            device=dev, progress=False)
                seconds += timer.seconds
                accs.append(test_accuracy(student, test, torch.device(dev), 512, ecfg.amp)["top1"])
            row.update(topk=rl.topk if rl else None, label_epochs=rl.stored_epochs if rl else 0,
                       layout_B_per_view=layout, disk_B_per_view=disk, disk_bytes=stored.nbytes() if stored else 0,
                       student_top1=sum(accs) / len(accs), student_top1_std=float(torch.tensor(accs).std()) if
                       len(accs) > 1 else 0.0, student_top1_seeds=" ".join(f"{a:.2f}" for a in accs),
                       train_seconds=seconds / len(accs), accs=accs)
            rows.append(row)
    for r in rows:
        r["ratio_layout"] = rows[0]["layout_B_per_view"] / r["layout_B_per_view"] if r["layout_B_per_view"] else inf
        r["ratio_disk"] = rows[0]["disk_B_per_view"] / r["disk_B_per_view"] if r["disk_B_per_view"] else inf
        # Paired over seeds: the same initializations, only the labels differ.
        r["top1_change_vs_full"] = sum(a - b for a, b in zip(r.pop("accs"), map(float, rows[0]["student_top1_seeds"]
                                                                                   .split()))) / len(seeds)
    big = imagenet_scale(t)
    print(f"labels: {len(d.images)} distilled images, {epochs} epochs, student {args.arch}, teacher {tarch}, "
          f"T={t}, test images {len(test)}, device {dev}")
    print(table(rows, ["format", "layout_B_per_view", "disk_B_per_view", "ratio_layout", "ratio_disk",
                       "kl_vs_full_T", "top1_agreement", "student_top1", "top1_change_vs_full", "student_top1_seeds"]))
    print("\n1,000 classes (ImageNet-1K layout; synthetic logits, one batch of 1024 views):")
    print(table(big, ["format", "layout_B", "measured_B", "ratio_layout", "ratio_measured", "kl_T"]))
    paths = save("labels", args, rows + [{"scale": "imagenet1k-synthetic", **r} for r in big],
                 {"epochs": epochs, "num_images": len(d.images), "temperature": t, "arch": args.arch,
                  "teacher_arch": tarch, "seeds": args.seeds, "label_epochs": pools,
                  "distilled": args.distilled or "sre2l ipc10 recovered in the benchmark"})
    print("-> " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
