"""Shared fixtures: where the repository and the `netc` command are, the digits data, and a
helper that runs the CLI. The tests compare the Python module with the CLI (bit for bit where
they run the same code), so the CLI must be built: `.ci/run` builds it with `cargo test`; by
hand, `cargo build` (or set NETC_BIN)."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def _find_netc():
    if os.environ.get("NETC_BIN"):
        return Path(os.environ["NETC_BIN"]).resolve()
    for profile in ("debug", "release"):
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        candidate = target / profile / "netc"
        if candidate.exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def netc_bin():
    path = _find_netc()
    if path is None or not path.exists():
        pytest.fail("the netc command is not built: run `cargo build` at the repository's root (or set NETC_BIN)")
    return path


@pytest.fixture(scope="session")
def cli(netc_bin):
    """`cli("run", file, "--save", w)`: run netc, return stdout; fail the test with its
    stderr when it exits non-zero."""

    def run(*args, check=True):
        done = subprocess.run([str(netc_bin), *map(str, args)], capture_output=True, text=True, timeout=600)
        if check and done.returncode != 0:
            pytest.fail(f"netc {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}")
        return done

    return run


@pytest.fixture(scope="session")
def cli_json(cli):
    def run(*args):
        return json.loads(cli(*args, "--json").stdout)

    return run


@pytest.fixture(scope="session")
def digits():
    """The data of examples/digits_*.net as the data block reads it: pixels 0..16 scaled by
    1/16 (float32), labels int64; the first 1500 rows train, the rest test."""
    table = np.loadtxt(EXAMPLES / "data" / "digits.csv", delimiter=",", skiprows=1, dtype=np.float64)
    header = (EXAMPLES / "data" / "digits.csv").read_text().splitlines()[0].split(",")
    label = header.index("label")
    y = table[:, label].astype(np.int64)
    x = (np.delete(table, label, axis=1) / 16).astype(np.float32)
    return x[:1500], y[:1500], x[1500:], y[1500:]


@pytest.fixture
def mlp_file():
    return EXAMPLES / "digits_mlp.net"


def read_safetensors(path):
    """name -> float32 array, and the metadata, of a safetensors file (the format is a
    little-endian u64 header length, a JSON header, then the raw data)."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", info
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(info["shape"])
    return out, meta
