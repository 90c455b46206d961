"""The papers' numbers quoted in README.md and the site's pages are rendered from results/paper/*.csv,
never typed."""
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cda import paper_numbers

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quotes_the_paper_numbers_as_rendered_from_results_paper():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # README and the site's pages
    texts = [p.read_text() for p in pages]
    names = [m.group("name") for t in texts for m in paper_numbers.MARKER.finditer(t)]
    assert set(names) == set(paper_numbers.SNIPPETS), "every snippet is quoted, and only known ones"
    for page, text in zip(pages, texts):
        assert paper_numbers.render(text) == text, f"{page} is stale: run scripts/readme_numbers.py"
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_numbers.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_the_cda_gain_is_the_range_over_the_papers_table(tmp_path):
    assert paper_numbers.cda_gain().startswith("+2.5 to +8.1 on Tiny-ImageNet, ImageNet-1K and ImageNet-21K")
    folder = tmp_path / "paper"
    shutil.copytree(ROOT / "results" / "paper", folder)
    csv = folder / "cda_table2_main_results.csv"
    df = pd.read_csv(csv)
    df.loc[(df.method == "cda") & (df.dataset == "tiny_imagenet") & (df.ipc == 50) & (df.student == "resnet101"),
           "top1"] = 60.0  # a gain of +17.5
    df.to_csv(csv, index=False)
    assert paper_numbers.cda_gain(folder).startswith("+2.5 to +17.5 on")
    assert "+17.5" in paper_numbers.render("a <!-- paper:cda_gain -->old<!-- /paper --> b", folder)


def test_the_cudd_gain_names_each_ipc():
    assert paper_numbers.cudd_gain().startswith("+2.3 at IPC 50, +1.6 at IPC 100; ImageNet-1K, ResNet-50")


def test_the_fashion_mnist_anchor_is_the_best_hard_label_result_per_ipc():
    assert paper_numbers.fmnist_best_hard().startswith("81.0 at IPC 1 (IDC), 86.0 at IPC 10 (IDC) and 89.1 at IPC 50 (IDC-I)")


def test_a_stale_or_unknown_snippet_is_reported(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("gain <!-- paper:cda_gain -->+3.1 to +8.1<!-- /paper -->\n")
    script = [sys.executable, str(ROOT / "scripts" / "readme_numbers.py"), "--readme", str(readme)]
    stale = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "+2.5 to +8.1" in stale.stdout and "+3.1 to +8.1" in readme.read_text()
    assert subprocess.run(script, capture_output=True).returncode == 0
    assert "+2.5 to +8.1" in readme.read_text()
    with pytest.raises(KeyError, match="unknown paper-number snippet 'nope'"):
        paper_numbers.render("<!-- paper:nope -->x<!-- /paper -->")
