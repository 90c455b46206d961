"""Write the notebooks in notebooks/ from the specs below, with outputs stripped; with --executed,
also their executed copies in notebooks/executed/, which show the saved cpu results.

The notebooks are thin by design (narrative, a parameters cell, then one call into `cda` per step
of the experiment: config, teacher, distilled images, labels, students, results, tables, figures),
so they are generated from one place and stay consistent. Each study's own text (title, claim,
parameters, reading) is in its declaration (`notebook=` of `cda.studies.study`); the steps' text
shared by every notebook is here. Edit either and rerun:

    python scripts/build_notebooks.py              # the notebooks (stripped)
    python scripts/build_notebooks.py --executed   # and their executed copies (make executed-notebooks)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cda.studies import STUDIES, built  # noqa: E402  (each study declares its notebook's text: cda.studies.Notebook)

SMOKE_SECONDS = "13 to 24"  # measured: tests/test_notebooks.py (--durations), all twenty in one run sharing one cache

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

def spec(st) -> dict:
    """A study's notebook spec, from its declaration (cda.studies.Notebook)."""
    nb = st.notebook
    return dict(name=st.name, title=nb.title, claim=nb.text(), params=list(nb.params), reading=nb.reading,
                grid=list(st.grid))


NOTEBOOKS = [spec(st) for st in STUDIES.values() if st.notebook]


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

Each claim of the papers that this notebook's numbers test (its study's `claims`): per cell, the
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


def _variants(grid: list[str] | None) -> str:
    """The axes a study varies, as its declaration names them (the columns of its results)."""
    if not grid:
        return ""
    return ("**Variants compared.** " + " × ".join(f"`{axis}`" for axis in grid)
            + " (the columns of the results that tell its variants apart).\n\n")


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
        _cell("markdown", f"# {spec['title']}\n\n{spec['claim']}\n\n" + _variants(spec.get("grid"))
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
              "output_root = None  # folder for results/, figures/ and the cache "
              "(None: runs/ with the project's cache, as `cda run`)",
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
    done = set(built("cpu", ROOT))
    for spec in NOTEBOOKS:
        name = spec["name"]
        if names and name not in names:
            continue
        if name not in done:
            print(f"{name}: no committed cpu results yet, so no executed copy (`cda study {name} --preset cpu --publish`)")
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
