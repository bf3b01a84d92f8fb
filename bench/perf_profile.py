"""Where netc's time goes on one workload: `perf record` of `netc bench FILE`, split into the
GEMM micro-kernel, GEMM packing, the generated code of the train step and of inference, the
rest of netc (Rust) and the OS; then the hottest blocks of the generated train step,
disassembled (the JIT code is read from /proc/PID/mem, located by Cranelift's perf map).

Usage: python3 bench/perf_profile.py FILE [--threads 1] [--steps 300]   (needs perf and objdump)
Shares are of the training phase (up to the last sample in train-step code).
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dump_jit(pid, out):
    """Code of the generated functions, in two groups: the train step's (its `netc_graph` and
    the `netc_graph_part*` functions it calls), then inference's. [[(address, size, file)]]."""
    groups = [[], []]
    seen_entry = 0
    parts = []
    for line in open(f"/tmp/perf-{pid}.map"):
        addr, size, name = line.split()
        if not name.startswith("netc_graph"):
            continue
        a, s = int(addr, 16), int(size, 16)
        parts.append((a, s, name))
        if name == "netc_graph":
            # Parts are defined before the entry function that calls them.
            if seen_entry < 2:
                groups[seen_entry] = parts
            seen_entry += 1
            parts = []
    for group in groups:
        for i, (a, s, name) in enumerate(group):
            with open(f"/proc/{pid}/mem", "rb") as mem:
                mem.seek(a)
                path = Path(out) / f"{a:x}.bin"
                path.write_bytes(mem.read(s))
            group[i] = (a, s, path)
    return groups


def category(ip, sym, dso, groups):
    for i, group in enumerate(groups[:2]):
        if any(a <= ip < a + s for a, s, _ in group):
            return ["generated: train step", "generated: inference"][i]
    if "kallsyms" in dso:
        return "OS kernel"
    if "matrixmultiply" in sym:
        return "GEMM packing" if "pack" in sym else "GEMM kernel" if "kernel" in sym else "GEMM other"
    return "netc Rust, libc" if "netc" in dso or "libc" in dso else f"other ({dso})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--steps", default="300")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="netc-profile-")
    data = f"{out}/perf.data"
    netc = [str(ROOT / "target/release/netc"), "bench", args.file, "--threads", args.threads, "--steps", args.steps]
    perf = subprocess.Popen(["perf", "record", "-F", "4000", "-o", data, "--", *netc], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    funcs = []
    while not funcs and perf.poll() is None:
        time.sleep(0.2)
        for pid in subprocess.run(["pgrep", "-P", str(perf.pid)], capture_output=True, text=True).stdout.split():
            m = Path(f"/tmp/perf-{pid}.map")
            if m.exists() and m.read_text().count(" netc_graph\n") >= 2:
                funcs = dump_jit(pid, out)
    print(perf.communicate()[0])
    if not funcs:
        sys.exit("could not read the generated code (no perf map)")

    script = subprocess.run(["perf", "script", "-i", data, "-F", "time,ip,sym,dso"], capture_output=True,
                            text=True).stdout
    samples = []
    for line in script.splitlines():
        p = line.split()
        if len(p) >= 2:
            t, ip = float(p[0].rstrip(":")), int(p[1], 16)
            samples.append((t, ip, " ".join(p[2:-1]), p[-1]))
    step = funcs[0]
    in_step = lambda ip: any(a <= ip < a + n for a, n, _ in step)
    end = max(t for t, ip, _, _ in samples if in_step(ip))
    train = [s for s in samples if s[0] <= end]
    cats = collections.Counter(category(ip, sym, dso, funcs) for _, ip, sym, dso in train)
    print(f"training phase: {len(train)} samples")
    for c, n in cats.most_common():
        print(f"  {n / len(train):6.1%}  {c}")

    blocks = collections.Counter()
    for _, ip, _, _ in train:
        for a, n, path in step:
            if a <= ip < a + n:
                blocks[(path, (ip - a) // 64 * 64)] += 1
    print("\nhottest 64-byte blocks of the train step's code (file, offset):")
    for (path, off), n in blocks.most_common(args.top):
        asm = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", str(path)], capture_output=True,
                             text=True).stdout.splitlines()
        body = [l.split("\t")[2].strip() for l in asm if l.count("\t") >= 2 and l.split(":")[0].strip() in
                {f"{o:x}" for o in range(off, off + 64)}]
        print(f"  {path.name} {off:#6x} {n / len(train):6.1%}  " + "; ".join(body)[:400])


if __name__ == "__main__":
    main()
