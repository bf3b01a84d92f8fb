//! Moved from `src/training/metrics.rs`'s unit tests.

use netc::frontend::checked::MetricKind;

use netc::training::metrics::*;

#[test]
fn accuracy_counts_positions_and_respects_the_mask() {
    // Two positions of three classes: argmax 2 (target 2, right) and 0 (target 1, wrong).
    let out = [0.1, 0.2, 0.9, 0.5, 0.1, 0.2];
    let mut t = Tally::default();
    t.add(MetricKind::Accuracy, &out, &[2.0, 1.0], None);
    assert_eq!(t.value(), 0.5);
    let mut masked = Tally::default();
    masked.add(MetricKind::Accuracy, &out, &[2.0, 1.0], Some(&[1.0, 0.0]));
    assert_eq!(masked.value(), 1.0);
}

#[test]
fn mse_and_mae_average_every_value() {
    let mut mse = Tally::default();
    mse.add(MetricKind::Mse, &[1.0, 2.0], &[0.0, 4.0], None);
    assert_eq!(mse.value(), 2.5);
    let mut mae = Tally::default();
    mae.add(MetricKind::Mae, &[1.0, 2.0], &[0.0, 4.0], None);
    assert_eq!(mae.value(), 1.5);
}
