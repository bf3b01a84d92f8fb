#!/usr/bin/env bash
# The Python package's tests, as CI runs them: a fresh virtual environment with the test
# dependencies from PyPI, the package built from python/ by `pip install` (maturin, from PyPI,
# is the build backend), then pytest. Run from anywhere; `.ci/run` calls it after `cargo test`,
# whose netc binary the tests compare against.
#
# The package is a member of the root workspace: its build shares target/, the lockfile and the
# `dev` profile of `cargo test`, and the root manifest names the features both builds turn on,
# so the dependencies and netc are compiled once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/python-venv"
export CARGO_TARGET_DIR="$root/target"
python3 -m venv --clear "$venv"
export PATH="$venv/bin:$PATH"  # the build backend runs the venv's maturin
"$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.9,<2" "numpy>=1.21" "scikit-learn>=1.3" "pytest>=7"
MATURIN_PEP517_ARGS="--profile dev" "$venv/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation "$root/python"
# From the repository's root, where no `netc` folder hides the installed package.
cd "$root"
NETC_BIN="${NETC_BIN:-$CARGO_TARGET_DIR/debug/netc}" "$venv/bin/pytest" -q -p no:cacheprovider python/tests "$@"
