//! Moved from `src/frontend/check/train.rs`'s unit tests.

use netc::frontend::check::freeze_pattern_matches as glob;

#[test]
fn glob_matches_stars_across_dots() {
    assert!(glob("conv*", "conv2d_1.W"));
    assert!(glob("*.b", "dense_2.b"));
    assert!(glob("body.*", "body.W"));
    assert!(!glob("body.*", "head.W"));
    assert!(glob("*", "W1"));
    assert!(!glob("W", "W1"));
    assert!(glob("d*_*.W", "dense_1.W"));
}
