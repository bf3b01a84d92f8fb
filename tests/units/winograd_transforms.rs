//! Moved from `src/runtime/winograd.rs`'s unit tests.

use netc::runtime::winograd::*;

/// y_i = Σ_k g_k·d_{i+k} against Aᵀ[(G g) ⊙ (Bᵀ d)] in f64, for every algorithm.
#[test]
fn one_dimensional_transforms_compute_the_correlation() {
    for t in Tile::ALL {
        let (a, m, r) = (t.alpha(), t.m, t.r);
        let d: Vec<f64> = (0..a).map(|i| (i as f64 * 0.37).sin() + 0.5).collect();
        let g: Vec<f64> = (0..r).map(|i| (i as f64 * 1.3).cos() - 0.2).collect();
        let gg: Vec<f64> = (0..a).map(|x| (0..r).map(|k| t.g()[x * r + k] * g[k]).sum()).collect();
        let bd: Vec<f64> = (0..a).map(|x| (0..a).map(|k| t.bt()[x * a + k] * d[k]).sum()).collect();
        for i in 0..m {
            let y: f64 = (0..a).map(|x| t.at()[i * a + x] * gg[x] * bd[x]).sum();
            let want: f64 = (0..r).map(|k| g[k] * d[i + k]).sum();
            assert!((y - want).abs() < 1e-12, "F({m}, {r}) output {i}: {y} vs {want}");
        }
    }
}

#[test]
fn the_cheapest_tile_for_the_output_size() {
    // 13×13 (AlexNet conv3–5): F(4,3) 36·16 = 576 multiplications per plane vs F(2,3) 16·49.
    assert_eq!(Tile::choose(3, 13, 13, None), Some(Tile { m: 4, r: 3 }));
    // 2×2: one F(2,3) tile (16) beats one F(4,3) tile (36).
    assert_eq!(Tile::choose(3, 2, 2, None), Some(Tile { m: 2, r: 3 }));
    assert_eq!(Tile::choose(5, 27, 27, None), Some(Tile { m: 4, r: 5 }));
    assert_eq!(Tile::choose(3, 13, 13, Some(2)), Some(Tile { m: 2, r: 3 }));
    assert_eq!(Tile::choose(7, 13, 13, None), None);
    assert_eq!(Tile::choose(3, 13, 13, Some(3)), None);
}
