"""PyTorch eager peer of bench/batched.rs: the same batched products in float32, forward
(`a @ b`) and backward (both gradients for a given upstream gradient, `torch.autograd.grad`),
milliseconds per call (the fastest sample). Prints one JSON object per shape.

    BENCH_THREADS=2 taskset -c 0,1 bench/.venv/bin/python bench/peer_torch_batched.py
"""
import json
import os
import time

import torch

THREADS = int(os.environ.get("BENCH_THREADS", "1"))
torch.set_num_threads(THREADS)
torch.set_num_interop_threads(1)

# (name, a's shape, b's shape, transpose b), as SHAPES in bench/batched.rs.
SHAPES = [
    ("attention scores q·kᵀ", (32, 8, 64, 64), (32, 8, 64, 64), True),
    ("attention values p·v", (16, 4, 128, 128), (16, 4, 128, 32), False),
    ("dense on a sequence", (64, 128, 256), (256, 256), False),
    ("many small", (512, 16, 16), (512, 16, 16), False),
]


CLOCK = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter


def best_seconds(f):
    """Seconds per call: the fastest of 9 samples of enough calls to fill ~0.1 s each (as
    bench/batched.rs)."""
    f()
    start, calls = CLOCK(), 0
    while CLOCK() - start < 0.05 or calls < 2:
        f()
        calls += 1
    per = (CLOCK() - start) / calls
    reps = min(10_000, max(1, int(0.1 / per)))
    samples = []
    for _ in range(9):
        t = CLOCK()
        for _ in range(reps):
            f()
        samples.append((CLOCK() - t) / reps)
    return min(samples)


gen = torch.Generator().manual_seed(0)
for name, sa, sb, tb in SHAPES:
    a = (torch.rand(sa, generator=gen) * 2 - 1).requires_grad_()
    b = (torch.rand(sb, generator=gen) * 2 - 1).requires_grad_()
    product = (lambda a, b: a @ b.transpose(-1, -2)) if tb else (lambda a, b: a @ b)
    with torch.no_grad():
        forward = best_seconds(lambda: product(a, b))
    y = product(a, b)
    up = torch.rand(y.shape, generator=gen) * 2 - 1
    backward = best_seconds(lambda: torch.autograd.grad(y, (a, b), up, retain_graph=True))
    macs = y.numel() * sa[-1]
    print(json.dumps({"system": "torch", "shape": name, "threads": THREADS, "forward_ms": round(forward * 1e3, 4),
                      "backward_ms": round(backward * 1e3, 4), "gflops_forward": round(2 * macs / forward / 1e9, 1)}),
          flush=True)
