"""The layers of cda, read from the source (every import, those inside functions too):

    core         config, data, models, training, cache, recovery, relabeling, students, ...
    methods      cda/methods/: one module per distillation method, on the core
    experiments  the pipeline, the plan, the studies, tuning, results, verdicts, plots
    apps         the CLI, the notebooks' helpers, own data, released sets, stand-ins

A module may import its own layer or a lower one, never a higher one; no two modules import each
other, directly or round a loop; every module has a layer. A new module gets its line in LAYERS.
"""
from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cda"
ORDER = ("core", "methods", "experiments", "apps")
LAYERS = {
    "core": ["cda.config", "cda.config.*", "cda.datasets", "cda.data", "cda.contracts", "cda.models", "cda.augment",
             "cda.training", "cda.distributed", "cda.cache", "cda.cache_check", "cda.checkpoint", "cda.runtime",
             "cda.speed", "cda.recover", "cda.distilled", "cda.relabel", "cda.labels_compact", "cda.student",
             "cda.evaluator", "cda.ddranking", "cda.squeeze", "cda.cudd", "cda.official_formats",
             "cda.paths", "cda.student_validation", "cda.continual", "cda.diversity", "cda.students_batched",
             "cda.paired_stats", "cda.weight_ema"],
    "methods": ["cda.methods", "cda.methods.*"],
    "experiments": ["cda.cells", "cda.pipeline", "cda.plan", "cda.studies", "cda.studies.*", "cda.tuning", "cda.results",
                    "cda.verdicts", "cda.plots", "cda.interval_figures", "cda.gpu_cost", "cda.official_settings",
                    "cda.paper_numbers", "cda.convergence"],
    "apps": ["cda", "cda.__main__", "cda.cli", "cda.notebooks", "cda.own_data", "cda.our_numbers", "cda.released",
             "cda.standin"],
}
# Known violations, (importer, imported): why it is still here. Empty: keep it so.
KNOWN: dict[tuple[str, str], str] = {}


@functools.cache
def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer_of(module: str) -> str | None:
    for layer, patterns in LAYERS.items():
        for p in patterns:
            if module == p or (p.endswith(".*") and module.startswith(p[:-1])):
                return layer
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """The cda modules `name` imports (at any depth of the code), with the line of each import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}  # never executed: loads nothing
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "cda"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] != "cda":
                continue
            for a in node.names:  # `from cda import methods` imports the module cda.methods
                full = f"{base}.{a.name}"
                out.append((full if full in known else base, node.lineno))
    return [(m, line) for m, line in out if m != name]


@functools.cache
def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    missing = sorted(m for m in modules() if layer_of(m) is None)
    assert not missing, f"modules with no layer: {missing}; give each its line in tests/test_layers.py LAYERS"


def test_no_module_imports_a_higher_layer():
    bad = []
    for name, deps in graph().items():
        for dep, line in deps:
            low, high = layer_of(name), layer_of(dep)
            if low and high and ORDER.index(high) > ORDER.index(low) and (name, dep) not in KNOWN:
                bad.append(f"{name} ({low}) imports {dep} ({high}) at {modules()[name].name}:{line}")
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


def test_no_import_cycles():
    edges = {n: {d for d, _ in deps if (n, d) not in KNOWN} for n, deps in graph().items()}
    # a package's __init__ importing its own submodules is how a package is built, not a loop
    edges = {n: {d for d in ds if not d.startswith(n + ".")} for n, ds in edges.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_known_violations_are_still_violations():
    """An entry of KNOWN that no longer happens must go, so the list only shrinks."""
    g = graph()
    stale = [pair for pair in KNOWN if pair[1] not in {d for d, _ in g.get(pair[0], [])}]
    assert not stale, f"KNOWN lists imports that are gone: {stale}; remove them from tests/test_layers.py"


def test_config_loads_without_torch():
    code = "import sys, cda.config; print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "[]", f"import cda.config loaded {out}"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk finds imports inside functions, relative ones included."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from ..pipeline import Workspace\n")
    assert imports("cda.config.m", f, {"cda.config.pipeline"}) == [("cda.pipeline", 2)]


def test_the_checker_skips_type_only_imports(tmp_path):
    """An import under `if TYPE_CHECKING:` is never executed, so it loads nothing and makes no edge."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .pipeline import Workspace\n"
                 "from .data import x\n")
    assert imports("cda.m", f, {"cda.pipeline", "cda.data"}) == [("cda.data", 4)]
