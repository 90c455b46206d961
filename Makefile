# The two commands of the README. Each sets up what is missing first (scripts/setup.sh).
.PHONY: setup demo test notebooks figures executed-notebooks

setup:
	@bash scripts/setup.sh

# The main job: the whole pipeline on Fashion-MNIST at the cpu preset (about half an hour on 2 cores).
demo: setup
	.venv/bin/cda run --preset cpu

# The tests (a few minutes on 2 cores, on real Fashion-MNIST images).
test: setup
	.venv/bin/python -m pytest -q

# Every paper notebook at the cpu preset (papermill; executed copies in build/executed/), and the
# figures redrawn from the saved results alone.
notebooks: setup
	.venv/bin/cda notebooks --preset cpu

figures: setup
	.venv/bin/cda figures --preset cpu

# The executed copies in notebooks/executed/ (what a reader on the web sees): every paper notebook run
# with saved=True at the cpu preset, showing the committed results and figures; computes nothing.
executed-notebooks: setup
	.venv/bin/python scripts/build_notebooks.py --executed
