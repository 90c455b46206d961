"""Figures set their style locally: importing cda or drawing any figure leaves matplotlib's global
state as it was, and the local theme is the one the committed figures were drawn in."""
import subprocess
import sys
from pathlib import Path

import matplotlib as mpl
import torch

from cda import plots, studies

ROOT = Path(__file__).resolve().parents[1]


def _params() -> dict:
    """rcParams without 'backend' (reading it resolves matplotlib's automatic backend)."""
    return {k: mpl.rcParams[k] for k in mpl.rcParams if k != "backend"}


def test_importing_cda_changes_no_global_plot_state():
    code = ("import matplotlib as mpl\n"
            "def params(): return {k: mpl.rcParams[k] for k in mpl.rcParams if k != 'backend'}\n"
            "before = params()\n"
            "import cda, cda.plots, cda.studies, cda.own_data\n"
            "assert params() == before, 'rcParams changed'\n"
            "assert mpl.rcParams._get_backend_or_none() is None, 'a backend was chosen'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_drawing_each_figure_leaves_rcparams_unchanged(tmp_path):
    mpl.rcParams["axes.facecolor"] = "#123456"  # a caller's own setting survives every figure
    try:
        before = _params()
        for name in studies.built("cpu", ROOT):
            df = studies.load(name, "cpu", ROOT)
            images_file = studies.results_path(name, "cpu", ROOT).with_suffix(".images.pt")
            images = torch.load(images_file, weights_only=True) if images_file.is_file() else {}
            for fig_name, fig in studies.get(name).draw(df, images).items():
                plots.save_figure(fig, tmp_path / f"{name}_{fig_name}")
                assert _params() == before, f"{name}_{fig_name} changed the global rcParams"
                # the figure itself was drawn in the theme, not in the caller's settings
                assert fig.axes[0].get_facecolor() != mpl.colors.to_rgba("#123456"), f"{name}_{fig_name}"
        # every committed study figure was redrawn (figures/cpu/ also holds cda tune's and cda verdicts')
        committed = [p for p in (ROOT / "figures" / "cpu").glob("*.png") if p.name.startswith(tuple(studies.STUDIES))]
        assert len(list(tmp_path.glob("*.png"))) == len(committed)
    finally:
        mpl.rcdefaults()


def test_the_local_theme_is_seaborns_paper_whitegrid():
    import seaborn as sns

    with mpl.rc_context():
        sns.set_theme(context="paper", style="whitegrid", color_codes=False)
        expected = _params()
    with plots.themed():
        assert _params() == expected


def test_image_grid_has_a_row_per_image_the_sets_hold():
    labels = torch.arange(10).repeat(2)  # IPC 2
    images = torch.zeros(20, 1, 28, 28, dtype=torch.uint8)
    small = plots.distilled_grid({"a": (images, labels), "b": (images, labels)}, [str(i) for i in range(10)])
    big = plots.distilled_grid({"a": (images.repeat(3, 1, 1, 1), labels.repeat(3))}, [str(i) for i in range(10)])
    assert small.get_size_inches()[1] == 2 * 2 + 0.6  # two rows per set, not four
    assert big.get_size_inches()[1] == 4 + 0.6  # at most per_class (4) rows
