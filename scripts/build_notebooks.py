"""Write the notebooks in notebooks/ from the specs below, with outputs stripped.

The notebooks are thin by design (narrative, a parameters cell, a call into `cda.studies`, tables,
figures), so they are generated from one place and stay consistent. Edit the text here and rerun:

    python scripts/build_notebooks.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRESETS = """**Presets.** `smoke` takes seconds (CI); `cpu`, the default, runs the experiment on Fashion-MNIST on a
2-core CPU; `paper` is the papers' ImageNet-1K setting and needs a GPU and the data (it checks both first).
Set `overrides` to change any config field, e.g. `{"eval_seeds": [0, 1, 2]}`. Every teacher, distilled set
and student is cached by a hash of its config, so artifacts shared with other notebooks are computed once."""

NOTEBOOKS = [
    dict(
        name="cda_table2_main_results",
        title="CDA main results (Table 2): SRe2L against CDA across IPC and student architectures",
        claim="""**Claim.** A crop curriculum during synthesis (RandomResizedCrop's lower scale bound falling from
1.0 to 0.08 on a cosine schedule) makes SRe2L's recovered images train better students: +3 to +8 points
top-1 on Tiny-ImageNet, ImageNet-1K and ImageNet-21K, for ResNet-18, -50 and -101 students (CDA's main
table, Table 2 in the ICLR-2024 version).

**How this notebook tests it.** One teacher; for each IPC three distilled sets (random real images, SRe2L,
CDA), relabeled by the same teacher and evaluated by the same student recipe on the real test set, plus the
full-data reference. A second student architecture is trained on the sets at the smaller IPCs. The gain
table puts our CDA − SRe2L differences beside the paper's.""",
        params=[("ipcs", None, "images per class (default: the preset's)"),
                ("students", None, "student architectures (default: the preset's and a ResNet-18)")],
        reading="""**Reading the result.** The random-real row is the control the papers do not print: it uses the
same soft labels, so any gain of SRe2L or CDA over it is due to synthesis. Compare the sign of our gain
column with the paper's, not its size: Fashion-MNIST at 28×28 is far from ImageNet at 224×224.""",
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
        reading="""**Reading the result.** With one evaluation seed per cell, differences under about one point
are within the student's seed-to-seed noise; add seeds with `overrides={"eval_seeds": [0, 1, 2]}`.""",
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
varied at a fixed epoch count, so smaller batches also mean more steps.""",
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
heatmap separates what the images carry from the labels only through the random-real row.""",
    ),
    dict(
        name="cudd_main_results",
        title="CUDD main results: CUDD against CDA, SRe2L and random real images",
        claim="""**Claim.** Curriculum dataset distillation (stages of images initialized from real images that
the current student finds hard, optimized with an adversarial term against that student and an L2 pull to
the initial image) beats CDA and SRe2L; the only CUDD numbers found are ImageNet-1K with a ResNet-50
student, as quoted by CIM (Table 3): +2.3 and +1.6 over CDA at IPC 50 and 100.

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


def _source(text: str) -> list[str]:
    lines = text.strip("\n").split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def _cell(kind: str, text: str, tags: list[str] | None = None, cid: str = "") -> dict:
    cell = {"cell_type": kind, "id": cid, "metadata": {"tags": tags} if tags else {}, "source": _source(text)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(spec: dict) -> dict:
    name = spec["name"]
    params = ["import os", "",
              'preset = os.environ.get("CDA_PRESET", "cpu")  # smoke (seconds), cpu (Fashion-MNIST on a CPU) or paper (GPU)',
              "overrides = {}  # dotted config fields, e.g. {\"eval_seeds\": [0, 1, 2]}",
              "output_root = None  # folder for results/ and figures/ (None: the project folder)"]
    params += [f"{p} = {v!r}  # {doc}" for p, v, doc in spec["params"]]
    call_args = ", ".join(f"{p}={p}" for p, _, _ in spec["params"])
    cells = [
        _cell("markdown", f"# {spec['title']}\n\n{spec['claim']}\n\n{PRESETS}", cid="intro"),
        _cell("code", "\n".join(params), ["parameters"], cid="parameters"),
        _cell("markdown", "## Run\n\nEach step shows a progress bar; cached steps load at once.", cid="run-md"),
        _cell("code", "from IPython.display import Image, Markdown, display\n\nfrom cda import studies\n\n"
                      f'result = studies.run("{name}", preset, overrides, root=output_root, {call_args})',
              cid="run"),
        _cell("markdown", "## Tables\n\nMeasured here, from `results/" + name + "/<preset>.csv`.", cid="tables-md"),
        _cell("code", "for caption, table in studies.tables(result.name, result.df, output_root):\n"
                      '    display(Markdown(f"**{caption}**\\n\\n" + table.to_markdown()))', cid="tables"),
        _cell("markdown", "## Figures\n\nSaved as PNG and PDF under `figures/<preset>/`.", cid="figures-md"),
        _cell("code", "for path in result.figures:\n"
                      '    if path.suffix == ".png":\n'
                      "        display(Image(filename=str(path), width=720))", cid="figures"),
        _cell("markdown", spec["reading"], cid="reading"),
    ]
    return {"cells": cells, "metadata": {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Write the stripped paper notebooks.")
    p.add_argument("--out", default=str(ROOT / "notebooks"), help="folder to write them to (default: notebooks/)")
    out = Path(p.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)
    for spec in NOTEBOOKS:
        path = out / f"{spec['name']}.ipynb"
        path.write_text(json.dumps(notebook(spec), indent=1, ensure_ascii=False) + "\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
