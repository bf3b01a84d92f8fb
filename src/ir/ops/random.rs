//! Randomness: the counter-based generator behind `RandomUniform` (dropout masks, `rand_like`).
//!
//! A counter-based generator computes the i-th number of a stream directly as a function of a
//! key and of i, with no state carried from one number to the next (Salmon et al., "Parallel
//! random numbers: as easy as 1, 2, 3", SC 2011). So an element's value does not depend on
//! which thread computes it or in which order, and the interpreter, the JIT and object files
//! give the same bits. The function is Threefry-2x32 with 20 rounds, as JAX uses (add, rotate
//! and xor on 32-bit words, which vectorise as i32x4 in generated code).
//!
//! Keys, as a training run derives them:
//! - the run key is (seed mod 2³², seed div 2³²);
//! - the step key is threefry(run key, (step mod 2³², step div 2³²));
//! - the stream key of a `RandomUniform { stream }` node is threefry(step key, (stream, 0));
//! - element i (row-major) is u = (w >> 8) · 2⁻²⁴ where (w, _) = threefry(stream key,
//!   (i mod 2³², i div 2³²)): 24 random bits, so u is exact in f32 and f64 and lies in [0, 1).
//!
//! The seed and step reach the graph as one input of kind `RandomKey` holding eight 16-bit
//! pieces (`key`), since floats represent those exactly in both precisions.

use crate::ir::graph::NodeId;
use crate::ir::tensor::Tensor;

use super::Grads;

/// Elements of the `RandomKey` input: the seed and the step, each as four 16-bit pieces,
/// least significant first.
pub const KEY_LEN: usize = 8;

/// Rotation distances of Threefry-2x32, rounds 0..8 (repeated).
pub const ROTATIONS: [u32; 8] = [13, 15, 26, 6, 17, 29, 16, 24];

/// The key schedule's parity constant (Skein's C240).
pub const PARITY: u32 = 0x1BD1_1BDA;

/// Threefry-2x32 with 20 rounds: 5 groups of 4 rounds, the key schedule injected before the
/// first group and after each (Random123's `threefry2x32`, JAX's `threefry_2x32`).
pub fn threefry2x32(key: [u32; 2], counter: [u32; 2]) -> [u32; 2] {
    let ks = [key[0], key[1], key[0] ^ key[1] ^ PARITY];
    let (mut x0, mut x1) = (counter[0].wrapping_add(ks[0]), counter[1].wrapping_add(ks[1]));
    for group in 0..5 {
        for r in 0..4 {
            x0 = x0.wrapping_add(x1);
            x1 = x1.rotate_left(ROTATIONS[(group % 2) * 4 + r]);
            x1 ^= x0;
        }
        let s = group + 1;
        x0 = x0.wrapping_add(ks[s % 3]);
        x1 = x1.wrapping_add(ks[(s + 1) % 3]).wrapping_add(s as u32);
    }
    [x0, x1]
}

/// The `RandomKey` input of a run with `seed` at `step`.
pub fn key(seed: u64, step: u64) -> Tensor {
    let pieces = |v: u64| (0..4).map(move |k| ((v >> (16 * k)) & 0xffff) as f64);
    Tensor::new(vec![KEY_LEN], pieces(seed).chain(pieces(step)).collect())
}

/// The key of `stream` for the seed and step that a `RandomKey` tensor holds.
pub fn stream_key(key: &Tensor, stream: u32) -> Result<[u32; 2], String> {
    if key.data.len() != KEY_LEN || key.data.iter().any(|&p| !(0.0..65536.0).contains(&p) || p.fract() != 0.0) {
        return Err(format!("a random key is {KEY_LEN} whole numbers in [0, 65536), not {:?}", key.data));
    }
    let word = |i: usize| key.data[i] as u32 | (key.data[i + 1] as u32) << 16;
    let step_key = threefry2x32([word(0), word(2)], [word(4), word(6)]);
    Ok(threefry2x32(step_key, [stream, 0]))
}

/// Element i of a stream: 24 random bits scaled into [0, 1).
pub fn uniform(stream_key: [u32; 2], i: u64) -> f64 {
    let [w, _] = threefry2x32(stream_key, [i as u32, (i >> 32) as u32]);
    (w >> 8) as f64 * (1.0 / (1u32 << 24) as f64)
}

/// y[i] = uniform(stream key, i) over `shape`   no gradient (the key is an input)
pub fn random_uniform_eval(key: &Tensor, stream: u32, shape: &[usize]) -> Result<Tensor, String> {
    let k = stream_key(key, stream)?;
    let n: usize = shape.iter().product();
    Ok(Tensor::new(shape.to_vec(), (0..n as u64).map(|i| uniform(k, i)).collect()))
}

pub(super) fn random_uniform_vjp(_x: &[NodeId]) -> Grads {
    Ok(vec![None])
}
