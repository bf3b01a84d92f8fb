"""Batched products, netc against PyTorch eager, at 1 and 2 threads (issue #17):

    bench/.venv/bin/python bench/batched.py [--threads 1,2] [--reps 3] [--clock wall|cpu]

Builds `cargo bench --bench batched` (release), then runs it and bench/peer_torch_batched.py as
separate processes pinned with taskset to as many cores as threads, `--reps` times each,
interleaved, and prints a Markdown table of the medians over the processes of each one's best
time per call (forward and backward milliseconds, and netc's time over torch's). On a shared
machine, `--clock cpu` measures process CPU time instead of wall time for single-threaded runs
(time spent waiting for a core is then not counted; meaningless with more threads).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

parser = argparse.ArgumentParser()
parser.add_argument("--threads", default="1,2")
parser.add_argument("--reps", type=int, default=3)
parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: process CPU time (single-thread runs on a busy machine)")
args = parser.parse_args()

built = subprocess.run(["cargo", "bench", "--bench", "batched", "--no-run", "--message-format", "json"], cwd=ROOT,
                       check=True, capture_output=True, text=True).stdout
exe = next(json.loads(l)["executable"] for l in built.splitlines()
           if '"executable":"' in l and "batched" in json.loads(l)["executable"])

rows = {}
for threads in [int(t) for t in args.threads.split(",")]:
    n = str(threads)
    env = dict(os.environ, BENCH_CLOCK=args.clock, BENCH_THREADS=n, MATMUL_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n,
               OPENBLAS_NUM_THREADS=n)
    pin = ["taskset", "-c", ",".join(str(i) for i in range(threads))]
    for _ in range(args.reps):
        for system, argv in [("netc", [exe]), ("torch", [sys.executable, str(ROOT / "bench/peer_torch_batched.py")])]:
            out = subprocess.run(pin + argv, env=env, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            for line in out.splitlines():
                r = json.loads(line)
                key = (threads, r["shape"], system)
                rows.setdefault(key, []).append((r["forward_ms"], r["backward_ms"]))

print("| shape | threads | netc fwd ms | torch fwd ms | netc / torch | netc bwd ms | torch bwd ms | netc / torch |")
print("|---|---|---|---|---|---|---|---|")
for (threads, shape, system) in sorted(k for k in rows if k[2] == "netc"):
    net = rows[(threads, shape, "netc")]
    tor = rows[(threads, shape, "torch")]
    nf, nb = statistics.median(r[0] for r in net), statistics.median(r[1] for r in net)
    tf, tb = statistics.median(r[0] for r in tor), statistics.median(r[1] for r in tor)
    print(f"| {shape} | {threads} | {nf:.3f} | {tf:.3f} | {nf / tf:.2f} | {nb:.3f} | {tb:.3f} | {nb / tb:.2f} |")
