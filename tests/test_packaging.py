"""pyproject.toml and environment.yml list the same dependencies; the README's commands exist."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(spec: str) -> str:
    return re.split(r"[<>=!\[ ]", spec.strip(), maxsplit=1)[0].lower()


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
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


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
