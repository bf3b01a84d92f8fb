//! Moved from `src/ir/ops/random.rs`'s unit tests.

use netc::ir::tensor::Tensor;

use netc::ir::ops::random::*;

#[test]
fn threefry_matches_the_known_answers() {
    // Random123's known-answer vectors for threefry2x32_20, which JAX's
    // `jax._src.random.threefry2x32.threefry_2x32` reproduces (checked with jax 0.10.2).
    assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b20_0159, 0x99ba_4efe]);
    assert_eq!(threefry2x32([u32::MAX; 2], [u32::MAX; 2]), [0x1cb9_96fc, 0xbb00_2be7]);
    assert_eq!(threefry2x32([0x1319_8a2e, 0x0370_7344], [0x243f_6a88, 0x85a3_08d3]), [0xc492_3a9c, 0x483d_f7a0]);
    assert_eq!(threefry2x32([1, 2], [3, 4]), [0x5df4_33ec, 0x8617_198e]);
}

#[test]
fn keys_round_trip_through_their_pieces() {
    let k = key(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    assert_eq!(k.data, [0xcdef, 0x89ab, 0x4567, 0x0123, 0x3210, 0x7654, 0xba98, 0xfedc].map(f64::from));
    let direct = threefry2x32(threefry2x32([0x89ab_cdef, 0x0123_4567], [0x7654_3210, 0xfedc_ba98]), [5, 0]);
    assert_eq!(stream_key(&k, 5).unwrap(), direct);
    assert!(stream_key(&Tensor::new(vec![8], vec![0.5; 8]), 0).is_err());
}

#[test]
fn streams_steps_and_seeds_give_different_numbers() {
    let draw = |seed, step, stream| random_uniform_eval(&key(seed, step), stream, &[64]).unwrap().data;
    let base = draw(1, 0, 0);
    assert!(base.iter().all(|&u| (0.0..1.0).contains(&u)));
    assert_eq!(base, draw(1, 0, 0), "the same key gives the same numbers");
    for other in [draw(2, 0, 0), draw(1, 1, 0), draw(1, 0, 1)] {
        assert!(other.iter().zip(&base).filter(|(a, b)| a == b).count() < 2);
    }
}
