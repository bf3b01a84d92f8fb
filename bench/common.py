"""Shared by the peer benchmarks (numpy, JAX, PyTorch): workload sizes, data and weights from
bench/data (written by gen.py), timing, memory, output.

Every benchmark process prints one JSON object on stdout. Threads are set by the runner
(BENCH_THREADS plus OMP/MKL/OPENBLAS/XLA variables and taskset) before Python starts.
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
THREADS = int(os.environ.get("BENCH_THREADS", "2"))

# W2, W3, W7: batch, input sample shape, classes, learning rate (as in the .net files).
SHAPES = {
    "w2": (128, (784,), 10, 0.05),
    "w3": (32, (3, 32, 32), 10, 0.01),
    "w7": (8, (3, 227, 227), 1000, 0.001),
    "w9": (32, (3, 32, 32), 10, 0.01),
    "w10": (32, (64, 128), 10, 0.01),
    "w11": (32, (64, 128), 10, 0.01),
}
# W10: a pre-norm transformer block on x [B, 64, 128] (4 heads, MLP width 512, exact gelu),
# a final layernorm, the mean over positions and a dense head; the parameter names netc gives
# bench/w10_transformer.net. Its attention (the prelude's multihead_attention) computes
# x @ Wq + bq, x @ Wk (no key bias: the softmax cancels it), x @ Wv + bv, joined @ Wo + bo,
# with W [in, out] (torch's Linear weight transposed).
TRANSFORMER = {"heads": 4, "norm1": "norm1", "attn": "attn", "norm2": "norm2", "mlp": ("hidden", "mlp"),
               "final_norm": "final_norm", "head": "head"}
# W11: an LSTM (torch's nn.LSTM layout and gate order i, f, g, o) over the 64 steps of x
# [B, 64, 128], hidden 256, its final state through a dense layer; the parameter names netc
# gives bench/w11_lstm.net.
LSTM = {"hidden": 256, "prefix": "enc", "head": ("dense_1.W", "dense_1.b")}
# The networks, layer by layer, with netc's parameter names: ("dense", W, b),
# ("conv", W, b, stride, pad), ("relu",), ("pool", size, stride), ("flatten",),
# ("bn", gamma, beta, running mean, running var) (momentum 0.1, eps 1e-5), ("dropout", p).
def _cnn(*convs):
    out = []
    for i, (stride, pad, pool) in enumerate(convs, 1):
        out += [("conv", f"conv2d_{i}.W", f"conv2d_{i}.b", stride, pad), ("relu",)] + ([("pool", *pool)] if pool else [])
    return out + [("flatten",)]


NETS = {
    "w1": [("dense", "W1", "b1"), ("relu",), ("dense", "W2", "b2")],
    "w2": [("dense", "dense_1.W", "dense_1.b"), ("relu",), ("dense", "dense_2.W", "dense_2.b"), ("relu",),
           ("dense", "dense_3.W", "dense_3.b")],
    "w3": _cnn((1, 1, (2, 2)), (1, 1, (2, 2))) + [("dense", "dense_1.W", "dense_1.b")],
    "w5": _cnn((1, 1, (2, 2))) + [("dense", "dense_1.W", "dense_1.b")],
    "w9": [op for i in (1, 2) for op in (("conv", f"conv2d_{i}.W", f"conv2d_{i}.b", 1, 1),
                                          ("bn", *(f"batchnorm_{i}.{t}" for t in ("gamma", "beta", "mean", "var"))),
                                          ("relu",), ("pool", 2, 2))]
    + [("flatten",), ("dropout", 0.5), ("dense", "dense_1.W", "dense_1.b")],
    "w7": _cnn((4, 0, (3, 2)), (1, 2, (3, 2)), (1, 1, None), (1, 1, None), (1, 1, (3, 2)))
    + [("dense", "dense_1.W", "dense_1.b"), ("relu",), ("dense", "dense_2.W", "dense_2.b"), ("relu",),
       ("dense", "dense_3.W", "dense_3.b")],
}

# W12 (`netc predict` throughput): samples of bench/data/w12_x.npy (N(0, 1), 784 values each,
# written by gen.py) and the batch both systems run them in (netc predict's default).
W12_SAMPLES = 10000
W12_BATCH = 256

# Timed steps and warm-up steps per process.
STEPS = {"w2": (100, 10), "w3": (30, 3), "w7": (3, 1), "w9": (30, 3), "w10": (20, 3), "w11": (10, 2)}


def is_state(name):
    """Batch norm's running statistics: updated by the train step, not by gradients."""
    return name.endswith((".mean", ".var"))


def since_process_start():
    """Seconds since this process was started (/proc/self/stat, 10 ms resolution)."""
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return float(open("/proc/uptime").read().split()[0]) - started


def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def weights(workload):
    """The shared initial weights, named as netc names them, as float32 numpy arrays."""
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(DATA / f"{workload}_init.safetensors").items()}


def batch(workload, seed=1):
    """A synthetic batch: standard normal inputs, uniform labels."""
    n, sample, classes, _ = SHAPES[workload]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *sample), dtype=np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def spiral():
    return np.load(DATA / "spiral_x.npy"), np.load(DATA / "spiral_y.npy")


def digits():
    """The digits: [1797, 1, 8, 8] scaled to [0, 1]; the first 1500 train, the rest test."""
    x, y = np.load(DATA / "digits_x.npy").reshape(-1, 1, 8, 8), np.load(DATA / "digits_y.npy")
    return (x[:1500], y[:1500]), (x[1500:], y[1500:])


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def time_calls(f, steps, warmup, cpu=None):
    """Milliseconds of each of `steps` calls of f() after `warmup` calls; f must block. With a
    list `cpu`, the CPU milliseconds of the process's threads per call are appended to it (on a
    shared machine other processes inflate the wall time far more than the CPU time)."""
    for _ in range(warmup):
        f()
    out = []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        f()
        out.append((time.perf_counter() - t) * 1e3)
        if cpu is not None:
            cpu.append((time.process_time() - c) * 1e3)
    return out


def report(system, workload, **fields):
    fields = {"system": system, "workload": workload, "threads": THREADS, **fields}
    fields["peak_rss_mib"] = peak_rss_mib()
    json.dump(fields, sys.stdout)
    print()


def step_report(system, workload, step, infer, first_step_s, **extra):
    """Time `step()` and `infer()` (each blocking) and report medians; `first_step_s` is the
    time from process start to the end of the first step."""
    steps, warmup = STEPS[workload]
    cpu = []
    s = time_calls(step, steps, warmup, cpu)
    i = time_calls(infer, steps, warmup)
    report(system, workload, first_step_s=first_step_s, step_ms_median=median(s), step_ms_min=min(s),
           step_cpu_ms_median=median(cpu), infer_ms_median=median(i), infer_ms_min=min(i), **extra)
