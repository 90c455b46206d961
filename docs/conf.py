"""Sphinx configuration of the cda site (`make docs`: build/site/). The generated pages (one per paper
notebook, the executed notebooks, the CLI and library references) are written into docs/_gen/ by
scripts/site_pages.py before each build; nothing is executed and nothing is fetched."""
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
subprocess.run([sys.executable, str(ROOT / "scripts" / "site_pages.py")], check=True)

project = "cda"
author = "the cda project"
extensions = ["myst_nb", "sphinx.ext.autodoc"]
exclude_patterns = ["screenshots", "**.ipynb_checkpoints"]
nb_execution_mode = "off"  # the executed copies in notebooks/executed/ are shown as committed
myst_heading_anchors = 3  # GitHub's heading anchors, so links between pages work there and here
myst_enable_extensions = ["colon_fence"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # signatures stay readable; the docstrings say what each argument is
html_theme = "furo"
html_title = "cda: dataset distillation you can rerun"
html_static_path = []
html_copy_source = False
html_show_sourcelink = False
suppress_warnings = ["myst.header"]


def _as_written(app, what, name, obj, options, lines):
    """cda's docstrings are plain text, not reStructuredText: show each as written (a literal block), so
    that no docstring can break the build or leave a dangling error link on the page."""
    if any(line.strip() for line in lines):
        lines[:] = ["::", "", *("    " + line for line in lines), ""]


def setup(app):
    app.connect("autodoc-process-docstring", _as_written)
