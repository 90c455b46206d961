"""Transformer and MLP students (CDA Table 15's DeiT-Tiny; CUDD's timm students): do the sets a ConvNet
or ResNet recovers train a ViT, an MLP-Mixer and a ResMLP?"""
from __future__ import annotations

from ..verdicts import Claim
from ._core import Context, Notebook, study
from .cda_students_without_bn import draw_students, is_convnet, student_cells, student_seconds, student_tables

# CUDD's timm students (its train_FKD.py), as named at 224 px: they cut images into 16-px patches.
PAPER_STUDENTS = ("timm/deit_tiny_patch16_224", "timm/mixer_s16_224", "timm/resmlp_24_224")


def family(arch: str) -> str:
    return "convnet" if is_convnet(arch) else "mlp" if arch.split("/")[-1].startswith(("mixer", "resmlp")) \
        else "transformer" if arch.split("/")[-1].startswith(("vit", "deit")) else "other"


def transformer_students(ctx: Context) -> tuple[str, ...]:
    """The timm names where a 16-px patch divides the images (ImageNet, 224 px); on small images the
    same families with 4-px patches, 4 blocks of width 128 (one of width 32 at smoke, for CI):
    DeiT-Tiny's 12 blocks of width 192 would cost minutes per student on 2 CPU cores."""
    if ctx.ws.info.image_size % 16 == 0 and ctx.ws.info.image_size >= 64:
        return PAPER_STUDENTS
    shape = "p4_d1_w32" if ctx.preset == "smoke" else "p4_d4_w128"
    return tuple(f"{kind}_{shape}" for kind in ("vit", "mixer", "resmlp"))


@study("cda_transformer_students", "Transformer and MLP students: ViT (DeiT), MLP-Mixer and ResMLP",
       grid=("method", "student"),
       claims=(
           Claim("cda-beats-sre2l-transformer-mlp", "CDA", "CDA beats SRe2L on transformer and MLP students",
                 "Table 15 (cross-architecture with DeiT-Tiny; values not found); CUDD's code lists DeiT-Tiny, "
                 "MLP-Mixer S/16 and ResMLP-24 students (its tables not found)",
                 {"method": "cda"}, {"method": "sre2l"}, where={"family": ["transformer", "mlp"]}),
       ),
       draw=draw_students, tables=student_tables,
       notebook=Notebook(
           title="CDA Table 15 and CUDD's timm students: transformer and MLP students",
           claim=lambda: """**Claim.** Sets recovered with a convolutional teacher also train transformer and MLP
students: CDA's Table 15 adds DeiT-Tiny to its cross-architecture results (a reviewer calls its accuracy
"subpar"), and CUDD's code trains DeiT-Tiny, MLP-Mixer S/16 and ResMLP-24 students. Neither paper's values
were found (`results/paper/README.md`), so the paper's column of the verdict reads "not available". The
claim tested: CDA beats SRe2L on these students.

**How this notebook tests it.** The random-real, SRe2L and CDA sets at the ablation IPC (the cached sets of
`cda_cross_architecture`) train the preset's ConvNet (the reference column) and one student of each family,
with the same teacher's soft labels. The timm names cut images into 16-px patches, which 28-px
Fashion-MNIST and 8-px digits are not multiples of (cda refuses such sizes rather than drop pixels), and a
DeiT-Tiny (12 blocks of width 192) costs minutes per student on 2 cores. So on small images the families
are scaled down: 4-px patches, 4 blocks of width 128 (`vit_p4_d4_w128`, DeiT's ViT; `mixer_p4_d4_w128`,
Mixer-S/16's blocks; `resmlp_p4_d4_w128`, ResMLP-24's affine blocks with layer scale); at the `paper`
preset they are the timm names themselves. At the `cpu` and `digits` presets each of these students runs
one seed, so their verdicts are inconclusive there, and the ConvNet three. At `cpu` one student took """ + student_seconds(("convnet3", "vit_p4_d4_w128", "mixer_p4_d4_w128", "resmlp_p4_d4_w128")) + """
(median, measured on 2 shared cores at IPC 10).""",
           params=[("ipc", None, "images per class (default: the ablations' IPC)"),
                   ("students", None, "transformer and MLP students (default: see above; the preset's ConvNet is added)"),
                   ("slow_seeds", None, "seeds of the non-ConvNet students (None: 1 at cpu and digits, else all)")],
           reading="""**Reading the result.** Compare the sets within each student's column: every student uses
the recipe tuned for the ConvNet, which suits transformers and MLPs poorly on a hundred images, so their
levels say little about what these families can reach. The ViT's cells are the same cached runs as
`cda_students_without_bn`'s."""))
def transformer_mlp_students(ctx: Context, ipc: int | None = None, students=None, slow_seeds: int | None = None,
                             methods=("random", "sre2l", "cda")) -> list[dict]:
    ipc = ipc or ctx.ablation_ipc()
    students = tuple(dict.fromkeys((ctx.cfg.eval.arch, *(students or transformer_students(ctx)))))
    rows = []
    for arch in students:
        rows += student_cells(ctx, (arch,), ipc, methods, slow_seeds, family=family(arch))
    return rows
