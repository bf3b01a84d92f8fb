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
    """Code of each `netc_graph` function (train step first, then inference): (address, size, file)."""
    funcs = []
    for line in open(f"/tmp/perf-{pid}.map"):
        addr, size, name = line.split()
        if name == "netc_graph":
            a, s = int(addr, 16), int(size, 16)
            with open(f"/proc/{pid}/mem", "rb") as mem:
                mem.seek(a)
                path = Path(out) / f"{addr}.bin"
                path.write_bytes(mem.read(s))
            funcs.append((a, s, path))
    return funcs


def category(ip, sym, dso, funcs):
    for i, (a, s, _) in enumerate(funcs[:2]):
        if a <= ip < a + s:
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
            if m.exists() and m.read_text().count("netc_graph\n") >= 2:
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
    step_lo, step_hi = funcs[0][0], funcs[0][0] + funcs[0][1]
    end = max(t for t, ip, _, _ in samples if step_lo <= ip < step_hi)
    train = [s for s in samples if s[0] <= end]
    cats = collections.Counter(category(ip, sym, dso, funcs) for _, ip, sym, dso in train)
    print(f"training phase: {len(train)} samples")
    for c, n in cats.most_common():
        print(f"  {n / len(train):6.1%}  {c}")

    blocks = collections.Counter((ip - step_lo) // 64 * 64 for _, ip, _, _ in train if step_lo <= ip < step_hi)
    asm = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", str(funcs[0][2])], capture_output=True,
                         text=True).stdout.splitlines()
    print(f"\nhottest 64-byte blocks of the train step's code (offsets; code in {funcs[0][2]}):")
    for off, n in blocks.most_common(args.top):
        body = [l.split("\t")[2].strip() for l in asm if l.count("\t") >= 2 and l.split(":")[0].strip() in
                {f"{o:x}" for o in range(off, off + 64)}]
        print(f"  {off:#6x} {n / len(train):6.1%}  " + "; ".join(body)[:220])


if __name__ == "__main__":
    main()
