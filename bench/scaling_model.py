#!/usr/bin/env python3
"""Predicted data-parallel scaling of netc's examples from the ring-allreduce cost model
(docs/distributed.md). No dependencies: `python3 bench/scaling_model.py`.

A step on p ranks takes  T(p) = compute(per-rank batch) + allreduce(p), with the ring
allreduce (reduce-scatter + allgather, what `NETC_ALLREDUCE=ring` does) costing

    allreduce(p) = 2(p-1)/p * bytes / bandwidth + 2(p-1) * latency

and no overlap of communication with the backward (netc reduces one buffer after it).
Compute is linear in the per-rank batch n, fitted on this machine as a + b*n (one core).
"""

# Gradient buffer of each example: parameters (f32) + 3 floats of loss, sample count, stop vote.
PARAMS = {"mlp": 269_322, "cifar_cnn": 25_578, "alexnet": 62_378_344}

# Per-step compute on one core of this machine, a + b*n ms for a per-rank batch of n samples
# (filled from the measurements in docs/distributed.md).
# mlp and cifar_cnn: the split step (gradients + update) on 1 rank at the file's batch, 1/2
# and 1/4 of it (bench/distributed.sh); alexnet: RESULTS.md's W7 step, 750 ms at batch 8 on
# one thread, taken as proportional to the batch.
COMPUTE_MS = {
    "mlp": (1.5, 0.044),
    "cifar_cnn": (0.0, 1.9),
    "alexnet": (0.0, 750 / 8),
}

# The file's batch of each example (the global batch of a strong-scaling run, the per-rank
# batch of a weak-scaling one).
BATCH = {"mlp": 128, "cifar_cnn": 32, "alexnet": 8}

# Networks: usable bandwidth (bytes/s) and per-message latency (s).
NETWORKS = {
    "25 GbE (TCP)": (25e9 / 8 * 0.9, 15e-6),
    "100 Gb IB (EDR)": (100e9 / 8 * 0.95, 1.5e-6),
}


def allreduce_s(p, nbytes, bandwidth, latency):
    if p == 1:
        return 0.0
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * latency


def compute_s(name, n):
    a, b = COMPUTE_MS[name]
    return (a + b * n) / 1e3


def table(scaling):
    print(f"\n{scaling} scaling")
    print("| model | network | ranks | per-rank batch | compute ms | allreduce ms | step ms | efficiency |")
    print("|---|---|---|---|---|---|---|---|")
    for name in PARAMS:
        nbytes = 4 * (PARAMS[name] + 3)
        for net, (bw, lat) in NETWORKS.items():
            for p in (8, 64):
                if scaling == "strong":
                    if BATCH[name] % p:
                        continue
                    n = BATCH[name] // p
                    one = compute_s(name, BATCH[name])
                else:
                    n = BATCH[name]
                    one = compute_s(name, n)
                c = compute_s(name, n)
                r = allreduce_s(p, nbytes, bw, lat)
                step = c + r
                # Efficiency: samples per second on p ranks over p times one rank's.
                if scaling == "strong":
                    eff = one / (p * step)
                else:
                    eff = one / step
                print(f"| {name} | {net} | {p} | {n} | {c*1e3:.3g} | {r*1e3:.3g} | {step*1e3:.3g} | {eff:.0%} |")


if __name__ == "__main__":
    table("strong")
    table("weak")
