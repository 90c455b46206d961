"""Write the papers' numbers into README.md from results/paper/*.csv (between `<!-- paper:NAME -->` and
`<!-- /paper -->` markers; see cda/paper_numbers.py). `--check` changes nothing and fails when the
README is out of date, printing the difference."""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cda.paper_numbers import render  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if README.md is not what the CSVs give")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    args = parser.parse_args(argv)
    path = Path(args.readme)
    text = path.read_text()
    rendered = render(text)
    if rendered == text:
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), rendered.splitlines(True),
                                                   str(path), "rendered from results/paper/"))
        print(f"\n{path} quotes paper numbers that differ from results/paper/; run scripts/readme_numbers.py")
        return 1
    path.write_text(rendered)
    print(f"updated the paper numbers in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
