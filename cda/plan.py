"""A plan before the run: the disk, device memory and work a RunConfig will need, and a refusal to
start when the disk cannot hold the output.

Everything is computed from the config and the dataset's shape (class count, channels, image size),
so a plan for ImageNet-1K can be printed without ImageNet. How each number is made:

- Disk. A distilled set is its uint8 tensor (N x C x H x W bytes, in distilled.pt) plus a PNG tree
  of the same images, counted at the raw size (recovered images barely compress: PNG_RATIO).
  Stored labels are images x epochs x the bytes per view of the format
  (cda.labels_compact.bytes_per_view: plan + C fp16 logits for the full FKD format). A teacher
  checkpoint is 4 bytes per parameter and buffer.
- Device memory. What autograd keeps for backward is measured exactly (saved-tensor hooks) in one
  forward of the model at batch 2 on the meta device (fp32; bf16 autocast is counted as half) and
  scaled linearly to the step's batch; add the weights, twice the largest activation (the gradient
  being computed), and for recovery the images' Adam state (x, grad, two moments) and views, for a
  student its gradients and AdamW moments, and the distilled set where it fits on the device
  (cda.relabel.RESIDENT_BYTES; a larger set streams from host memory batch by batch). The
  allocator's peak also holds fragmentation and library workspaces; `measure_rate` on a GPU
  reports the real peak of a recovery step.
- Time. Work is counted in recovery image-iterations (images x iterations: the cost of an
  iteration grows with the images in its step) and image-epochs (student training, relabeling);
  `Plan.project` turns measured rates into hours. A CUDD image-iteration costs more than a
  recovery one (a student forward and the initial image's view as well).
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import methods
from .config import RunConfig
from .labels_compact import bytes_per_view
from .methods import recover_for

# PNG bytes / raw bytes of a recovered image. Measured: 0.86-0.92 on the cpu preset's recovered 28-px
# sets, 1.03 on noise-like 32-px RGB ones (PNG's overhead), 0.47 on CUDD's from real images.
PNG_RATIO = 1.0
GB = 1e9


class InsufficientDiskError(OSError):
    """The free disk cannot hold what the run will write."""


@dataclass(frozen=True)
class Shape:
    """What the plan needs to know about the dataset."""

    num_classes: int
    channels: int
    image_size: int

    @property
    def image_bytes(self) -> int:
        return self.channels * self.image_size * self.image_size


def dataset_shape(cfg: RunConfig, classes: int | None = None, channels: int | None = None,
                  size: int | None = None) -> Shape:
    """The dataset's shape from its name (the known datasets need no data on disk) or its folder,
    with any of it given explicitly (an ImageFolder tree that is not there yet)."""
    from .data import info_for

    info = info_for(cfg.data)
    shape = Shape(classes or info.num_classes, channels or info.channels, size or cfg.data.image_size or info.image_size)
    if shape.num_classes <= 0:
        raise ValueError(f"the class count of {cfg.data.name!r} is unknown without its data: point data.root at "
                         f"its folder or give the shape (cda plan --classes N --size S)")
    return shape


# ---------------------------------------------------------------------------------------------
# Model memory, measured at a small batch

@dataclass(frozen=True)
class ModelMemory:
    """Bytes of one model: weights, what autograd keeps per image, and the largest activation per image."""

    arch: str
    params: int
    weight_bytes: int
    saved_per_image: float
    largest_per_image: float


_MEMORY_CACHE: dict[tuple, ModelMemory] = {}


def model_memory(arch: str, shape: Shape, batch: int = 2) -> ModelMemory:
    """What a forward (with grad) of `arch` keeps for backward, in fp32, measured with saved-tensor
    hooks on the meta device (no compute, no memory) at `batch` images."""
    from .models import create_model

    key = (arch, shape, batch)
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    with torch.device("meta"):
        model = create_model(arch, shape.num_classes, shape.channels, shape.image_size).train()
    weights = {id(t) for t in (*model.parameters(), *model.buffers())}
    kept: dict[int, torch.Tensor] = {}  # by tensor identity: an in-place op keeps the same tensor

    def pack(t: torch.Tensor):
        base = t._base if t._base is not None else t
        if id(base) not in weights:
            kept[id(base)] = base
        return t

    largest = [0]

    def track(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    x = torch.empty(batch, shape.channels, shape.image_size, shape.image_size, device="meta", requires_grad=True)
    handles = [m.register_forward_hook(track) for m in model.modules() if not list(m.children())]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    finally:
        for h in handles:
            h.remove()
    kept.pop(id(x), None)  # the input is counted with the images
    saved = sum(t.numel() * t.element_size() for t in kept.values())
    mem = ModelMemory(arch, sum(p.numel() for p in model.parameters()),
                      sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())),
                      saved / batch, largest[0] / batch)
    _MEMORY_CACHE[key] = mem
    return mem


# ---------------------------------------------------------------------------------------------
# The plan

@dataclass
class Plan:
    """What a run needs. Bytes and work per item; `render` prints it, `check_disk` refuses early."""

    cfg: RunConfig
    shape: Shape
    disk: dict[str, float] = field(default_factory=dict)  # item -> bytes the run writes
    disk_notes: dict[str, str] = field(default_factory=dict)
    alternatives: dict[str, float] = field(default_factory=dict)  # label formats not chosen -> bytes
    memory: dict[str, float] = field(default_factory=dict)  # stage -> peak device bytes
    memory_notes: dict[str, str] = field(default_factory=dict)
    work: dict[str, float] = field(default_factory=dict)  # recovery image-iterations, image-epochs

    @property
    def disk_total(self) -> float:
        return sum(self.disk.values())

    @property
    def peak_memory(self) -> float:
        return max(self.memory.values(), default=0.0)

    def project(self, recover_images_per_s: float, student_images_per_s: float | None = None,
                relabel_images_per_s: float | None = None) -> dict[str, float]:
        """Seconds per kind of work at measured rates: recovery image-iterations per second (images
        in a step x iterations done / seconds, e.g. over a run's first iterations), and optionally
        image-epochs per second of student training and of relabeling."""
        if recover_images_per_s <= 0:
            raise ValueError(f"recover_images_per_s={recover_images_per_s}: must be positive")
        out = {"recovery": self.work["recovery image-iterations"] / recover_images_per_s}
        if student_images_per_s:
            out["students"] = self.work["student image-epochs"] / student_images_per_s
        if relabel_images_per_s:
            out["relabel"] = self.work["relabel image-epochs"] / relabel_images_per_s
        out["total"] = sum(out.values())
        return out

    def check_disk(self, path: str | Path | None = None) -> None:
        """Raise InsufficientDiskError when the free disk at `path` (default: the cache folder) cannot
        hold the run's output."""
        path = Path(path or self.cfg.cache_dir).expanduser().resolve()
        probe = path
        while not probe.exists() and probe != probe.parent:  # the nearest existing folder
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        need = self.disk_total
        if free < need:
            biggest = max(self.disk, key=self.disk.get)
            raise InsufficientDiskError(
                f"the run needs {need / GB:.1f} GB of disk ({biggest}: {self.disk[biggest] / GB:.1f} GB), but "
                f"{probe} has {free / GB:.1f} GB free. Free space there, put the cache on a bigger disk "
                f"(--set cache_dir=/big/disk/cda), or shrink the run: fewer IPCs or methods"
                + (", or online soft labels (--set eval.labels=online: no label files)"
                   if self.cfg.eval.labels == "stored" else "") + ". Nothing was started.")

    def render(self, rates: dict | None = None) -> str:
        """A short table; with `rates` (keyword arguments of `project`), the projected times."""
        c, s = self.cfg, self.shape
        lines = [f"Plan: {c.data.name} ({s.num_classes} classes, {s.channels}x{s.image_size}x{s.image_size}), "
                 f"IPCs {list(c.ipcs)}, methods {list(c.methods)}, {len(c.eval_seeds)} eval seed(s), "
                 f"device {c.device}, cache {c.cache_dir}", "", "Disk (written under the cache folder):"]
        for item, b in self.disk.items():
            note = self.disk_notes.get(item, "")
            lines.append(f"  {item:42} {_gb(b):>10}  {note}")
        lines.append(f"  {'total':42} {_gb(self.disk_total):>10}")
        if self.alternatives:
            lines.append("  label formats not chosen, same views:")
            for item, b in self.alternatives.items():
                lines.append(f"    {item:40} {_gb(b):>10}")
        lines += ["", "Peak device memory:"]
        for item, b in self.memory.items():
            lines.append(f"  {item:42} {_gb(b):>10}  {self.memory_notes.get(item, '')}")
        lines += ["", "Work:"]
        for item, n in self.work.items():
            lines.append(f"  {item:42} {n:>14,.0f}")
        if rates:
            lines += ["", "Time at the measured rates:"]
            for item, sec in self.project(**rates).items():
                lines.append(f"  {item:42} {_duration(sec):>10}")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _gb(b: float) -> str:
    return f"{b / GB:.2f} GB" if b < 10 * GB else f"{b / GB:,.0f} GB"


def _sets(cfg: RunConfig) -> list[tuple[str, int]]:
    return [(m, ipc) for ipc in cfg.ipcs for m in cfg.methods]


def _synthesis(cfg: RunConfig, method: str, ipc: int) -> methods.Synthesis | None:
    """The synthesis work of one set, as its method's entry counts it (None: real images picked)."""
    return methods.synthesis(method, methods.options_for(cfg, method, ipc))


def _recovery_work(cfg: RunConfig, method: str, ipc: int, classes: int) -> int:
    """Image-iterations of one set (images x iterations); 0 for a method that picks real images."""
    s = _synthesis(cfg, method, ipc)
    return ipc * classes * s.recover.iterations if s else 0


def make_plan(cfg: RunConfig, shape: Shape | None = None, measure: bool = True) -> Plan:
    """The plan of `cfg` on a dataset of `shape` (default: `dataset_shape(cfg)`). `measure=False`
    skips the model-memory measurements (no device-memory rows)."""

    shape = shape or dataset_shape(cfg)
    plan = Plan(cfg, shape)
    C, img = shape.num_classes, shape.image_bytes
    sets = _sets(cfg)
    stored = [(m, ipc) for m, ipc in sets if methods.get(m).cached]  # random real images are drawn again
    images = sum(ipc * C for _, ipc in stored)
    if stored:
        plan.disk["distilled sets, uint8 tensors"] = images * img
        plan.disk["distilled sets, PNG trees (estimate)"] = images * img * PNG_RATIO
        plan.disk_notes["distilled sets, uint8 tensors"] = f"{len(stored)} sets, {images:,} images"
        # methods recovered from noise (SRe2L, CDA) keep their finished steps in the cache's slots/
        # (reused by larger IPCs): the largest IPC's set once more per method
        slotted = sum(max(ipc for m2, ipc in stored if m2 == m) * C for m in {m for m, _ in stored}
                      if methods.get(m).from_noise)
        if slotted:
            plan.disk["finished recovery steps (cache slots/)"] = slotted * img
    e = cfg.eval
    labelled = sum(ipc * C for _, ipc in sets)
    rl = cfg.relabel_for(e)
    views = labelled * rl.stored_epochs
    full = views * bytes_per_view(C, 0, batch_size=e.aug.batch_size)
    if e.labels == "stored":
        plan.disk["stored soft labels (FKD format)"] = full
        plan.disk_notes["stored soft labels (FKD format)"] = (f"{len(sets)} sets x {e.aug.epochs} epochs, "
                                                               f"{bytes_per_view(C, 0, batch_size=e.aug.batch_size):,.0f} B/view")
    for k in sorted({min(100, C), C}):
        plan.alternatives[f"compact, top-{k} int8"] = views * bytes_per_view(C, k, "int8")
    if e.labels != "stored":
        plan.alternatives["FKD format (full logits)"] = full
    from .models import create_model

    teacher_arches = [cfg.squeeze.arch] + ([cfg.eval.arch] if cfg.full_data else [])  # full data: the student's arch
    with torch.device("meta"):  # counts only
        plan.disk["teacher checkpoint(s)"] = sum(
            4 * sum(t.numel() for t in create_model(a, C, shape.channels, shape.image_size).state_dict().values())
            for a in teacher_arches)
    plan.work["recovery image-iterations"] = sum(_recovery_work(cfg, m, ipc, C) for m, ipc in sets)
    student = sum(ipc * C * e.aug.epochs for _, ipc in sets) * len(cfg.eval_seeds)
    # students trained during synthesis (CUDD's curriculum students)
    synthesis_students = sum(C * s.student_image_epochs_per_class
                             for s in (_synthesis(cfg, m, ipc) for m, ipc in sets) if s)
    plan.work["student image-epochs"] = student + synthesis_students
    plan.work["relabel image-epochs"] = views if e.labels == "stored" else 0
    if measure:
        _memory_rows(plan)
    return plan


def _memory_rows(plan: Plan) -> None:
    cfg, shape = plan.cfg, plan.shape
    cuda = cfg.device.startswith("cuda")
    r = cfg.recover
    most = shape.num_classes * max(cfg.ipcs)  # groups_per_step=0: every group of the set in one step
    per_step = min(most, min(r.classes_per_group, shape.num_classes) * r.groups_per_step) if r.groups_per_step else most
    t = model_memory(cfg.squeeze.arch, shape)
    bf16 = r.amp and cuda or cfg.speeds.recover.amp_cpu and not cuda  # the runtime's (cda.runtime.Speeds)
    act = 0.5 if bf16 else 1.0  # bf16 autocast halves the activations (not measured: CPU and CUDA policies differ)
    image_f32 = shape.image_bytes * 4
    # activations, twice the largest (the gradient being computed), and x, its grad, Adam's two
    # moments, the view and its grad
    plan.memory["recovery step"] = (t.weight_bytes + per_step * act * (t.saved_per_image + 2 * t.largest_per_image)
                                    + per_step * 6 * image_f32)
    plan.memory_notes["recovery step"] = (f"{cfg.squeeze.arch}, {per_step} images per step, {'bf16' if bf16 else 'fp32'}; "
                                          f"{act * t.saved_per_image / 1e6:.1f} MB kept per image")
    for method in cfg.methods:  # a student run in each recovery step (CUDD's adversarial term): its activations
        s = _synthesis(cfg, method, max(cfg.ipcs))  # too, and the real starts
        if s is None or s.student is None:
            continue
        st = model_memory(s.student.arch, shape)
        row = f"{methods.label(method)} recovery step"
        plan.memory[row] = (plan.memory["recovery step"] + st.weight_bytes
                            + per_step * (act * (st.saved_per_image + 2 * st.largest_per_image) + 2 * image_f32))
        plan.memory_notes[row] = f"the recovery step plus the student {s.student.arch} and the real starts"
    e = cfg.eval
    bf16 = e.amp and cuda or cfg.speeds.student.amp_cpu and not cuda
    act = 0.5 if bf16 else 1.0
    s = model_memory(e.arch, shape)
    batch = e.aug.batch_size
    from .relabel import RESIDENT_BYTES

    whole = max(cfg.ipcs) * shape.num_classes * shape.image_bytes  # the distilled set, uint8
    on_device = whole if whole <= RESIDENT_BYTES else 0  # larger sets stream from the host
    teacher_w = t.weight_bytes if e.labels == "online" else 0
    plan.memory["student training"] = (4 * s.weight_bytes + teacher_w + on_device
                                       + batch * (act * (s.saved_per_image + 2 * s.largest_per_image) + 2 * image_f32))
    plan.memory_notes["student training"] = (f"{e.arch}, batch {batch}, {'bf16' if bf16 else 'fp32'}, weights + "
                                             f"grads + AdamW; " + (f"the set on the device: {on_device / GB:.1f} GB"
                                             if on_device else f"the {whole / GB:.1f}-GB set streams from host memory"))


# ---------------------------------------------------------------------------------------------
# Measured rate and the call at the start of a run

def measure_rate(cfg: RunConfig, shape: Shape, iterations: int = 3, method: str | None = None) -> dict:
    """Time `iterations` recovery iterations of one step of the run's size (a teacher of the run's
    architecture with random weights: the cost does not depend on them), after one warm-up
    iteration, for `method` (default: the run's last method recovered from noise, else the
    registry's). Returns image-iterations per second and, on CUDA, the allocator's peak bytes."""
    from .data import info_for
    from .models import create_model
    from .recover import recover

    if method is None:
        noise = [m for m in methods.list_methods() if methods.get(m).from_noise]
        method = ([m for m in cfg.methods if m in noise] or noise)[-1]
    r = recover_for(cfg, method, 1)
    groups = r.groups_per_step or math.ceil(shape.num_classes / r.classes_per_group) * max(cfg.ipcs)
    images = min(shape.num_classes * max(cfg.ipcs), min(r.classes_per_group, shape.num_classes) * groups)
    per_group = min(r.classes_per_group, shape.num_classes)
    # one step of `images` images: that many classes in groups of the run's size, one IPC slot
    info = replace(info_for(cfg.data), num_classes=images, image_size=shape.image_size, channels=shape.channels)
    teacher = create_model(cfg.squeeze.arch, images, shape.channels, shape.image_size)
    one = replace(r, ipc=1, classes_per_group=per_group, groups_per_step=0)
    cuda = cfg.device.startswith("cuda")
    speed = cfg.speeds.recover
    recover(teacher, info, replace(one, iterations=1), cfg.device, progress=False, speed=speed)  # warm-up
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    recover(teacher, info, replace(one, iterations=iterations), cfg.device, progress=False, speed=speed)
    if cuda:
        torch.cuda.synchronize()
    out = {"recover_images_per_s": images * iterations / (time.perf_counter() - start), "images_per_step": images}
    if cuda:
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def plan_run(cfg: RunConfig, info=None, log=print, check: bool = True, speeds=None) -> Plan:
    """The call at the start of a run: build the plan for the loaded dataset (`info`: its
    DatasetInfo), print it, and refuse to start when the disk cannot hold the output. `speeds`: the
    runtime's per-stage settings (cda.runtime.Speeds; default: the config's as written)."""
    if speeds is not None:
        cfg = replace(cfg, speeds=speeds)
    shape = Shape(info.num_classes, info.channels, info.image_size) if info is not None else None
    plan = make_plan(cfg, shape)
    log(plan.render())
    if check:
        plan.check_disk(cfg.cache_dir)
    return plan
