"""`make docs` builds the site into build/site/ from the committed files alone: a page per paper notebook
with our numbers beside the paper's, its figures, its verdicts, the command that rebuilds it and its
provenance read from results/, the verdicts page, and the generated CLI and library references.
The `site` fixture builds it once per session (tests/test_site_browser.py reads the same build)."""
from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
sys.path.insert(0, str(ROOT / "scripts"))

import site_pages  # noqa: E402
from committed import NOT_BUILT_AT_CPU  # noqa: E402

from cda.studies import STUDIES  # noqa: E402

BUILD = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-q", "docs", str(SITE)]  # `make docs`; -E: autodoc
# cannot see a changed docstring in an incremental build
BUILD_SECONDS = 240  # 2 shared cores: about a minute alone, up to 100 s while others share them


@functools.cache
def build_site() -> Path:
    """Build the site once per test process (tests/test_site_browser.py reads the same build)."""
    start = time.perf_counter()
    done = subprocess.run(BUILD, cwd=ROOT, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-3000:]
    assert seconds < BUILD_SECONDS, f"the site took {seconds:.0f} s to build"
    print(f"site built in {seconds:.0f} s")
    return SITE


@pytest.fixture(scope="session")
def site() -> Path:
    return build_site()


def _text(html: str) -> str:
    """The words of a page, entities decoded and Sphinx's curly quotes made straight."""
    import html as entities

    text = entities.unescape(re.sub(r"<[^>]+>", " ", html))
    text = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"'})
    return re.sub(r"\s+", " ", text)


def test_the_make_target_is_the_build_the_tests_run():
    make = (ROOT / "Makefile").read_text()
    assert "docs: setup\n\t.venv/bin/python -m sphinx -b html -E -q docs build/site" in make


@pytest.mark.slow
def test_every_study_page_shows_ours_the_papers_figures_verdicts_command_and_provenance(site):
    verdicts = pd.read_csv(ROOT / "results" / "verdicts" / "cpu.csv")
    for name in STUDIES:
        html = (site / "_gen" / "studies" / f"{name}.html").read_text()
        text = _text(html)
        if name in NOT_BUILT_AT_CPU:  # its page says so, and how to build it
            assert "Not built at the cpu preset yet" in text and f"cda study {name} --preset cpu --publish" in text
            continue
        for heading in ("Ours beside the paper", "Figures", "Verdicts", "Rebuild it", "Provenance"):
            assert heading in text, (name, heading)
        assert f"cda study {name} --preset cpu --publish" in text
        prov = json.loads((ROOT / "results" / name / "cpu.json").read_text())
        assert prov["git_commit"][:7] in text and prov["written"] in text, name  # read, not typed
        assert len(re.findall(r"<img ", html)) == len(list((ROOT / "figures" / "cpu").glob(f"{name}_*.png")))
        for v in verdicts[verdicts.study == name].itertuples():
            assert v.ours in text, (name, v.ours)
        assert (site / "_gen" / "notebooks" / f"{name}.html").is_file()
    main = _text((site / "_gen" / "studies" / "cda_table2_main_results.html").read_text())
    assert "paper (" in main, "the main table's page puts the paper's numbers beside ours"


@pytest.mark.slow
def test_the_verdicts_page_lists_every_claim_with_its_figure(site):
    text = _text((site / "verdicts.html").read_text())
    for claim in pd.read_csv(ROOT / "results" / "verdicts" / "cpu.csv").claim.unique():
        assert claim in text, claim
    assert 'src="_images/verdicts.png"' in (site / "verdicts.html").read_text()


@pytest.mark.slow
def test_the_references_are_generated_from_the_parser_and_the_docstrings(site):
    from cda.cli import build_parser

    cli = (site / "_gen" / "cli.html").read_text()
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    for name in sub.choices:
        assert f"usage: cda {name}" in cli, name
    api = (site / "_gen" / "api.html").read_text()
    assert 'id="cda.notebooks.output_root"' in api and "The one rule of" in api


@pytest.mark.slow
def test_the_built_site_fetches_nothing(site):
    for page in site.rglob("*.html"):
        html = page.read_text()
        assert not re.search(r"""<(script|img|link)\b[^>]*\b(src|href)=["']https?://""", html), page


def test_pages_and_readme_quote_current_numbers():
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_numbers.py"), "--check"],
                           capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0, check.stdout


def test_the_readme_is_a_landing_page_that_links_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    index = (ROOT / "docs" / "index.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"docs/{page.name}" in readme, f"the README does not link {page}"
            assert f"\n{page.stem}\n" in index, f"{page} is not in the site's table of contents"


def test_a_missing_provenance_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no provenance at .*cudd_ablation/cpu.json; `make publish`"):
        site_pages.provenance("cudd_ablation", tmp_path)
