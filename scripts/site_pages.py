"""Write the site's generated pages into docs/_gen/ (ignored by git), from the committed files alone:
one page per paper notebook (our tables beside the paper's, its figures, the verdicts of its claims,
the command that rebuilds it and its provenance, read from results/), the executed notebooks
(notebooks/executed/, copied, never run here), the figures those pages show, and the command-line
reference from cda's argparse parser. docs/conf.py runs it before every build."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESET = "cpu"  # the committed results the site shows


def _put(path: Path, data: str | bytes, written: set) -> None:
    """Write `data` unless the file already holds it, so that Sphinx rebuilds only what changed."""
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_bytes() != raw:
        path.write_bytes(raw)
    written.add(path)


def _md(table) -> str:
    from cda.studies import markdown

    return markdown(table)


def _intro(name: str) -> tuple[str, str]:
    """The notebook's title and its claim paragraphs (up to its 'Presets' paragraph)."""
    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    text = "".join(next(c for c in cells if c["cell_type"] == "markdown")["source"])
    title, _, body = text.partition("\n")
    return title.lstrip("# ").strip(), body.split("**Presets.**")[0].strip()


def provenance(name: str, root: Path = ROOT, preset: str = PRESET) -> dict:
    """What the study's provenance file says made its committed results."""
    path = root / "results" / name / f"{preset}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no provenance at {path}; `make publish` writes it")
    p = json.loads(path.read_text())
    run = p.get("config", {}).get("run", {})
    return {"commit": p.get("git_commit", "")[:7], "written": p.get("written", ""), "preset": preset,
            "seed_scope": run.get("seed_scope"), "device": p.get("device"), "cpu_count": p.get("cpu_count"),
            "build_seconds": p.get("build_seconds"), "wall_seconds": p.get("wall_seconds"),
            "artifacts": len(p.get("artifacts", {})), "torch": p.get("versions", {}).get("torch")}


def _verdict_rows(name: str, root: Path) -> str:
    import pandas as pd

    path = root / "results" / "verdicts" / f"{PRESET}.csv"
    table = pd.read_csv(path)
    rows = table[table.study == name]
    if rows.empty:
        return "No claim of the papers is judged on this study's results."
    out = rows[["claim", "cell", "paper_number", "ours", "verdict", "verdict_holm"]].rename(
        columns={"paper_number": "paper (points)", "ours": "ours: a − b, 95% interval",
                 "verdict_holm": "after Holm"})
    out["paper (points)"] = out["paper (points)"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    return (f"From `results/verdicts/{PRESET}.csv` (protocol: [the verdicts page](../../verdicts.md)).\n\n"
            + out.to_markdown(index=False))


def study_page(name: str, root: Path, gen: Path, written: set) -> str:
    from cda import studies

    title, claim = _intro(name)
    df = studies.load(name, PRESET, root)
    tables = "\n\n".join(f"**{caption}**\n\n{_md(table)}" for caption, table in studies.tables(name, df, root))
    figs = []
    for png in sorted((root / "figures" / PRESET).glob(f"{name}_*.png")):
        _put(gen / "figures" / png.name, png.read_bytes(), written)
        figs.append(f"```{{figure}} ../figures/{png.name}\n:alt: {png.stem}\n\n`figures/{PRESET}/{png.name}` "
                    f"(and `.pdf`)\n```")
    p = provenance(name, root)
    seeds = ", ".join(str(int(x)) for x in sorted(df.seed.dropna().unique()))  # the seeds in the results
    minutes = f"{p['build_seconds'] / 60:.1f} min" if p["build_seconds"] is not None else "not recorded"
    return f"""# {title}

{claim}

## Ours beside the paper's

Top-1 on the Fashion-MNIST test set at the `{PRESET}` preset, from `results/{name}/{PRESET}.csv`; the papers'
numbers from `results/paper/` (never mixed with ours).

{tables}

## Figures

{chr(10).join(figs) or "This study draws no figure."}

## Verdicts

{_verdict_rows(name, root)}

## Rebuild it

```bash
cda study {name} --preset {PRESET}             # into runs/ (the cache makes a rerun quick)
cda study {name} --preset {PRESET} --publish   # the committed results/ and figures/{PRESET}/
papermill notebooks/{name}.ipynb out.ipynb -p preset {PRESET}   # the notebook, into runs/
```

## Provenance

Read from `results/{name}/{PRESET}.json`:

| commit | preset | seeds | seed scope | device | build time of its artifacts | wall time of the call | artifacts | torch | written |
|---|---|---|---|---|---|---|---|---|---|
| `{p['commit']}` | `{p['preset']}` | {seeds} | {p['seed_scope']} | {p['device']} ({p['cpu_count']} cores) | {minutes} | {p['wall_seconds']} s | {p['artifacts']} | {p['torch']} | {p['written']} |

The build time adds up what each artifact the study used cost when it was built (each counted once);
the wall time is that of the call that wrote the file, which found them in the cache.

The notebook itself, executed at `{PRESET}` on the committed results: [{name}](../notebooks/{name}.ipynb).

```{{toctree}}
:hidden:

../notebooks/{name}
```
"""


def pending_page(name: str) -> str:
    """The page of a study whose cpu results are not committed yet: its text, and how to build them."""
    title, claim = _intro(name)
    return (f"# {title}\n\n{claim}\n\n## Not built at the `{PRESET}` preset yet\n\nThis study and its notebook are "
            f"in the code and run at the `smoke` preset in CI, but its `{PRESET}` results are not committed yet. "
            f"Build them with\n\n```bash\ncda study {name} --preset {PRESET} --publish\n```\n\nthen "
            "`make executed-notebooks` and `cda verdicts --preset cpu --publish`.\n")


def cli_page() -> str:
    """Every subcommand's --help, from the parser itself."""
    import argparse

    from cda.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["# Command-line reference", "",
             "Generated from `cda.cli.build_parser()` at build time: `cda <command> --help` prints the same.", "",
             "```text", parser.format_help().rstrip(), "```"]
    for name, p in sub.choices.items():
        parts += ["", f"## `cda {name}`", "", "```text", p.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


def api_page() -> str:
    """An autodoc section per module of the cda package, found by walking it (so renames need no edit here)."""
    import pkgutil

    import cda

    names = sorted(m.name for m in pkgutil.walk_packages(cda.__path__, "cda.") if m.name != "cda.__main__")
    parts = ["# Library reference", "",
             "Generated at build time from the docstrings of every module of the `cda` package.", ""]
    parts += ["## `cda`", "", "```{eval-rst}", ".. automodule:: cda", "```", ""]  # its names: below
    for name in names:
        parts += [f"## `{name}`", "", "```{eval-rst}", f".. automodule:: {name}", "   :members:", "```", ""]
    return "\n".join(parts)


def build(root: Path = ROOT, gen: Path | None = None) -> list[Path]:
    """Write every generated page; returns the study pages."""
    from cda.studies import STUDIES, built

    gen = gen or root / "docs" / "_gen"
    written: set[Path] = set()
    pages = []
    done = set(built(PRESET, root))
    for name in STUDIES:
        page = gen / "studies" / f"{name}.md"
        if name not in done:  # added before its cpu build: the page says so and how to build it
            _put(page, pending_page(name), written)
            pages.append(page)
            continue
        executed = root / "notebooks" / "executed" / f"{name}.ipynb"
        if not executed.is_file():
            raise FileNotFoundError(f"no executed copy at {executed}; `make executed-notebooks` writes it")
        _put(gen / "notebooks" / executed.name, executed.read_bytes(), written)
        _put(page, study_page(name, root, gen, written), written)
        pages.append(page)
    _put(gen / "cli.md", cli_page(), written)
    _put(gen / "api.md", api_page(), written)
    for stale in [p for p in gen.rglob("*") if p.is_file() and p not in written]:
        stale.unlink()  # a page of a study that is gone
    return pages


if __name__ == "__main__":
    print(f"{len(build())} study pages in docs/_gen/")
