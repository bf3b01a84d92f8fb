//! The allreduce of a data-parallel step alone: `Collective::sum_f32` over MPI for each
//! algorithm (ring, gather, MPI's own) and buffer sizes from one float to AlexNet's gradients,
//! so the latency and bandwidth of the cost model in docs/distributed.md can be fitted:
//!
//! ```sh
//! cargo bench --features mpi --bench allreduce --no-run     # prints the executable's path
//! mpirun -np 2 --bind-to core target/release/deps/allreduce-HASH [--max FLOATS]
//! ```
//!
//! Rank 0 prints one line per size and algorithm: the best and the median time of the
//! repetitions, and the bus bandwidth 2(p−1)/p · bytes / time (what each link carries in a
//! ring, NCCL's `busbw`).

use std::time::Instant;

use netc::runtime::collective::{Algorithm, Collective};
use netc::runtime::mpi::Mpi;

fn main() {
    let max: usize =
        std::env::args().skip_while(|a| a != "--max").nth(1).and_then(|v| v.parse().ok()).unwrap_or(64 << 20);
    let mut mpi = Mpi::init(Algorithm::Ring).expect("MPI");
    let (rank, p) = (mpi.rank(), mpi.size());
    // Powers of ten, and the gradient buffers of the examples (floats: parameters + 3).
    let mut sizes: Vec<(String, usize)> =
        [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000].iter().map(|&n| (n.to_string(), n)).collect();
    sizes.extend([("cifar_cnn".into(), 25_581), ("mlp".into(), 269_325), ("alexnet".into(), 62_378_347)]);
    sizes.retain(|(_, n)| *n <= max);
    if rank == 0 {
        println!("{p} ranks; floats  algorithm  best_ms  median_ms  busbw_GB/s");
    }
    for (name, n) in sizes {
        let mut buf: Vec<f32> = (0..n).map(|i| (i % 7) as f32 + rank as f32).collect();
        for algorithm in [Algorithm::Ring, Algorithm::Gather, Algorithm::Mpi] {
            mpi.set_algorithm(algorithm);
            let reps = (200_000_000 / n.max(1)).clamp(3, 200);
            let mut times = Vec::with_capacity(reps);
            for rep in 0..=reps {
                let started = Instant::now();
                mpi.sum_f32(&mut buf);
                // (Values grow by p each time; sizes stay exact well past these repetitions.)
                if rep > 0 {
                    times.push(started.elapsed().as_secs_f64());
                }
            }
            // The slowest rank's time is the step's: take each repetition's maximum.
            let mine: Vec<u8> = times.iter().flat_map(|t| t.to_le_bytes()).collect();
            let all = mpi.all_gather_bytes(&mine);
            let at = |b: &Vec<u8>, i: usize| f64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap());
            let mut worst: Vec<f64> =
                (0..times.len()).map(|i| all.iter().map(|b| at(b, i)).fold(0.0, f64::max)).collect();
            worst.sort_by(f64::total_cmp);
            if rank == 0 {
                let (best, median) = (worst[0], worst[worst.len() / 2]);
                let busbw = 2.0 * (p - 1) as f64 / p as f64 * 4.0 * n as f64 / best / 1e9;
                println!(
                    "{name:>10} {n:>10}  {:<6}  {:>9.4}  {:>9.4}  {busbw:>8.2}",
                    algorithm.name(),
                    best * 1e3,
                    median * 1e3
                );
            }
        }
    }
}
