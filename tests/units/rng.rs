//! Moved from `src/runtime/rng.rs`'s unit tests.

use netc::runtime::rng::*;

#[test]
fn splitmix64_matches_the_reference_stream() {
    // First outputs of the reference C implementation seeded with 0.
    let mut state = 0;
    assert_eq!(splitmix64(&mut state), 0xE220_A839_7B1D_CDAF);
    assert_eq!(splitmix64(&mut state), 0x6E78_9E6A_A1B9_65F4);
}

#[test]
fn same_seed_same_stream_different_seed_different_stream() {
    let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
    let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
    let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
    assert_eq!(xs, ys);
    assert_ne!(xs, zs);
}

#[test]
fn uniform_and_normal_have_the_right_moments() {
    let mut rng = Rng::new(1);
    let n = 100_000;
    let us: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
    assert!(us.iter().all(|&u| (0.0..1.0).contains(&u)));
    let mean = us.iter().sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.01, "uniform mean {mean}");
    let zs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let mean = zs.iter().sum::<f64>() / n as f64;
    let var = zs.iter().map(|z| (z - mean) * (z - mean)).sum::<f64>() / n as f64;
    assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "normal mean {mean} var {var}");
}

#[test]
fn below_stays_in_range_and_shuffle_permutes() {
    let mut rng = Rng::new(3);
    let mut seen = [0usize; 7];
    for _ in 0..7000 {
        seen[rng.below(7) as usize] += 1;
    }
    assert!(seen.iter().all(|&k| k > 800), "{seen:?}");
    let mut v: Vec<usize> = (0..50).collect();
    rng.shuffle(&mut v);
    assert_ne!(v, (0..50).collect::<Vec<_>>());
    v.sort();
    assert_eq!(v, (0..50).collect::<Vec<_>>());
}
