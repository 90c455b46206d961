"""Write the numbers quoted in README.md and the site's pages (docs/**/*.md) from the files that hold
them: the papers' numbers from results/paper/*.csv (`<!-- paper:NAME -->...<!-- /paper -->`, see
cda/paper_numbers.py) and our results from results/ (`<!-- ours:NAME -->...<!-- /ours -->`, see
cda/our_numbers.py). `--check` changes nothing and fails when a file is out of date, printing the
difference."""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cda import our_numbers, paper_numbers  # noqa: E402


def render(text: str) -> str:
    return our_numbers.render(paper_numbers.render(text))


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and the site's own pages (not the generated ones under docs/_gen/)."""
    docs = root / "docs"
    return [root / "README.md", *sorted(p for p in docs.rglob("*.md") if "_gen" not in p.relative_to(docs).parts)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a page is not what the result files give")
    parser.add_argument("--readme", help="just this file (default: README.md and docs/**/*.md)")
    args = parser.parse_args(argv)
    stale = 0
    for path in [Path(args.readme)] if args.readme else pages():
        text = path.read_text()
        rendered = render(text)
        if rendered == text:
            continue
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), rendered.splitlines(True),
                                                       str(path), "rendered from results/"))
            print(f"\n{path} quotes numbers that differ from results/; run scripts/readme_numbers.py")
            stale += 1
        else:
            path.write_text(rendered)
            print(f"updated the numbers in {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
