//! The seeded generators: the CS231n spiral and shape-only synthetic data. Both give the
//! fields `x` (features) and `labels` (class indices).

use super::{error, reserve, Dataset, Labels};
use crate::diag::Diagnostic;
use crate::runtime::rng::Rng;

/// The classic CS231n spiral: `classes` arms of `points_per_class` 2-D points each. For class
/// j, r = linspace(0, 1, N) and t = linspace(4j, 4(j+1), N) + 0.2 * gaussian noise; the point is
/// (r sin t, r cos t) with label j. Points are in class order; the same seed gives the same data.
pub fn spiral(points_per_class: usize, classes: usize, seed: u64) -> Result<Dataset, Diagnostic> {
    const SOURCE: &str = "spiral data";
    let n = points_per_class
        .checked_mul(classes)
        .filter(|n| n.checked_mul(2).is_some())
        .ok_or_else(|| error(format!("{SOURCE}: {points_per_class} points for {classes} classes is too many")))?;
    let mut rng = Rng::new(seed);
    let mut features = reserve(2 * n, SOURCE)?;
    let mut labels = reserve(n, SOURCE)?;
    let linspace = |start: f64, end: f64, i: usize| {
        if points_per_class < 2 {
            start
        } else {
            start + (end - start) * i as f64 / (points_per_class - 1) as f64
        }
    };
    for j in 0..classes {
        for i in 0..points_per_class {
            let r = linspace(0.0, 1.0, i);
            let t = linspace(4.0 * j as f64, 4.0 * (j + 1) as f64, i) + 0.2 * rng.normal();
            features.push((r * t.sin()) as f32);
            features.push((r * t.cos()) as f32);
            labels.push(j as u32);
        }
    }
    Dataset::new(SOURCE, vec![2], features, Labels::Classes(labels), Some(classes))
}

/// `samples` standard-normal inputs of `input_shape` with uniform labels in `0..classes`: no
/// signal to learn, just the right shapes for benchmarks and smoke tests. Seeded. With
/// `ids: Some(n)` the inputs are uniform whole numbers in `0..n` instead (for a model input
/// declared `int`, `n` the size of what it indexes).
pub fn synthetic(
    samples: usize,
    input_shape: &[usize],
    classes: usize,
    ids: Option<usize>,
    seed: u64,
) -> Result<Dataset, Diagnostic> {
    const SOURCE: &str = "synthetic data";
    if classes == 0 {
        return Err(error(format!("{SOURCE}: needs at least one class")));
    }
    let n = input_shape
        .iter()
        .try_fold(samples, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| error(format!("{SOURCE}: {samples} samples of {input_shape:?} is too many values")))?;
    let mut rng = Rng::new(seed);
    let mut features = reserve(n, SOURCE)?;
    match ids {
        Some(0) => return Err(error(format!("{SOURCE}: ids need an axis of at least one element"))),
        Some(k) => features.extend((0..n).map(|_| rng.below(k as u64) as f32)),
        None => features.extend((0..n).map(|_| rng.normal() as f32)),
    }
    let mut labels = reserve(samples, SOURCE)?;
    labels.extend((0..samples).map(|_| rng.below(classes as u64) as u32));
    Dataset::new(SOURCE, input_shape.to_vec(), features, Labels::Classes(labels), Some(classes))
}
