# The two commands of the README. Each sets up what is missing first (scripts/setup.sh).
# Nothing here but `make publish` writes the committed results/ and figures/: the others write runs/.
.PHONY: setup lint demo test test-browser docs notebooks figures publish executed-notebooks tune

setup:
	@bash scripts/setup.sh

# The main job: the whole pipeline on Fashion-MNIST at the cpu preset (five seeds per cell: about an hour on 2 cores),
# into runs/results/main/cpu/.
demo: setup
	.venv/bin/cda run --preset cpu

# ruff (rules in pyproject.toml): style, unused names, import order, likely bugs
lint: setup
	.venv/bin/python -m ruff check cda tests scripts benchmarks

# The lint, then the tests (a few minutes on 2 cores, on real Fashion-MNIST images; tests/test_site*.py build
# the site and read it in a browser), then every notebook under nbval at the smoke preset. The notebooks reuse
# the cache the tests' papermill runs filled, and write into a temporary folder ($CDA_ROOT), never into the project.
test: setup lint
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	export CDA_CACHE_DIR="$$tmp/cache" && \
	.venv/bin/python -m pytest -q tests && \
	CDA_PRESET=smoke CDA_ROOT="$$tmp/nbval" .venv/bin/python -m pytest -q --nbval-lax --nbval-current-env notebooks --ignore=notebooks/executed

# Just the browser test (also part of `make test`): JupyterLab in headless Chromium runs a notebook
# with Run All; screenshots in build/screenshots/ (needs Debian's chromium and chromium-driver).
test-browser: setup
	CDA_SCREENSHOT_DIR=build/screenshots .venv/bin/python -m pytest -q -s tests/test_browser.py

# The site (Sphinx + MyST-NB, offline) into build/site/: the pages of docs/, the executed notebooks and the
# pages docs/conf.py generates from the committed results; open build/site/index.html. Executes nothing.
docs: setup
	.venv/bin/python -m sphinx -b html -E -q docs build/site

# Every paper notebook at the cpu preset (papermill; results in runs/, executed copies in build/executed/),
# and the figures of runs/ redrawn from its saved results alone.
notebooks: setup
	.venv/bin/cda notebooks --preset cpu

figures: setup
	.venv/bin/cda figures --preset cpu

# The executed copies in notebooks/executed/ (what a reader on the web sees): every paper notebook run
# with saved=True at the cpu preset, showing the committed results and figures; computes nothing.
executed-notebooks: setup
	.venv/bin/python scripts/build_notebooks.py --executed
# Rebuild the committed results: results/<study>/cpu.* (the main table's is cda_table2_main_results, which
# `cda run --publish` also writes), figures/cpu/.
publish: setup
	.venv/bin/cda notebooks --preset cpu --publish

# The tuning behind the cpu and digits presets (validation split only): results/tuning/<preset>.csv and
# figures/<preset>/tuning_*.png. The presets hold the winners; rerunning tunes around them.
tune: setup
	.venv/bin/cda tune --preset cpu --publish
	.venv/bin/cda tune --preset digits --publish
