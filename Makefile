# The two commands of the README. Each sets up what is missing first (scripts/setup.sh).
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

# The main job: the whole pipeline on Fashion-MNIST at the cpu preset (about half an hour on 2 cores).
demo: setup
	.venv/bin/cda run --preset cpu

# The tests (a few minutes on 2 cores, on real Fashion-MNIST images).
test: setup
	.venv/bin/python -m pytest -q
