"""Bytes written per recovery checkpoint at ImageNet shape (1,000 classes, 224 px, ResNet-18,
groups of 100 classes, one group per step as the `paper` preset), against IPC.

The checkpoint of the step in flight is measured by running that step (a ResNet-18 with random
weights; the file's size depends on the tensors' shapes, not on the weights) for a few iterations
with a checkpoint after each, once per IPC. Finished steps are written once, to their own files;
their size is measured too. The same numbers before this design follow from what the earlier
progress file held: the whole uint8 set, rewritten at every checkpoint.

    python benchmarks/checkpoint.py [--ipcs 1 2] [--classes 1000]
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from _common import parser, save  # noqa: E402  (sets sys.path)

import cda.recover as rec
from cda.config import RecoverConfig
from cda.data import dataset_info
from cda.models import create_model
from cda.recover import PROGRESS_FILE, _init_noise, synthesize


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--ipcs", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--classes", type=int, default=1000)
    args = p.parse_args()
    info = replace(dataset_info("imagenet1k"), num_classes=args.classes)
    cfg = RecoverConfig(ipc=1, iterations=3, classes_per_group=100, groups_per_step=1, amp=False)
    # One step is run: every step holds one group of 100 classes, at any IPC and any class count
    # (tests/test_resume.py checks that the live file does not grow with the IPC).
    group = replace(info, num_classes=min(100, info.num_classes))
    teacher = create_model("resnet18", group.num_classes, 3, 224)
    sizes = []
    original = rec.save_progress

    def spy(path, key, state):
        original(path, key, state)
        sizes.append((Path(path).name, Path(path).stat().st_size))

    rec.save_progress = spy
    try:
        with tempfile.TemporaryDirectory() as tmp:
            synthesize(teacher, group, cfg, (0, 1),
                       lambda g: torch.cat([_init_noise(0, i, int(b[0]), len(b), group) for i, b in g]),
                       device=args.device, progress=False, progress_dir=tmp, checkpoint_every=1)
    finally:
        rec.save_progress = original
    live = max(s for n, s in sizes if n == PROGRESS_FILE)
    done = max(s for n, s in sizes if n.startswith("step-"))
    rows = []
    for ipc in args.ipcs:
        steps = ipc * math.ceil(info.num_classes / 100)
        whole_set = ipc * info.num_classes * 3 * 224 * 224  # the uint8 set the earlier progress file held
        rows.append({"ipc": ipc, "classes": info.num_classes, "checkpoint_bytes": live,
                     "earlier_checkpoint_bytes": whole_set + live, "finished_step_bytes": done,
                     "finished_steps": steps, "finished_steps_total_bytes": done * steps})
        print(rows[-1])
    save("checkpoint", args, rows, {"note": "checkpoint = the step in flight (images being optimized, Adam moments, "
                                            "random state, loss sums); earlier = the whole uint8 set plus that, "
                                            "rewritten at every checkpoint"})


if __name__ == "__main__":
    main()
