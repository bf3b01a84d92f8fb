"""Write the shared inputs of the benchmarks into bench/data (once; existing files are kept):

- spiral_x.npy, spiral_y.npy: the CS231n spiral (100 points x 3 classes, seed 0), for W1;
- digits_x.npy, digits_y.npy: examples/data/digits.csv scaled by 1/16, for W5;
- w12_x.npy: W12_SAMPLES standard normal rows of 784 values (seed 12), the inputs of W12;
- {w1,w2,w3,w5,w7,w9,w10,w11}_init.safetensors: initial weights under netc's parameter names
  (read from `netc check`): normal(0.01) for the spiral net's matrices as in the lecture, He normal
  for other matrices and filters (W10's attention projections too), zero biases; batch norm's
  gamma and running variance ones, its beta and running mean zeros (torch's defaults), layer
  norm's gamma ones and beta zeros (W10); the LSTM's (W11) U(-k, k), k = 1/sqrt(hidden).

Usage: python bench/gen.py NETC_BINARY
"""
import re
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

from common import DATA, HERE, W12_SAMPLES

NETS = {
    "w1": "bench/w1_spiral.net",
    "w2": "examples/mlp.net",
    "w3": "examples/cifar_cnn.net",
    "w5": "bench/w5_digits_cnn.net",
    "w7": "examples/alexnet.net",
    "w9": "bench/w9_bn_cnn.net",
    "w10": "bench/w10_transformer.net",
    "w11": "bench/w11_lstm.net",
}


def params(netc, net):
    """(name, shape) of each parameter, as `netc check` prints them."""
    out = subprocess.run([netc, "check", net], cwd=HERE.parent, capture_output=True, text=True, check=True).stdout
    pattern = r"^    (\S+) \[([\d, ]+)\](?:  \(state\))?$"  # state (running statistics) is marked
    return [(m[1], tuple(int(d) for d in m[2].split(", "))) for m in re.finditer(pattern, out, re.M)]


def init(name, shape, rng):
    if ".weight_" in name or ".bias_" in name:  # recurrent layers: torch's U(-k, k), k = 1/sqrt(hidden)
        k = 1 / np.sqrt(shape[0] // 4)
        return rng.uniform(-k, k, shape).astype(np.float32)
    if name.endswith((".gamma", ".var")):
        return np.ones(shape, np.float32)
    if len(shape) == 1 or shape[1:] == (1, 1):
        return np.zeros(shape, np.float32)
    if name in ("W1", "W2"):
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)
    fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
    return (np.sqrt(2 / fan_in) * rng.standard_normal(shape)).astype(np.float32)


def spiral(points=100, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x, y = np.zeros((points * classes, 2), np.float32), np.zeros(points * classes, np.int64)
    for j in range(classes):
        ix = range(points * j, points * (j + 1))
        r = np.linspace(0.0, 1, points)
        t = np.linspace(j * 4, (j + 1) * 4, points) + rng.standard_normal(points) * 0.2
        x[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[ix] = j
    return x, y


def main(netc):
    DATA.mkdir(exist_ok=True)
    if not (DATA / "spiral_y.npy").exists():
        x, y = spiral()
        np.save(DATA / "spiral_x.npy", x)
        np.save(DATA / "spiral_y.npy", y)
    if not (DATA / "digits_y.npy").exists():
        table = np.loadtxt(HERE.parent / "examples/data/digits.csv", delimiter=",", skiprows=1)
        np.save(DATA / "digits_x.npy", (table[:, :-1] / 16).astype(np.float32))
        np.save(DATA / "digits_y.npy", table[:, -1].astype(np.int64))
    if not (DATA / "w12_x.npy").exists():
        rng = np.random.default_rng(12)
        np.save(DATA / "w12_x.npy", rng.standard_normal((W12_SAMPLES, 784), dtype=np.float32))
    for workload, net in NETS.items():
        path = DATA / f"{workload}_init.safetensors"
        if not path.exists():
            rng = np.random.default_rng(0)
            save_file({name: init(name, shape, rng) for name, shape in params(netc, net)}, str(path))


if __name__ == "__main__":
    main(sys.argv[1])
