#!/usr/bin/env bash
# Set up a fresh machine: the Fashion-MNIST data (Debian package) and a virtual environment in .venv
# with PyTorch, the notebook tools and this package. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

FMNIST=/usr/share/datasets/fashion-mnist
if [ -z "${CDA_FASHION_MNIST:-}" ] && [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: Fashion-MNIST not found in $FMNIST. Install Debian's dataset-fashion-mnist as root," >&2
    echo "       or set CDA_FASHION_MNIST to a folder holding the four idx .gz files." >&2
  fi
fi

PY=${PYTHON:-python3}
stamp=.venv/.cda-setup
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: building .venv (PyTorch from PyPI takes a minute or two the first time)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[notebooks,test]"
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
fi
