"""Write the notebooks in notebooks/ from the specs below, with outputs stripped; with --executed,
also their executed copies in notebooks/executed/, which show the saved cpu results.

The notebooks are thin by design (narrative, a parameters cell, then one call into `cda` per step
of the experiment: config, teacher, distilled images, labels, students, results, tables, figures),
so they are generated from one place and stay consistent. Edit the text here and rerun:

    python scripts/build_notebooks.py              # the notebooks (stripped)
    python scripts/build_notebooks.py --executed   # and their executed copies (make executed-notebooks)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cda.paper_numbers import cda_gain, cudd_gain  # noqa: E402  (paper numbers come from results/paper)

SMOKE_SECONDS = "9 to 98"  # measured: tests/test_notebooks.py, all thirteen in one run sharing one cache

PRESETS = """**Presets.** `smoke` is for CI: tiny data and budgets, {smoke} s per notebook on 2 CPU cores
(measured; the first notebook also trains the smoke teacher, the others share it through the cache).
`cpu`, the default, runs the experiment on Fashion-MNIST on a 2-core CPU: {cpu}. `paper` is the papers'
ImageNet-1K setting and needs a GPU and the data (it checks both first). Set `overrides` to change any
config field, e.g. `{{"eval_seeds": [0, 1, 2]}}`. Every teacher, distilled set and student is cached by a
hash of its config, so artifacts shared with other notebooks are computed once. `saved = True` shows the
saved `results/<study>/<preset>.csv` and its figures instead of computing (as the executed copies in
`notebooks/executed/` do)."""


def _cpu_cost(name: str) -> str:
    """What the committed cpu results cost to compute, from their provenance (measured, not typed)."""
    path = ROOT / "results" / name / "cpu.json"
    if not path.is_file():
        return "no cpu results are committed yet"
    seconds = json.loads(path.read_text()).get("build_seconds")
    if not seconds:
        return "the committed results record no build time"
    return (f"computing this notebook's artifacts from nothing took {seconds / 60:.0f} min (the provenance's "
            f"`build_seconds`, the shared teacher included), and seconds once the cache holds them")

NOTEBOOKS = [
    dict(
        name="cda_table2_main_results",
        title="CDA main results (Table 2): SRe2L against CDA across IPC and student architectures",
        claim="""**Claim.** A crop curriculum during synthesis (RandomResizedCrop's lower scale bound falling from
1.0 to 0.08 on a cosine schedule) makes SRe2L's recovered images train better students: """ + cda_gain() + """
points top-1, for ResNet-18, -50 and -101 students (read from `results/paper/`).

**How this notebook tests it.** One teacher; for each IPC three distilled sets (random real images, SRe2L,
CDA), relabeled by the same teacher and evaluated by the same student recipe on the real test set, over every
evaluation seed of the preset, plus the full-data reference; IOR is computed for every set, and with
`hard_labels=True` each set also trains a student on its class labels alone, for DD-Ranking's HLR. At ImageNet scale a second student architecture (ResNet-50) is
trained as in the paper's table; on small data the other students are `cda_cross_architecture`'s. The gain
table puts our CDA − SRe2L differences beside the paper's.""",
        params=[("ipcs", None, "images per class (default: the preset's)"),
                ("students", None, "student architectures (default: the preset's; at ImageNet scale also a ResNet-50)")],
        reading="""**Reading the result.** The random-real row is the control the papers do not print: it uses the
same soft labels, so any gain of SRe2L or CDA over it is due to synthesis. Compare the sign of our gain
column with the paper's, not its size: Fashion-MNIST at 28×28 is far from ImageNet at 224×224. At the `cpu`
preset the students are not converged (validation accuracy still rises from 400 to 1600 epochs), so read
the differences at this budget; the README's "Longer students" section repeats IPC 10 at 1600 epochs.""",
    ),
    dict(
        name="cda_fig_synthesis_steps",
        title="Synthesized images at several recovery steps, SRe2L against CDA (the official README's comparison figure)",
        claim="""**Claim.** SRe2L updates the image uniformly from noise; CDA starts from whole-image views and
moves to small crops, so the global layout of the object appears within the first steps and the noise goes
earlier (the official repo's `vis_compare` figure: steps 100, 500, 1K and 2K).

**How this notebook tests it.** One recovery per method with snapshots at 5%, 20%, 50% and 100% of the
iterations; the grid shows one image per class at each snapshot, and the table gives the recovery loss and
how many snapshot images the teacher already classifies correctly.""",
        params=[("ipc", 1, "images per class"), ("steps", None, "snapshot iterations (default: 5/20/50/100% of the budget)")],
        reading="""**Reading the result.** The losses are measured on each method's own augmented views, so
CDA's early loss (whole-image views) is not comparable with SRe2L's (small crops); the teacher's top-1 on the
unaugmented snapshots is the comparable number.""",
    ),
    dict(
        name="cda_ablation_scheduler",
        title="CDA scheduler ablation: step, linear and cosine schedules by milestone",
        claim="""**Claim.** The shape of the crop curriculum matters; the authors report that a cosine schedule
beats a linear one (the paper's scheduler table; its numbers were not available).

**How this notebook tests it.** At IPC 10, recover with each schedule and milestone (the fraction of the
iterations after which the bound stays at 0.08), and with no curriculum (SRe2L); evaluate every set with
the same student recipe.""",
        params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"),
                ("schedules", ["step", "linear", "cosine"], "crop-scale schedules"),
                ("milestones", [0.5, 1.0], "fractions of the iterations")],
        reading="""**Reading the result.** The `cpu` preset runs three seeds per cell, each drawing the synthesis
noise, the student and its views; the schedules differ by a point or two, about the seeds' spread, so read
the verdict below (paired by seed, with its interval) before the table's means.""",
    ),
    dict(
        name="cda_ablation_direction",
        title="CDA curriculum direction: easy to hard, hard to easy, and constant crop ranges",
        claim="""**Claim.** Easy-to-hard (global views first, local crops later) is the right order; the reverse
curriculum (RCL) and a constant crop range (CNL) do worse (the paper's learning-paradigm ablation; its
numbers were not available).

**How this notebook tests it.** At IPC 10, the cosine curriculum forwards and reversed in time, and constant
lower bounds of 0.08 (which is SRe2L), 0.5 and 1.0 (whole-image views only).""",
        params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"),
                ("constant_lower_bounds", [0.08, 0.5, 1.0], "constant crop-scale lower bounds")],
        reading="""**Reading the result.** The crop-schedule figure shows exactly which views each variant saw.""",
    ),
    dict(
        name="cda_ablation_crop_lower_bound",
        title="CDA crop scale lower bound: where the curriculum ends",
        claim="""**Claim.** The curriculum ends at RandomResizedCrop's default lower bound of 0.08; the
reviewers asked whether this bound (and an upper bound of 1) is the right choice.

**How this notebook tests it.** At IPC 10, the cosine curriculum ending at several lower bounds, against
SRe2L's constant (0.08, 1).""",
        params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"),
                ("lower_bounds", [0.08, 0.2, 0.4], "final crop-scale lower bounds"),
                ("with_sre2l", False, "also run SRe2L with each constant lower bound")],
        reading="""**Reading the result.** On 28×28 images a crop of 8% of the area is about 8×8 pixels; a higher
final bound keeps more of the object in view.""",
    ),
    dict(
        name="cda_recovery_budget",
        title="CDA recovery budget and convergence: loss and accuracy against iterations",
        claim="""**Claim.** CDA converges faster and needs less synthesis time than SRe2L for the same accuracy
(the abstract; the paper's budget table was not available).

**How this notebook tests it.** SRe2L and CDA at several recovery budgets (0.1 to 1 times the preset's);
the student's top-1 for each budget, the recovery wall time, and the loss curves of every run.""",
        params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"),
                ("iterations", None, "recovery budgets (default: 0.1, 0.2, 0.5 and 1 times the preset's)")],
        reading="""**Reading the result.** "Faster convergence" holds if CDA reaches SRe2L's accuracy at a smaller
budget. The cosine learning rate follows each budget, so each curve is a separate run, not a prefix of the
longest one.""",
    ),
    dict(
        name="cda_eval_budget",
        title="CDA evaluation budget: the student's epochs and batch size",
        claim="""**Claim.** Post-training on distilled data needs many epochs (300 in the papers) and benefits
from small batches ("smaller batch sizes are crucial").

**How this notebook tests it.** The SRe2L and CDA sets at IPC 10, students trained for 0.25 to 2 times the
preset's epochs, and with half to twice its batch size.""",
        params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"), ("epochs", None, "student epochs"),
                ("batch_sizes", None, "student batch sizes")],
        reading="""**Reading the result.** The student's cosine schedule follows each epoch budget; batch size is
varied at a fixed epoch count, so smaller batches also mean more steps. Where accuracy still rises at the
longest budget, the preset's students are short of converged, and differences between methods can shrink
or flip with more epochs.""",
    ),
    dict(
        name="cda_cross_architecture",
        title="CDA cross-architecture: recover with one model, evaluate on others",
        claim="""**Claim.** Images recovered with one network train other architectures too (the paper's
ResNet-family and DeiT-Tiny tables; their numbers were not available).

**How this notebook tests it.** The sets recovered with the preset's teacher, relabeled by it, train
students of other families: on small images the preset's ConvNet, ResNet-18 and a small ViT (patch 4, depth 4,
width 128; MobileNetV2 and any torchvision or timm model can be added through `students`); on ImageNet,
ResNet-18/50/101.""",
        params=[("ipc", None, "images per class (None: 10, or the preset's nearest smaller IPC)"),
                ("students", None, "student architectures (default: see above)")],
        reading="""**Reading the result.** Every student learns from the same teacher's soft labels, so the
heatmap separates what the images carry from the labels only through the random-real row. On small images
every student uses the recipe tuned for the ConvNet, which suits the small ViT poorly: read its column for
the ranking of the sets, not for what a ViT can reach.""",
    ),
    dict(
        name="cudd_main_results",
        title="CUDD main results: CUDD against CDA, SRe2L and random real images",
        claim="""**Claim.** Curriculum dataset distillation (stages of images initialized from real images that
the current student finds hard, optimized with an adversarial term against that student and an L2 pull to
the initial image) beats CDA and SRe2L; the only CUDD numbers found are ImageNet-1K with a ResNet-50
student, as quoted by CIM: """ + cudd_gain() + """ (CUDD − CDA, read from `results/paper/`).

**How this notebook tests it.** The same teacher and evaluation for all four methods at IPC 10 and 50; CUDD
runs two stages (40% and 100% of the IPC, as in the official README's 20 → 50 example).""",
        params=[("ipcs", None, "images per class (default: the preset's IPCs of 10 and more)")],
        reading="""**Reading the result.** CUDD starts from real images, so the random-real row is its natural
baseline: the gain over it is what CUDD's optimization adds.""",
    ),
    dict(
        name="cudd_ablation",
        title="CUDD ablation: real-image initialization, L2 term, adversarial term and curriculum stages",
        claim="""**Claim.** Each component of CUDD helps: initialization from real images, the L2 term, the
adversarial term against the curriculum student, and the stages themselves (CUDD's ablation tables; their
numbers were not available).

**How this notebook tests it.** At IPC 10, CUDD with one component switched off at a time (from noise, the L2 term goes too), next to CDA and
SRe2L from the same teacher and evaluation.""",
        params=[("ipc", None, "images per class (None: the preset's smallest IPC of 10 or more)")],
        reading="""**Reading the result.** "one stage" keeps the real initialization and the L2 term but has no
curriculum student, so it also has no adversarial term.""",
    ),
    dict(
        name="cudd_cross_architecture",
        title="CUDD cross-architecture: CUDD, CDA and SRe2L sets on other students",
        claim="""**Claim.** The adversarial term keeps the images from overfitting to the network used in
distillation, which improves cross-architecture generalization (CUDD's abstract).

**How this notebook tests it.** The IPC-10 sets of the three methods train the preset's ConvNet, ResNet-18
and a small ViT (more through `students`).""",
        params=[("ipc", None, "images per class (None: the preset's smallest IPC of 10 or more)"), ("students", None, "student architectures")],
        reading="""**Reading the result.** Compare each column's ranking of the methods with the ConvNet column's.""",
    ),
    dict(
        name="cudd_noise_robustness",
        title="CUDD robustness to noise",
        claim="""**Claim.** Adversarial optimization makes the distilled data, and so the students trained on
it, more robust to noise (CUDD's abstract; the paper's robustness tables and its noise model were not
available).

**How this notebook tests it.** Our reading: students trained on each IPC-10 set are tested on the real
test images with Gaussian pixel noise of growing standard deviation (pixels in [0, 1], the same noise for
every student).""",
        params=[("ipc", None, "images per class (None: the preset's smallest IPC of 10 or more)"),
                ("sigmas", [0.0, 0.1, 0.2, 0.3], "noise standard deviations")],
        reading="""**Reading the result.** Robustness is the slope: how much each line falls as the noise
grows, not where it starts.""",
    ),
    dict(
        name="cudd_fig_visual_comparison",
        title="CUDD visual comparison: CUDD images, their real initializations, and SRe2L's (CUDD Figure 1)",
        claim="""**Claim.** SRe2L's images show repetitive patterns, while CUDD's are more diverse (CUDD
Figure 1, ImageNet-1K).

**How this notebook tests it.** The first CUDD images of each class next to the real images they started
from and SRe2L's images, with the mean pixel change from the real start and the teacher's top-1 on each
set.""",
        params=[("ipc", None, "images per class (None: the preset's smallest IPC of 10 or more)"), ("per_class", 3, "images shown per class")],
        reading="""**Reading the result.** A small pixel change means CUDD mostly kept the real image; the L2
weight controls this.""",
    ),
]


OWN_DATA = dict(
    name="distill_your_data",
    title="Distill your own images: SRe2L, CDA or CUDD on any ImageFolder tree",
    intro="""Point `data_root` at a folder of images sorted into classes, `train/<class>/*` and
`val/<class>/*` (PNG, JPEG, anything PIL reads), choose a method and an IPC, and this notebook trains a
teacher on `train/`, distills `ipc` images per class, trains students on the distilled set and on as many
random real training images, tests both on `val/`, and exports the set for other tools. With
`data_root = None` it first writes a small tree of real Fashion-MNIST images (100 training and 50
validation images per class) to the temp folder, so it runs anywhere.

**Methods.** `sre2l` (recovery from noise by BatchNorm-statistics matching), `cda` (SRe2L with CDA's
crop curriculum), `cudd` (stages of images started from real ones the current student finds hard).

**Presets.** `smoke` uses 30 training and 20 validation images per class and tiny budgets (for CI);
`cpu`, the default, the whole tree with the budgets of the Fashion-MNIST notebooks (11 min for the demo
tree with CDA at IPC 10, measured on 2 CPU cores shared with other jobs); `paper` the papers' ImageNet
settings (a GPU). The images are resized to
`image_size` pixels (None: the tree's own size, the shorter side of each class's first image, the
smallest where they differ); the models take any size, but the time grows with it. A tree that cannot
work (other class folders in val/ than in train/, one class, an empty class, an unreadable image) stops
`own_data.open` with one line naming the folder or file (README, "Your own data").""",
)


def _source(text: str) -> list[str]:
    lines = text.strip("\n").split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def _cell(kind: str, text: str, tags: list[str] | None = None, cid: str = "") -> dict:
    cell = {"cell_type": kind, "id": cid, "metadata": {"tags": tags} if tags else {}, "source": _source(text)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _notebook(cells: list[dict]) -> dict:
    return {"cells": cells, "metadata": {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


STEPS = [  # (id, heading and text, the call); the same steps in every notebook
    ("teacher", """## The teacher

Trained on the real training set with hard labels, once per preset (the notebooks share it). Its test
accuracy bounds what the students can learn from its soft labels.""", "s.teacher()"),
    ("distill", """## The distilled images

Every set the study needs, synthesized or loaded from the cache, each shown as soon as it is ready (a
column per class, a row per image; random real images are drawn, not synthesized).""", "s.distill()"),
    ("labels", """## The labels

The students learn from the teacher's soft labels. With `labels="online"` (the `smoke` and `cpu`
presets) the teacher labels every augmented batch during training; with `"stored"` (the `paper` preset)
they are computed here once per view and stored. The table shows what the teacher makes of one
synthesized image per class.""", "s.labels()"),
    ("students", """## The students

One student per distilled set, architecture and seed, tested on the real test set: a progress bar over
the students, one per student, and a line with each top-1.""", "s.students()"),
    ("finish", """## Results

`results/<study>/<preset>.csv` (long format: one row per run and metric), its provenance `.json` beside
it (config, code commit, package versions, hardware, times), and the figures under `figures/<preset>/`,
drawn from the CSV alone.""", "result = s.finish()"),
]


VERDICT_TEXT = """## Verdicts

Each claim of the papers that this notebook's numbers test (`cda.verdicts.CLAIMS`): per cell, the
difference between the two sides paired by seed, with its 95% t-interval, and **holds** (the interval
excludes zero on the claimed side), **does not hold** (it excludes zero on the other side) or
**inconclusive**. One seed gives no interval. `cda verdicts` writes every claim's rows to
`results/verdicts/<preset>.csv`."""


def _step_cells(tables_text: str, verdicts: bool = True) -> list[dict]:
    cells = []
    for cid, text, call in STEPS:
        cells += [_cell("markdown", text, cid=f"{cid}-md"), _cell("code", call, cid=cid)]
    return cells + [
        _cell("markdown", tables_text, cid="tables-md"),
        _cell("code", "s.tables()", cid="tables"),
        *([_cell("markdown", VERDICT_TEXT, cid="verdicts-md"), _cell("code", "s.verdicts()", cid="verdicts")]
          if verdicts else []),
        _cell("markdown", "## Figures\n\nPNG here; PNG and PDF under `figures/<preset>/`.", cid="figures-md"),
        _cell("code", "s.figures()", cid="figures"),
    ]


PARAMS = [
    "import os",
    "",
    'preset = os.environ.get("CDA_PRESET", "cpu")  # smoke (CI), cpu (Fashion-MNIST on a CPU) or paper (GPU)',
    'overrides = {}  # dotted config fields, e.g. {"eval_seeds": [0, 1, 2]}',
    "output_root = None  # folder for results/, figures/ and the cache (None: runs/ with the project's cache, as `cda run`)",
    "publish = False  # True: write the committed results/ and figures/ (as `cda run --publish`)",
    "saved = False  # True: show the saved results/<study>/<preset>.csv and its figures, computing nothing",
]


def notebook(spec: dict) -> dict:
    name = spec["name"]
    params = PARAMS + [f"{p} = {v!r}  # {doc}" for p, v, doc in spec["params"]]
    call_args = "".join(f", {p}={p}" for p, _, _ in spec["params"])
    if (ROOT / "results" / "paper" / f"{name}.csv").is_file():
        tables = (f"## Tables, beside the paper's numbers\n\nOurs from the CSV; the paper's reported numbers from "
                  f"`results/paper/{name}.csv` (never ours).")
    else:
        tables = ("## Tables\n\nOurs, from the CSV. The paper's numbers for this table were not available "
                  "(`results/paper/README.md`), so there is nothing to put beside them.")
    cells = [
        _cell("markdown", f"# {spec['title']}\n\n{spec['claim']}\n\n"
                          + PRESETS.format(smoke=SMOKE_SECONDS, cpu=_cpu_cost(name)), cid="intro"),
        _cell("code", "\n".join(params), ["parameters"], cid="parameters"),
        _cell("markdown", """## The study

One object runs the experiment; each cell below is one step of it, and each step asks the cache first,
so a rerun, or a step another notebook already ran, is instant. Its config is what runs and where the
results go.""", cid="open-md"),
        _cell("code", f'from cda import studies\nfrom cda.notebooks import notebook_root\n\n'
                      f's = studies.open("{name}", preset, overrides, root=notebook_root(output_root, publish, saved), '
                      f"saved=saved{call_args})", cid="open"),
        _cell("code", "s.config", ["nbval-check-output"], cid="config"),
        *_step_cells(tables),
        _cell("markdown", spec["reading"], cid="reading"),
    ]
    return _notebook(cells)


def own_data_notebook() -> dict:
    params = ["import os", "",
              "data_root = None  # train/<class>/* and val/<class>/* images (None: a small Fashion-MNIST tree)",
              'method = "cda"  # sre2l, cda or cudd',
              "ipc = 10  # distilled images per class",
              'preset = os.environ.get("CDA_PRESET", "cpu")  # smoke (CI), cpu or paper (GPU)',
              'device = "cpu"  # cpu, cuda or cuda:N',
              "image_size = None  # pixels per side (None: the images' own size)",
              "output_root = None  # folder for results/, figures/ and the cache (None: runs/ with the project's cache, as `cda run`)",
              "export_dir = None  # where the set goes (None: beside the results)"]
    tables = "## Tables\n\nTop-1 on your `val/` images: the distilled set against random real images."
    cells = [
        _cell("markdown", f"# {OWN_DATA['title']}\n\n{OWN_DATA['intro']}", cid="intro"),
        _cell("code", "\n".join(params), ["parameters"], cid="parameters"),
        _cell("markdown", "## The study\n\nThe same steps as the paper notebooks, on your data.", cid="open-md"),
        _cell("code", "from cda import own_data\nfrom cda.notebooks import notebook_root\n\n"
                      "s = own_data.open(data_root, method, ipc, preset=preset, "
                      "device=device, image_size=image_size, root=notebook_root(output_root))", cid="open"),
        _cell("code", "s.config", cid="config"),
        *_step_cells(tables, verdicts=False),  # no paper claim to judge
        _cell("markdown", """## Export

The set as an ImageFolder tree of PNGs (`images/<class index>/<k>.png`, which
`torchvision.datasets.ImageFolder` reads), one tensor file (`distilled.pt`: uint8 images `[N, C, H, W]`
and labels), `classes.json` (class index to name) and `meta.json` (how it was made). Other distillation
tools evaluate such a set with their own soft-label recipe; the teacher is in the cache
(`.cache/cda/teacher/`).""", cid="export-md"),
        _cell("code", "folder = s.export(export_dir)", cid="export"),
    ]
    return _notebook(cells)


RELEASED = dict(
    name="evaluate_released_sets",
    title="Evaluate a released distilled set beside the paper's number for it",
    intro="""The authors released their distilled sets (CDA: ImageNet-1K at IPC 200, 4K iterations; Tiny-ImageNet;
ImageNet-21K at IPC 20; see `results/paper/official_settings.csv` and papers.md) as image trees in the
official layout, `new000/class000_id000.jpg`, and SRe2L's relabeling writes FKD soft-label folders
(`epoch_0/batch_0.tar`, ...). This notebook trains a student on such a tree, with the official label folder
(its stored views are replayed) or a teacher labelling online, tests it on the real test set, and puts its
top-1 beside the paper's number for that set, read from `results/paper/` with its table.

It is `cda evaluate --images DIR [--labels FKD_DIR] [--teacher CKPT --arch A]` from Python
(`cda.released`): the teacher may be a cda checkpoint, a torchvision state dict or timm checkpoint (name its
architecture in `arch`), or the official Tiny-ImageNet checkpoint. A tree whose classes are not the
teacher's, a label folder made at another batch size or for fewer epochs, or a checkpoint of another
architecture stops with one line naming the file and the fix.

**Default: a miniature release, so it runs anywhere in seconds.** With `images = None` the notebook writes
two real Fashion-MNIST training images per class as an official tree, with the `smoke` preset's teacher
(trained here once) as its checkpoint. That number is not comparable with the paper's: the point is the
mechanics. For a real release, set `images`, `labels` or `teacher` (and `arch`), the `preset` of its dataset
(`paper` for ImageNet-1K, on a GPU with the data; its students train at the method's own recipe with
`method`, e.g. `"cda"`: batch 128), and the paper cell to compare with.""",
)


def released_notebook() -> dict:
    params = ["images = None  # an official image tree (None: write a miniature release first)",
              "labels = None  # its FKD soft-label folder (stored views); None: the teacher labels online",
              "teacher = None  # a teacher checkpoint: cda, torchvision or timm (give arch), or official Tiny",
              "arch = None  # the teacher's architecture where its checkpoint does not say it, e.g. resnet18",
              'preset = "smoke"  # the preset of the set\'s dataset: smoke (the miniature), paper (ImageNet-1K, GPU)',
              "method = None  # train the students of this method's recipe, e.g. cda (None: the preset's)",
              "overrides = {}  # dotted config fields, e.g. {\"eval.aug.epochs\": 300}",
              "workdir = None  # where the miniature release and its cache go (None: a temporary folder)",
              "# the paper's cell to put beside it: CDA's released ImageNet-1K set (IPC 200) with a ResNet-18",
              'paper_table, paper_dataset, paper_ipc, paper_method, paper_student = ("cda_table2_main_results", '
              '"imagenet1k", 200, "cda", "resnet18")']
    cells = [
        _cell("markdown", f"# {RELEASED['title']}\n\n{RELEASED['intro']}", cid="intro"),
        _cell("code", "\n".join(params), ["parameters"], cid="parameters"),
        _cell("markdown", "## The released set\n\nThe given tree, or a miniature one written in the official layout "
                          "with its teacher.", cid="release-md"),
        _cell("code", """import tempfile
from pathlib import Path

from cda import released

if images is None:
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cda-released-"))
    images, teacher = released.miniature_release(workdir, preset, cache_dir=str(workdir / "cache"))
    labels = None
print("images: ", images)
print("labels: ", labels or "online, from the teacher")
print("teacher:", teacher)""", cid="release"),
        _cell("markdown", "## The student\n\nTrained on the released set with the preset's (or the method's) "
                          "recipe, tested on the real test set.", cid="evaluate-md"),
        _cell("code", """result = released.evaluate_released(images, labels, teacher, arch, preset, method, overrides)
result""", cid="evaluate"),
        _cell("markdown", "## Beside the paper\n\nThe paper's reported top-1 for the cell named in the parameters, "
                          "from `results/paper/` (never ours), with its table and source.", cid="paper-md"),
        _cell("code", """import pandas as pd

paper = released.paper_number(paper_table, paper_dataset, paper_ipc, paper_method, paper_student)
pd.DataFrame([{"": "this evaluation", "dataset": result["dataset"], "student": result["student"], "labels": result["labels"],
               "images": result["images"], "top-1 (%)": round(result["top1"], 2), "table": ""},
              {"": f"paper ({paper['paper']})", "dataset": paper["dataset"], "student": paper["student"],
               "labels": "", "images": "", "top-1 (%)": paper["top1"], "table": paper["table"]}]).set_index("")""",
              cid="beside"),
        _cell("markdown", """## Reading the result

With the miniature default the two rows are not comparable (Fashion-MNIST against ImageNet-1K); they show
where each number comes from. With a released ImageNet-1K set, its official labels and the `paper` preset,
a gap to the paper is first a recipe question: CDA's students train at batch 128 (its appendix, VILA-Lab/SRe2L
issue #27), SRe2L's at 1,024, and the labels must be made at the batch they are replayed at
(`results/paper/official_settings.csv`).""", cid="reading"),
    ]
    return _notebook(cells)


# ---------------------------------------------------------------------------------------------
# Executed copies: every paper notebook run with saved=True at the cpu preset (seconds each), its
# outputs kept and its volatile metadata (times, papermill's records, kernel versions) dropped.

BANNER = """> **Executed copy, showing saved results.** This is `../{name}.ipynb` run with `preset="cpu"` and
> `saved=True`: its outputs come from the committed `results/{name}/cpu.csv`, its provenance and
> `figures/cpu/`, not from a fresh run (each step says where it read from). `make executed-notebooks`
> rewrites it; run the source notebook to compute."""


def clean_executed(nb: dict, name: str) -> dict:
    """Drop what changes from run to run and add the banner that says what the copy shows."""
    nb["metadata"] = {"kernelspec": nb["metadata"]["kernelspec"], "language_info": {"name": "python"}}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {})
        for key in ("papermill", "execution", "collapsed", "scrolled"):
            meta.pop(key, None)
        if "injected-parameters" in meta.get("tags", []):
            cell["id"] = "injected-parameters"
        for out in cell.get("outputs", []):
            out.get("metadata", {}).pop("papermill", None)
    nb["cells"].insert(0, _cell("markdown", BANNER.format(name=name), cid="executed-copy"))
    return nb


def write_executed(out: Path, names: list[str] | None = None) -> None:
    import papermill as pm

    out.mkdir(parents=True, exist_ok=True)
    for spec in NOTEBOOKS:
        name = spec["name"]
        if names and name not in names:
            continue
        path = out / f"{name}.ipynb"
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(path),
                            parameters={"preset": "cpu", "saved": True}, kernel_name="python3",
                            progress_bar=False, cwd=str(ROOT / "notebooks"))
        nb = clean_executed(json.loads(path.read_text()), name)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
        print(path)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Write the stripped notebooks (and, with --executed, their executed copies).")
    p.add_argument("--out", default=str(ROOT / "notebooks"), help="folder to write them to (default: notebooks/)")
    p.add_argument("--executed", action="store_true",
                   help="also run each paper notebook with saved=True at the cpu preset into <out>/executed/")
    p.add_argument("--only", nargs="+", metavar="NAME", help="with --executed: just these notebooks")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = [(own_data_notebook(), OWN_DATA["name"]), (released_notebook(), RELEASED["name"])]
    for nb, name in [(notebook(spec), spec["name"]) for spec in NOTEBOOKS] + extra:
        path = out / f"{name}.ipynb"
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        print(path)
    if args.executed:
        write_executed(out / "executed", args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
