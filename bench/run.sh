#!/usr/bin/env bash
# The issue #8 suite: netc against JAX, PyTorch and numpy (see bench/README.md).
# Arguments go to run.py, e.g. bench/run.sh --reps 5 --only w2,w3
set -euo pipefail
cd "$(dirname "$0")/.."
exec bench/.venv/bin/python bench/run.py "$@"
