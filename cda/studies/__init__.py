"""The experiments behind the notebooks: one study per table or figure of the CDA and CUDD papers.

A study takes a preset (smoke, cpu, paper) plus overrides, asks a cached `Workspace` for the
teachers, distilled sets and student evaluations it needs, and writes

- `results/<study>/<preset>.csv`: long format, one row per run and metric, with the study's own
  columns (schedule, milestone, ...), and `<preset>.json` beside it with the provenance;
- `figures/<preset>/<study>_<figure>.png|pdf`, drawn from the CSV alone (plus a small tensor file of
  images for the image grids), so `redraw()` regenerates every figure without recomputing.

Layout: `_core` (the registry and declarations, paths, shared table and figure helpers; the
Context a study computes with and the main table's rows are cda.cells', below the pipeline),
`_steps` (`open` a study and run it step by step, or `run` it at once; `OpenStudy` computes its
rows, or with `saved=True` reads them from the saved results), and one module per paper, `cda` and
`cudd`, where each study is declared once: the axes it varies, its claims, compute, figures, tables
and notebook text. Every
module of this package is imported here, so a new study is one new file (plus its generated notebook).

Studies share artifacts through the cache: the main table's CDA set at IPC 10 is the scheduler
ablation's cosine/milestone-1 cell and the cross-architecture study's convnet cell.
"""
import importlib as _importlib
import pkgutil as _pkgutil

from . import cda, cudd  # noqa: E402,F401  (registers the studies, in the papers' order)
from ._core import (
    GRID_CLASSES,
    MAIN_TABLE,
    NAMES,
    STUDIES,
    Cell,
    Context,
    Notebook,
    Study,
    all_claims,
    figures_dir,
    gain_table,
    get,
    main_table_rows,
    markdown,
    paper_numbers,
    project_root,
    readable,
    results_path,
    run_tag,
    set_label,
    study,
    top1,
)
from ._steps import OpenStudy, StudyResult, TableList, built, custom_params, load, open_study, redraw, run, tables

# Any other module of this package registers its studies too, by name: a new study is a new file here.
for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    _importlib.import_module(f"{__name__}.{_module}")

open = open_study  # noqa: A001  (studies.open(name, ...), as the notebooks call it)
_custom_params = custom_params

__all__ = ["GRID_CLASSES", "MAIN_TABLE", "NAMES", "STUDIES", "Cell", "Context", "Notebook", "OpenStudy", "Study",
           "StudyResult", "TableList", "all_claims", "built", "custom_params", "figures_dir", "gain_table", "get", "load", "main_table_rows",
           "markdown", "open", "open_study", "paper_numbers", "project_root", "readable", "redraw", "results_path",
           "run", "run_tag", "set_label", "study", "tables", "top1"]
