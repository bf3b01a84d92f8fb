//! Moved from `src/training/parallel.rs`'s unit tests.

use netc::training::Counter;

use netc::training::parallel::*;

#[test]
fn every_step_and_rank_has_its_own_random_key() {
    let at = |step, rank, ranks| shard_counter(Counter { seed: 9, step }, rank, ranks);
    assert_eq!(at(7, 0, 1), Counter { seed: 9, step: 7 }, "one rank draws what one process does");
    let mut seen = std::collections::HashSet::new();
    for step in 0..50 {
        for rank in 0..3 {
            assert!(seen.insert(at(step, rank, 3).key_f32().map(f32::to_bits)), "step {step} rank {rank}");
        }
    }
}
