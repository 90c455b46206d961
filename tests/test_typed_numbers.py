"""Result numbers in the README and the site's pages are read from files: in a results section, a
percentage, a mean ± std or a paired difference with its interval must sit between `<!-- ours:NAME -->`
or `<!-- paper:NAME -->` markers (filled by scripts/readme_numbers.py), never typed. A figure measured
once and never saved is named as such, with its date and commit, without its numbers."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A result number: 83.2%, 83.2 ± 0.7, accuracies in a row (60.1 / 71.2), or a signed difference with its
# interval, +1.20 [−0.30, +2.70]. Settings (lr 0.1, a crop bound of 0.08) are not results.
RESULT = re.compile(r"\d+\.\d+\s*%|\d+\.\d+\s*±\s*\d|\d+\.\d+ / \d+\.\d|[+−-]\d+\.\d+\s*\[[+−-]?\d")
SPANS = re.compile(r"<!-- (ours|paper):[a-z0-9_]+ -->.*?<!-- /(ours|paper) -->|```.*?```", re.S)

# The results sections: the README's headline and every hand-written page of the site, whole (the
# generated pages of docs/_gen/ are written from the files).
RESULT_PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
README_RESULTS = re.compile(r"^## (Headline|Results)", re.M)


def typed_numbers(text: str) -> list[str]:
    """The result numbers of `text` outside the generated spans and code blocks."""
    return RESULT.findall(SPANS.sub("", text))


def readme_results(text: str) -> str:
    """The README's results sections: from a results heading to the next level-2 heading."""
    parts = re.split(r"(?m)^(?=## )", text)
    return "".join(p for p in parts if README_RESULTS.match(p))


def test_the_detector_finds_a_planted_typed_number_and_spares_generated_ones():
    assert len(typed_numbers("CDA reaches 77.3 ± 1.4 here")) == 1
    assert typed_numbers("a teacher at 92.1% on the test set") == ["92.1%"]
    assert len(typed_numbers("CDA − SRe2L is −4.75 [−10.00, +0.49]")) == 1
    assert typed_numbers("the teacher reaches <!-- ours:teacher -->92.1%<!-- /ours --> here") == []
    assert typed_numbers("```\n  random  219.6 GB  27.1 h 12.5%\n```") == []
    assert len(typed_numbers("SRe2L gets 60.1 / 71.2 / 79.0")) == 1
    assert typed_numbers("IPC 10, 400 epochs, lr 2e-3, crop bound 0.08, milestone 0.5 / 1, 5 seeds") == []


def test_the_readme_results_sections_quote_only_generated_numbers():
    text = (ROOT / "README.md").read_text()
    section = readme_results(text)
    assert "<!-- ours:headline -->" in section, "the README's headline table is generated"
    assert typed_numbers(section) == [], "typed result numbers in the README: put them between ours: markers"


@pytest.mark.parametrize("page", RESULT_PAGES)
def test_no_page_types_a_result_number(page):
    found = typed_numbers((ROOT / page).read_text())
    assert found == [], (f"{page} types {len(found)} result numbers: {found}; quote them through a snippet of "
                         f"cda/our_numbers.py between <!-- ours:NAME --> markers")


def test_the_notebooks_markdown_quotes_no_typed_result():
    """The notebooks' text (scripts/build_notebooks.py) takes the papers' numbers from cda.paper_numbers and
    the costs from the provenance files; it types no result of ours."""
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        assert typed_numbers(text) == [], f"{path} types result numbers in its markdown"


def test_a_planted_typed_number_fails_the_page_check(tmp_path):
    page = ROOT / "docs" / "verdicts.md"
    planted = page.read_text() + "\nCDA reaches 77.3 ± 1.4 at IPC 10.\n"
    assert len(typed_numbers(planted)) == len(typed_numbers(page.read_text())) + 1
    assert typed_numbers(page.read_text()) == []
    readme = readme_results("## Headline\n\n<!-- ours:headline -->x<!-- /ours -->\n\nCDA: 77.3%.\n## Next\n")
    assert typed_numbers(readme) == ["77.3%"]


def test_the_snippets_read_the_result_files(tmp_path):
    import shutil

    import pandas as pd

    from cda import our_numbers

    for study in ("cda_table2_main_results", "cudd_main_results"):
        (tmp_path / study).mkdir()
        shutil.copy(ROOT / "results" / study / "cpu.csv", tmp_path / study / "cpu.csv")
    csv = tmp_path / "cda_table2_main_results" / "cpu.csv"
    df = pd.read_csv(csv)
    df.loc[(df.method == "teacher") & (df.metric == "top1"), "value"] = 12.34
    df.to_csv(csv, index=False)
    text = our_numbers.render("teacher <!-- ours:teacher -->old<!-- /ours -->", tmp_path)
    assert text == "teacher <!-- ours:teacher -->12.3%<!-- /ours -->"
    assert "| CDA |" in our_numbers.headline(tmp_path)
    with pytest.raises(KeyError, match="unknown result snippet 'nope'"):
        our_numbers.render("<!-- ours:nope -->x<!-- /ours -->")
    with pytest.raises(FileNotFoundError, match=r"no results at .*verdicts/cpu.csv; `make publish`"):
        our_numbers.verdicts(tmp_path)


def test_the_prose_snippets_read_their_study_and_the_verdicts(tmp_path):
    """An ablation bullet follows its study's file, and a missing verdict names the file and the fix."""
    import shutil

    import pandas as pd

    from cda import our_numbers

    for study in ("cda_ablation_crop_lower_bound", "verdicts"):
        (tmp_path / study).mkdir()
        shutil.copy(ROOT / "results" / study / "cpu.csv", tmp_path / study / "cpu.csv")
    csv = tmp_path / "cda_ablation_crop_lower_bound" / "cpu.csv"
    df = pd.read_csv(csv)
    df.loc[(df.variant == "CDA cosine to 0.2") & (df.metric == "top1"), "value"] = 50.0
    df.to_csv(csv, index=False)
    assert "0.2 → 50.0 ± 0.0" in our_numbers.ablation_crop(tmp_path)
    verdicts = tmp_path / "verdicts" / "cpu.csv"
    pd.read_csv(verdicts).query("id != 'end-at-0.08'").to_csv(verdicts, index=False)
    with pytest.raises(KeyError, match=r"no verdict 'end-at-0.08' in .*verdicts/cpu.csv; `cda verdicts"):
        our_numbers.ablation_crop(tmp_path)
