#!/usr/bin/env bash
# Data-parallel timings of docs/distributed.md: for mlp.net and cifar_cnn.net, one process
# (the fused step, and the split step on 1 MPI rank) against 2 ranks on loopback, each rank
# pinned to one core (`--bind-to core`) and running its GEMMs on one thread; then the split
# step alone at smaller batches (the per-sample compute the cost model needs). Needs
# `cargo build --release --features mpi` and Open MPI.
#
#   bash bench/distributed.sh [STEPS_MLP] [STEPS_CNN]    # prints each run's --stats lines
#   NETC=target/debug/netc bash bench/distributed.sh     # another build of netc
set -euo pipefail
cd "$(dirname "$0")/.."
netc=${NETC:-target/release/netc}
steps_mlp=${1:-400}
steps_cnn=${2:-100}
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to core -x MATMUL_NUM_THREADS=1)
export MATMUL_NUM_THREADS=1

stats() { grep -E "per step|each step sums|^trained" || true; }

for spec in "examples/mlp.net $steps_mlp 128" "examples/cifar_cnn.net $steps_cnn 32"; do
    read -r file steps batch <<<"$spec"
    echo "== $file, $steps steps, batch $batch; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "-- one process, fused step (taskset -c 0)"
    start=$(date +%s.%N)
    taskset -c 0 "$netc" run "$file" --steps "$steps" --distributed off --stats 2>&1 | stats
    echo "wall $(echo "$(date +%s.%N) - $start" | bc) s"
    for np in 1 2; do
        echo "-- $np rank(s), split step"
        start=$(date +%s.%N)
        "${mpi[@]}" -np "$np" "$netc" run "$file" --steps "$steps" --stats 2>&1 | stats
        echo "wall $(echo "$(date +%s.%N) - $start" | bc) s"
    done
    for b in $((batch / 2)) $((batch / 4)); do
        echo "-- 1 rank, batch $b"
        "${mpi[@]}" -np 1 "$netc" run "$file" --steps "$steps" --batch "$b" --stats 2>&1 | stats
    done
done
