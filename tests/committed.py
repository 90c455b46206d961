"""Which studies have committed cpu results. A study lands with its code, tests and smoke notebook
before its cpu build; until `cda study NAME --preset cpu --publish` has run, it is named here, and the
tests of the committed results (tables, figures, executed copies, site pages, verdicts) cover the
others. `test_the_unbuilt_studies_are_the_listed_ones` keeps this list exact both ways."""
from pathlib import Path

from cda import studies

ROOT = Path(__file__).resolve().parents[1]

NOT_BUILT_AT_CPU = frozenset({
    "cda_transformer_students",
    "cudd_student_loss",
})


def built_at_cpu() -> list[str]:
    """The studies with committed cpu results, in the registry's order."""
    return studies.built("cpu", ROOT)
