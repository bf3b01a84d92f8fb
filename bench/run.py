"""The issue #8 suite in one go: builds netc (release), writes the shared data and weights,
runs every workload on netc and its peers at 1 and 2 threads, each as separate processes
(--reps of them, interleaved), and prints per workload each system's median, the ratio
netc / best peer beside its target, and GFLOP/s as a fraction of the machine's ceiling.

Usage: bench/.venv/bin/python bench/run.py [--reps 3] [--threads 1,2] [--only w1,w2,...] [--report]
Raw records go to bench/results.json; --report prints its tables again.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NETC = os.environ.get("NETC_BIN", str(ROOT / "target/release/netc"))  # a frozen copy, if given
CEILING = 100.0  # GFLOP/s per core, the machine's rough fp32 peak

SYSTEMS = {
    "w1": ["netc", "jax", "numpy", "torch"],
    "w2": ["netc", "numpy", "jax", "torch"],
    "w3": ["netc", "jax", "torch"],
    "w5": ["netc", "jax", "torch"],
    "w7": ["netc", "jax", "torch"],
    "w8": ["netc"],
    "w9": ["netc", "jax", "torch"],
    "w10": ["netc", "jax", "torch"],
    "w11": ["netc", "jax", "torch"],
    "w12": ["netc", "torch"],
    "w13": ["netc"],
}
NETS = {"w1": "bench/w1_spiral.net", "w2": "examples/mlp.net", "w3": "examples/cifar_cnn.net",
        "w5": "bench/w5_digits_cnn.net", "w7": "examples/alexnet.net", "w9": "bench/w9_bn_cnn.net",
        "w10": "bench/w10_transformer.net", "w11": "bench/w11_lstm.net"}
DEEP = [10, 100, 1000, 2000, 5000, 10000]
# W13: compile time of W11's train step at these sequence lengths (bench/deep/lstm_T.net).
LENGTHS = [16, 100, 1000]


def write_lstm_lengths():
    """bench/deep/lstm_T.net: W11 with T steps instead of 64."""
    text = (HERE / "w11_lstm.net").read_text()
    (HERE / "deep").mkdir(exist_ok=True)
    for t in LENGTHS:
        (HERE / "deep" / f"lstm_{t}.net").write_text(text.replace("[B, 64, 128]", f"[B, {t}, 128]"))


def commands(system, w):
    """(label, argv) of each process of one workload on one system."""
    if system != "netc":
        return [(w, [sys.executable, f"bench/peer_{system}.py", w])]
    if w == "w12":
        out = common.DATA / "w12_out_netc.npy"
        return [(w, [NETC, "predict", NETS["w2"], "--load", "bench/data/w2_init.safetensors",
                     "--input", "bench/data/w12_x.npy", "-o", str(out), "--batch", str(common.W12_BATCH), "--json"])]
    if w == "w8":
        return [(f"w8_{n}", [NETC, "bench", f"bench/deep/mlp_{n}.net", "--compile-only", "--json"]) for n in DEEP]
    if w == "w13":
        return [(f"w13_{t}", [NETC, "bench", f"bench/deep/lstm_{t}.net", "--compile-only", "--json"]) for t in LENGTHS]
    load = ["--load", f"bench/data/{w}_init.safetensors", "--json"]
    if w in ("w1", "w5"):
        return [(w, [NETC, "run", NETS[w], *load])]
    steps, warmup = common.STEPS[w]
    return [(w, [NETC, "bench", NETS[w], *load, "--steps", str(steps), "--warmup", str(warmup)])]


def environment(system, threads):
    n = str(threads)
    env = dict(os.environ, BENCH_THREADS=n, MATMUL_NUM_THREADS=n, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n,
               OPENBLAS_NUM_THREADS=n)
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if system == "numpy":  # they select an old, slow OpenBLAS kernel on this machine
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    return env


def run(argv, system, threads):
    """One process pinned to `threads` cores; its JSON line plus its wall time."""
    pin = ["taskset", "-c", ",".join(str(i) for i in range(threads))]
    t = time.perf_counter()
    p = subprocess.run(pin + argv, cwd=ROOT, env=environment(system, threads), capture_output=True, text=True)
    wall = time.perf_counter() - t
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        print(f"  FAILED ({p.returncode}): {' '.join(argv)}\n{p.stderr[-2000:]}", file=sys.stderr)
        return None
    rec = json.loads(lines[-1])
    rec["wall_s"] = wall
    if "forward_seconds" in rec:  # netc predict
        rec["forward_s"] = rec["forward_seconds"]
    if "first_step_ms" in rec:
        rec["first_step_s"] = rec["first_step_ms"] / 1e3
    return rec


def median(recs, key):
    vals = [r[key] for r in recs if r and r.get(key) is not None]
    return common.median(vals) if vals else None


def versions():
    v = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
         "cores": os.cpu_count(), "python": platform.python_version()}
    v["netc"] = subprocess.run([NETC, "--version"], capture_output=True, text=True).stdout.strip()
    v["rustc"] = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    for name in ("jax", "torch", "numpy"):
        v[name] = subprocess.run([sys.executable, "-c", f"import {name}; print({name}.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
    cpu = [l for l in open("/proc/cpuinfo") if l.startswith("model name")]
    v["cpu"] = cpu[0].split(":", 1)[1].strip() if cpu else "?"
    return v


# Rows of the table: (workload, label, metric, target on netc / peer, which peer (None: the
# best), limit in MiB).
ROWS = [
    ("w1", "W1 spiral 10k steps, process wall s", "wall_s", 0.25, None, None),
    ("w1", "W1 train accuracy", "train_accuracy", None, None, None),
    ("w2", "W2 MLP train step ms", "step_ms_median", 1.0, None, None),
    ("w2", "W2 MLP inference ms/batch", "infer_ms_median", None, None, None),
    ("w3", "W3 CNN train step ms", "step_ms_median", 1.0, None, None),
    ("w3", "W3 CNN train step ms, vs JAX", "step_ms_median", 1 / 1.5, "jax", None),
    ("w3", "W3 CNN inference ms/batch", "infer_ms_median", None, None, None),
    ("w2", "W4 W2 process start to 1st step s, vs JAX", "first_step_s", 1 / 30, "jax", None),
    ("w3", "W4 W3 process start to 1st step s, vs JAX", "first_step_s", 1 / 30, "jax", None),
    ("w5", "W5 digits CNN 20 epochs, wall s, vs PyTorch", "wall_s", 1 / 3, "torch", None),
    ("w5", "W5 test accuracy", "test_accuracy", None, None, None),
    ("w2", "W6 W2 peak RSS MiB", "peak_rss_mib", None, None, 64),
    ("w3", "W6 W3 peak RSS MiB", "peak_rss_mib", None, None, 64),
    ("w7", "W7 AlexNet train step ms, vs PyTorch", "step_ms_median", 1 / 1.5, "torch", None),
    ("w7", "W7 AlexNet train step CPU ms (all threads), vs PyTorch", "step_cpu_ms_median", 1 / 1.5, "torch", None),
    ("w7", "W7 AlexNet 1st step s", "first_step_s", None, None, None),
    ("w7", "W6/W7 AlexNet peak RSS MiB", "peak_rss_mib", None, None, 512),
    ("w7", "W7 netc peak RSS before inference MiB", "peak_rss_train_mib", None, None, 512),
    ("w9", "W9 BN + dropout CNN train step ms, vs PyTorch", "step_ms_median", 1.0, "torch", None),
    ("w9", "W9 BN + dropout CNN inference ms/batch", "infer_ms_median", None, None, None),
    ("w10", "W10 transformer block train step ms (batch 32, T=64, width 128)", "step_ms_median", 1.0, None, None),
    ("w10", "W10 transformer block train step CPU ms (all threads)", "step_cpu_ms_median", 1.0, None, None),
    ("w10", "W10 transformer inference ms/batch", "infer_ms_median", None, None, None),
    ("w10", "W10 peak RSS MiB", "peak_rss_mib", None, None, None),
    ("w11", "W11 LSTM T=64 train step ms (batch 32)", "step_ms_median", 1.0, None, None),
    ("w11", "W11 LSTM inference ms/batch", "infer_ms_median", None, None, None),
    ("w11", "W11 peak RSS MiB", "peak_rss_mib", None, None, None),
    ("w12", "W12 predict mlp.net, 10k samples, process wall s", "wall_s", 1.0, None, None),
    ("w12", "W12 predict mlp.net, forward pass over 10k samples s", "forward_s", 1.0, None, None),
]
PEERS = ["jax", "torch", "numpy"]


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def table(results, threads, flops):
    """Markdown table of one thread count."""
    out = [f"\n### {threads} thread(s)\n",
           "| workload | netc | jax | torch | numpy | netc / peer | target | met | netc GFLOP/s (of ceiling) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for w, label, key, target, vs, limit in ROWS:
        if not results.get((w, "netc", threads)):
            continue
        med = {s: median(results.get((w, s, threads), []), key) for s in ["netc"] + PEERS}
        peers = [v for s, v in med.items() if s != "netc" and v is not None and vs in (None, s)]
        best = min(peers) if peers else None
        ratio = med["netc"] / best if med["netc"] and best and "accuracy" not in key else None
        met, tgt = None, ""
        if limit and med["netc"] is not None:
            met, tgt = med["netc"] <= limit, f"<= {limit} MiB"
        elif target and ratio is not None:
            met, tgt = ratio <= target, f"<= {target:.3g}"
        gf = ""
        if key == "step_ms_median" and med["netc"] and w in flops:
            g = flops[w] / (med["netc"] * 1e6)
            gf = f"{g:.1f} ({g / (CEILING * threads):.0%})"
        elif key in ("wall_s", "forward_s") and w == "w12" and med["netc"]:
            g = flops[w] / med["netc"] / 1e9
            gf = f"{g:.1f} ({g / (CEILING * threads):.0%}), {common.W12_SAMPLES / med['netc']:.3g} samples/s"
        elif key == "wall_s" and w in flops:
            recs = results.get((w, "netc", threads), [])
            secs = median(recs, "seconds")
            if secs:
                g = flops[w] * median(recs, "steps") / secs / 1e9
                gf = f"{g:.1f} ({g / (CEILING * threads):.0%}), loop {secs:.2f} s"
        out.append(f"| {label} | " + " | ".join(fmt(med[s]) for s in ["netc"] + PEERS)
                   + f" | {fmt(ratio)} | {tgt} | {'' if met is None else 'yes' if met else 'NO'} | {gf} |")
    return "\n".join(out)


def w8_table(results):
    """Linear means: ms per layer within ±30% from 100 to 10,000 layers. The CPU time is shown
    beside the wall clock, which a loaded machine inflates."""
    out = ["\n### W8 compile scaling (netc, deep MLPs of width 64)\n",
           "| layers | check ms | compile train step ms | compile inference ms | process start to compiled ms "
           "| ms per layer | CPU ms | CPU ms per layer |",
           "|---|---|---|---|---|---|---|---|"]
    for n in DEEP:
        recs = results.get((f"w8_{n}", "netc", 1), [])
        total, cpu = median(recs, "total_ms"), median(recs, "total_cpu_ms")
        out.append(f"| {n} | {fmt(median(recs, 'check_ms'))} | {fmt(median(recs, 'compile_step_ms'))} | "
                   f"{fmt(median(recs, 'compile_infer_ms'))} | {fmt(total)} | {fmt(total / n if total else None)} "
                   f"| {fmt(cpu)} | {fmt(cpu / n if cpu else None)} |")
    return "\n".join(out)


def w13_table(results):
    out = ["\n### W13 compile time of the LSTM train step against the sequence length (netc, W11's model)\n",
           "| steps T | compile train step ms | compile inference ms | Cranelift instructions of the step | step GFLOP |",
           "|---|---|---|---|---|"]
    for t in LENGTHS:
        recs = results.get((f"w13_{t}", "netc", 1), [])
        out.append(f"| {t} | {fmt(median(recs, 'compile_step_ms'))} | {fmt(median(recs, 'compile_infer_ms'))} | "
                   f"{fmt(median(recs, 'clif_insts_step'))} | {fmt(median(recs, 'step_gflop'))} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3, help="processes per workload, system and thread count")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--only", default=",".join(SYSTEMS), help="workloads, e.g. w2,w3")
    ap.add_argument("--report", action="store_true", help="only print the tables of bench/results.json")
    args = ap.parse_args()
    if args.report:
        return report(json.load(open(HERE / "results.json")))
    threads = [int(t) for t in args.threads.split(",")]
    only = args.only.split(",")

    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "bench/gen.py", NETC], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "bench/gen_deep_mlp.py", *map(str, DEEP)], cwd=ROOT, check=True)
    write_lstm_lengths()
    # FLOPs of one train step of each workload at its batch size, counted by netc: the products
    # the step executes (the forward ones and the backward ones it needs).
    flops = {}
    for w, net in NETS.items():
        out = subprocess.run([NETC, "bench", net, "--compile-only", "--json"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        flops[w] = json.loads(out)["step_gflop"] * 1e9
    flops["w5"] *= 1500 / 32 / 47  # 47 batches per epoch, the last of 28 samples
    # W12: the forward products of mlp.net over every sample (netc counts them at batch 128).
    out = subprocess.run([NETC, "bench", NETS["w2"], "--compile-only", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    flops["w12"] = json.loads(out)["forward_gflop"] * 1e9 * common.W12_SAMPLES / common.SHAPES["w2"][0]

    results = {}
    for rep in range(args.reps):
        for t in threads:
            for w in only:
                for system in SYSTEMS[w]:
                    if w in ("w8", "w13") and t != threads[0]:
                        continue  # compiling is single-threaded
                    for label, argv in commands(system, w):
                        print(f"rep {rep + 1}/{args.reps}, {t} thread(s): {label} {system}", file=sys.stderr)
                        rec = run(argv, system, t)
                        results.setdefault((label, system, 1 if w in ("w8", "w13") else t), []).append(rec)
    saved = {"info": versions(), "reps": args.reps, "threads": threads, "flops": flops, "flops_per": "step",
             "records": [{"workload": k[0], "system": k[1], "threads": k[2], "runs": v} for k, v in results.items()]}
    with open(HERE / "results.json", "w") as f:
        json.dump(saved, f, indent=1)
    report(saved)


def report(saved):
    """Print the tables of a run (`saved` as written to results.json)."""
    info = saved["info"]
    results = {(r["workload"], r["system"], r["threads"]): r["runs"] for r in saved["records"]}
    print(f"\n## Results {info['date']}\n")
    print(", ".join(f"{k} {v}" for k, v in info.items() if k != "date"))
    print(f"\nMedians of {saved['reps']} processes per cell. netc / peer: against the best peer unless the row "
          f"names one; < 1 means netc is faster. GFLOP/s count the matmul/conv FLOPs a train step executes; "
          f"ceiling {CEILING:.0f} GFLOP/s per thread.")
    for t in saved["threads"]:
        # Runs before step FLOPs were counted stored forward FLOPs (a step was taken as 3x those).
        per_step = 1 if saved.get("flops_per") == "step" else 3
        print(table(results, t, {w: per_step * f for w, f in saved["flops"].items()}))
    if any(k[0].startswith("w8") for k in results):
        print(w8_table(results))
    if any(k[0].startswith("w13") for k in results):
        print(w13_table(results))

if __name__ == "__main__":
    main()
