#!/usr/bin/env bash
# The GPU check in one call: bash scripts/gpu_check.sh OUTDIR [--device cuda] [--tiny] [--list]
# Runs from a checkout with PYTHONPATH=. (cda need not be installed); see scripts/gpu_check.py.
# Fashion-MNIST (the stand-in's source) is looked for where cda looks (CDA_FASHION_MNIST,
# /usr/share/datasets/fashion-mnist, ...) and in .data/fashion-mnist, a folder a device call can carry.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${CDA_FASHION_MNIST:-}" ] && [ -d .data/fashion-mnist ]; then
  export CDA_FASHION_MNIST="$PWD/.data/fashion-mnist"
fi
exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"
