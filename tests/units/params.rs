//! Moved from `src/runtime/params.rs`'s unit tests.

use netc::ir::graph::{Graph, Init};
use netc::ir::tensor::Tensor;

use netc::ir::graph::{DType, Dim};
use netc::runtime::params::*;

#[test]
fn initialisers_have_the_stated_statistics() {
    let mut g = Graph::new(DType::F32);
    let d = |n| Dim::Known(n);
    g.add_param("he", vec![d(400), d(300)], Init::He);
    g.add_param("xavier", vec![d(400), d(200)], Init::Xavier);
    g.add_param("zeros", vec![d(10)], Init::Zeros);
    let p = init_params(&g, 3);
    let std = |t: &Tensor| (t.data.iter().map(|x| x * x).sum::<f64>() / t.numel() as f64).sqrt();
    assert!((std(&p[0]) - (2.0f64 / 400.0).sqrt()).abs() < 0.003);
    let limit = (6.0f64 / 600.0).sqrt();
    assert!(p[1].data.iter().all(|x| x.abs() <= limit));
    assert!((std(&p[1]) - limit / 3f64.sqrt()).abs() < 0.003);
    assert!(p[2].data.iter().all(|&x| x == 0.0));
    assert_eq!(init_params(&g, 3), p, "same seed, same weights");
    assert_ne!(init_params(&g, 4)[0], p[0]);
    let f32s = init_params_f32(&g, 3);
    for (a, b) in f32s.iter().zip(&p) {
        assert!(a.iter().zip(&b.data).all(|(&x, &y)| x == y as f32), "the f32 path draws the same values");
    }
}
