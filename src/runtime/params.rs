//! Parameter initialisation: each parameter's `Init` drawn from the seeded PRNG, in the order
//! the parameters were declared, so the same file and seed give the same initial weights.

use crate::ir::graph::{Graph, Init, ParamInfo};
use crate::ir::tensor::Tensor;
use crate::runtime::rng::Rng;

/// (fan_in, fan_out) of a parameter: [in, out] for a matrix, [F, C, KH, KW] for filters
/// (fan_in = C·KH·KW, fan_out = F·KH·KW), n for a vector.
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [i, o] => (*i, *o),
        [f, c, rest @ ..] => {
            let field: usize = rest.iter().product();
            (c * field, f * field)
        }
    }
}

pub fn init_param(p: &ParamInfo, rng: &mut Rng) -> Tensor {
    let shape: Vec<usize> = p.shape.iter().map(|d| d.known().unwrap_or(1)).collect();
    let mut data = Vec::with_capacity(shape.iter().product());
    draw(p, rng, |v| data.push(v));
    Tensor::new(shape, data)
}

/// The values of `init_param`, rounded to f32 as they are drawn: no f64 copy of a large model.
pub fn init_param_f32(p: &ParamInfo, rng: &mut Rng) -> Vec<f32> {
    let mut data = Vec::with_capacity(p.shape.iter().map(|d| d.known().unwrap_or(1)).product());
    draw(p, rng, |v| data.push(v as f32));
    data
}

/// Draw every element of `p` from `rng`, in row-major order.
fn draw(p: &ParamInfo, rng: &mut Rng, mut push: impl FnMut(f64)) {
    let shape: Vec<usize> = p.shape.iter().map(|d| d.known().unwrap_or(1)).collect();
    let n: usize = shape.iter().product();
    let (fan_in, fan_out) = fans(&shape);
    match p.init {
        Init::Zeros => (0..n).for_each(|_| push(0.0)),
        Init::Constant(c) => (0..n).for_each(|_| push(c)),
        Init::Normal { std } => (0..n).for_each(|_| push(std * rng.normal())),
        Init::Uniform { low, high } => (0..n).for_each(|_| push(rng.uniform_in(low, high))),
        Init::Xavier => {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
            (0..n).for_each(|_| push(rng.uniform_in(-limit, limit)))
        }
        Init::He => {
            let std = (2.0 / fan_in as f64).sqrt();
            (0..n).for_each(|_| push(std * rng.normal()))
        }
    }
}

/// Initial values of every parameter of `g`, from `seed`.
pub fn init_params(g: &Graph, seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    g.params.iter().map(|p| init_param(p, &mut rng)).collect()
}

/// `init_params` as f32 buffers (the training loop's and the object files' format).
pub fn init_params_f32(g: &Graph, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    g.params.iter().map(|p| init_param_f32(p, &mut rng)).collect()
}
