"""Packaging: the dependencies declared are the ones cda imports, environment.yml lists the same,
the console entry point and every subcommand's --help work, and `make test` runs pytest."""
import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Declared but never imported by name: needed by a dependency's optional feature that cda uses.
INDIRECT = {"tabulate": "pandas.DataFrame.to_markdown"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!\[ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _imports() -> dict[str, bool]:
    """Third-party distributions imported by cda/, each with whether some import is at module level
    (needed to import cda at all) rather than inside a function (needed by one feature)."""
    dists = importlib.metadata.packages_distributions()
    found: dict[str, bool] = {}
    for path in sorted((ROOT / "cda").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                if root in sys.stdlib_module_names or root == "cda":
                    continue
                assert root in dists, f"{path.name} imports {root!r}, which no installed distribution provides"
                for dist in dists[root]:
                    found[_name(dist)] = found.get(_name(dist), False) or id(node) in top
    return found


def test_declared_dependencies_are_what_cda_imports():
    project = _project()
    core = {_name(s) for s in project["dependencies"]}
    extras = {_name(s) for specs in project["optional-dependencies"].values() for s in specs}
    imported = _imports()
    assert {"torch", "numpy", "pyyaml", "pillow"} <= set(imported)  # the scan sees imports at all
    undeclared = sorted(d for d in imported if d not in core | extras)
    assert not undeclared, f"cda imports {undeclared}, which pyproject.toml does not declare"
    needed_to_import = sorted(d for d, top in imported.items() if top and d not in core)
    assert not needed_to_import, f"module-level imports of {needed_to_import} need them in the core dependencies"
    unused = sorted(core - set(imported) - set(INDIRECT))
    assert not unused, f"pyproject.toml declares {unused}, which cda never imports"


def test_environment_matches_pyproject():
    project = _project()
    wanted = {_name(s) for s in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(s) for s in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    listed = set()
    for item in env:
        if isinstance(item, dict):
            listed |= {_name(s) for s in item["pip"] if not s.startswith("-e")}
        else:
            listed.add(_name(item.split("=")[0]))
    assert wanted <= listed, f"missing from environment.yml: {sorted(wanted - listed)}"
    assert listed - {"python", "pip"} <= wanted, f"missing from pyproject.toml: {sorted(listed - wanted - {'python', 'pip'})}"


def test_entry_point_and_every_subcommand_parse_help(capsys):
    from cda.cli import build_parser, main

    assert _project()["scripts"]["cda"] == "cda.cli:main"
    done = subprocess.run([sys.executable, "-m", "cda", "--help"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"run", "squeeze", "recover", "relabel", "evaluate", "study", "notebooks", "figures"} <= set(sub.choices)
    for name in sub.choices:
        assert name in done.stdout
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert f"usage: cda {name}" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_ci_runs_make_test_which_runs_pytest():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci  # a command line of the CI script, not a comment
    dry = subprocess.run(["make", "-n", "test"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"python -m pytest", dry.stdout), dry.stdout
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme


def test_the_readmes_links_into_the_site_resolve():
    # relative links to the site's sources (they work on GitHub too), with GitHub's heading anchors:
    # lower case, punctuation dropped, spaces to hyphens
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]+))?\)", text)
    assert len(links) >= 10
    for path, anchor in links:
        assert (ROOT / path).is_file(), f"README links to {path}, which does not exist"
        if anchor:
            page = (ROOT / path).read_text()
            anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                       for h in re.findall(r"^#+ (.*)$", page, re.M)}
            assert anchor in anchors, f"README links to #{anchor} of {path}, which has no such section"
