"""examples/python/digits.py runs and agrees with `netc predict`."""

import os
import subprocess
import sys

from conftest import REPO


def test_the_python_example_runs(tmp_path, netc_bin):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples/python/digits.py"), "--epochs", "3", "--out", str(tmp_path / "d.safetensors")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "NETC_BIN": str(netc_bin)},
    )
    assert done.returncode == 0, done.stderr
    assert "gives the same scores: True" in done.stdout
    assert "epoch  3" in done.stdout
