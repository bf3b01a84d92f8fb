"""Time `netc repl` on generated sessions of N lines (issue #23: the REPL re-checked the whole
session on each line; 6000 lines took 27 s).

Three sessions, each N lines piped to one `netc repl` process:
- independent: lets, expressions and small functions that use only the line before them
  (a calculator session: `let a7 = [7, 1, 2]`, then `sum(a7 * 2)`, `fn f7(x) = x * 7`, `f7(a7)`);
- models: every 10th line defines a model of two dense layers, the others call it, define
  lets and functions and evaluate expressions of the recent ones; a data block at the start
  (part of every program);
- chain: `let a_i = a_{i-1} + 1`, each let using the one before: every line needs the whole
  chain. Its values are whole numbers: the checker takes them for integers, and the cache of
  let values keeps them as integer literals (before, it did not cache whole numbers at all,
  and each line checked the whole chain: quadratic);
- float_chain: `let a_i = a_{i-1} * 0.5 + 0.7`: the same chain of floats, cut by the cache of
  let values (each line checks at most 32 lets' expressions);
- counter: `let n = n + 1`, one name bound again and again (whole numbers, as chain).

Linear means lines per second independent of the session's length: run
`--lines 1000,2000,4000,8000 --kinds chain,counter,float_chain`.

Usage: bench/.venv/bin/python bench/repl_session.py [--lines 6000] [--kinds independent,models,float_chain,chain,counter]
Prints one JSON line per session: lines, wall seconds, CPU seconds of the netc process, ms per
line, lines per second (wall and CPU; the CPU figure is the one a loaded machine does not distort).
"""
import argparse
import json
import os
import resource
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETC = os.environ.get("NETC_BIN", str(ROOT / "target/release/netc"))


def independent(n):
    lines = []
    i = 0
    while len(lines) < n:
        lines += [f"let a{i} = [{i}, 1, 2]", f"sum(a{i} * 2)", f"fn f{i}(x) = x * {i}", f"f{i}(a{i})"]
        i += 1
    return lines[:n]


def models(n):
    lines = ["data d { source: synthetic(samples: 8, classes: 3, seed: 0) }"]
    i = 0
    while len(lines) < n:
        lines += [f"model m{i}(x: [B, 3]) -> y: [B, 3] {{ x |> dense(8) |> relu |> dense(3) }}",
                  f"let v{i} = [[{i}, 2, 3]]", f"m{i}(v{i})", f"let w{i} = v{i} * 3", f"sum(w{i})",
                  f"fn g{i}(x) = tanh(x) * {i}", f"g{i}(w{i})", f"mean(v{i} @ [[1], [2], [3]])",
                  f"v{i} + w{i}", f"softmax(w{i})"]
        i += 1
    return lines[:n]


def chain(n):
    return ["let a0 = [1, 2, 3]"] + [f"let a{i} = a{i - 1} + 1" for i in range(1, n - 1)] + [f"a{n - 2}"]


def float_chain(n):
    return ["let a0 = [0.1, 0.2, 0.3]"] + [f"let a{i} = a{i - 1} * 0.5 + 0.7" for i in range(1, n - 1)] + [f"a{n - 2}"]


def counter(n):
    return ["let n = 0"] + ["let n = n + 1"] * (n - 2) + ["n"]


def run(lines):
    text = "\n".join(lines) + "\n"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([NETC, "repl"], input=text, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    errors = p.stderr.count("Error")
    return wall, cpu, errors, p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", default="6000")
    ap.add_argument("--kinds", default="independent,models,float_chain,chain")
    args = ap.parse_args()
    for kind in args.kinds.split(","):
        for n in [int(x) for x in args.lines.split(",")]:
            lines = {"independent": independent, "models": models, "chain": chain, "float_chain": float_chain,
                     "counter": counter}[kind](n)
            wall, cpu, errors, code = run(lines)
            print(json.dumps({"session": kind, "lines": len(lines), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                              "ms_per_line": round(1e3 * wall / len(lines), 3), "lines_per_s": round(len(lines) / wall),
                              "cpu_lines_per_s": round(len(lines) / cpu), "errors": errors, "exit": code}),
                  flush=True)


if __name__ == "__main__":
    main()
