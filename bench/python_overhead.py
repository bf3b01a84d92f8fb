"""What the Python module costs over netc itself (issue #21; a benchmark, not a test).

1. `predict` on a batch of 1 and of 128 samples of examples/mlp.net (784-256-256-10): the
   time of one call from Python against the same inference called from Rust
   (`netc bench --batch B`, its `infer_ms_median`). The difference is the call overhead:
   argument parsing, the array checks, the output array, releasing the GIL.
2. `fit` on examples/mlp.net against `netc run`: the step loop's seconds as each reports
   them (`netc run --json` "seconds", `Model.last_fit["seconds"]`), and the wall time of the
   whole call (compile + data + train + evaluate) against the CLI process. Target: within 5%.

Run with release builds of both, in a virtual environment with the module installed:

    cargo build --release
    python3 -m venv /tmp/netc-bench && /tmp/netc-bench/bin/pip install ./python
    /tmp/netc-bench/bin/python bench/python_overhead.py [--reps 5] [--steps 2000] [--threads 1]

It prints a Markdown table (and `--json` one JSON object).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import netc

REPO = Path(__file__).resolve().parents[1]
MLP = REPO / "examples" / "mlp.net"


def cli(netc_bin, argv, env):
    """Run netc with `argv`; its JSON output and the process's wall time."""
    started = time.perf_counter()
    done = subprocess.run([str(netc_bin), *map(str, argv)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"netc {' '.join(map(str, argv))} failed:\n{done.stderr}")
    return json.loads(done.stdout), wall


def rust_infer_ms(netc_bin, env, batch, calls):
    out, _ = cli(netc_bin, ["bench", MLP, "--batch", batch, "--steps", calls, "--json"], env)
    return out["infer_ms_median"]


def python_predict_ms(batch, calls):
    """The median time of one `predict` call, each timed alone (as `netc bench` times each
    inference call, so that a time slice lost to another process spoils one sample, not the
    measurement)."""
    m = netc.compile(MLP)
    x = np.random.default_rng(0).normal(size=(batch, 784)).astype(np.float32)
    for _ in range(50):
        m.predict(x)  # compile, size the workspace, warm the caches
    clock = time.perf_counter_ns
    times = []
    for _ in range(calls):
        started = clock()
        m.predict(x)
        times.append(clock() - started)
    return statistics.median(times) / 1e6


def python_fit(steps):
    started = time.perf_counter()
    m = netc.compile(MLP)
    m.fit(steps=steps, progress=False)
    wall = time.perf_counter() - started
    return m.last_fit["seconds"], wall


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--netc", type=Path, default=REPO / "target" / "release" / "netc")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=2000, help="train steps of the fit comparison")
    p.add_argument("--calls", type=int, default=2000, help="predict calls per measurement")
    p.add_argument("--threads", type=int, default=None, help="GEMM threads (MATMUL_NUM_THREADS) for both")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if not args.netc.exists():
        sys.exit(f"{args.netc} does not exist: run `cargo build --release` first")
    env = dict(os.environ)
    if args.threads:
        env["MATMUL_NUM_THREADS"] = str(args.threads)
        os.environ["MATMUL_NUM_THREADS"] = str(args.threads)
    import warnings

    warnings.simplefilter("ignore")  # mlp.net's MNIST files are absent: its synthetic fallback

    results = {"predict": {}, "fit": {}}
    for batch in (1, 128):
        rust, py = [], []
        for _ in range(args.reps):  # interleaved, so drift in the machine's load hits both
            rust.append(rust_infer_ms(args.netc, env, batch, args.calls))
            py.append(python_predict_ms(batch, args.calls))
        r, q = statistics.median(rust), statistics.median(py)
        results["predict"][batch] = {"rust_ms": r, "python_ms": q, "overhead_us": (q - r) * 1000, "ratio": q / r}

    cli_loop, cli_wall, py_loop, py_wall = [], [], [], []
    for _ in range(args.reps):
        out, wall = cli(args.netc, ["run", MLP, "--steps", args.steps, "--json", "--quiet"], env)
        cli_loop.append(out["seconds"])
        cli_wall.append(wall)
        loop, wall = python_fit(args.steps)
        py_loop.append(loop)
        py_wall.append(wall)
    med = statistics.median
    results["fit"] = {
        "steps": args.steps,
        "cli_loop_s": med(cli_loop),
        "python_loop_s": med(py_loop),
        "loop_ratio": med(py_loop) / med(cli_loop),
        "cli_process_s": med(cli_wall),
        "python_call_s": med(py_wall),
        "wall_ratio": med(py_wall) / med(cli_wall),
    }
    results["threads"] = args.threads or "default"
    results["reps"] = args.reps

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"examples/mlp.net, medians of {args.reps} interleaved runs, threads: {results['threads']}\n")
    print("| predict, batch | Rust (netc bench) | Python predict | overhead per call | Python / Rust |")
    print("|---|---|---|---|---|")
    for batch, r in results["predict"].items():
        print(f"| {batch} | {r['rust_ms'] * 1000:.1f} µs | {r['python_ms'] * 1000:.1f} µs | {r['overhead_us']:.1f} µs | {r['ratio']:.2f} |")
    f = results["fit"]
    print(f"\n| fit, {f['steps']} steps | netc run | Model.fit | Python / CLI |")
    print("|---|---|---|---|")
    print(f"| step loop | {f['cli_loop_s']:.3f} s | {f['python_loop_s']:.3f} s | {f['loop_ratio']:.3f} |")
    print(f"| whole call (process / compile + fit) | {f['cli_process_s']:.3f} s | {f['python_call_s']:.3f} s | {f['wall_ratio']:.3f} |")


if __name__ == "__main__":
    main()
