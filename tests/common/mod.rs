//! Helpers shared by the integration tests that drive the `netc` binary.
#![allow(dead_code)]

use std::process::Command;

pub mod reference;

/// Run `netc ARGS` in the crate root: (exit code, stdout, stderr).
pub fn netc(args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_netc")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A path in the temp directory, unique to this test process.
pub fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("netc-{}-{name}", std::process::id()))
}

/// The value of `key` in a JSON object, as JSON text (`30`, `null`, `"spiral_net"`).
pub fn field(json: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    v.get(key).unwrap_or_else(|| panic!("no {key} in {json}")).to_string()
}

/// Whether a JSON object has `key`.
pub fn has_field(json: &str, key: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    v.get(key).is_some()
}

/// A fresh directory under the system temp dir, unique to this process and test, removed
/// when the test ends (also when it fails).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `TempDir` named after the suite and the test.
pub fn temp_dir(suite: &str, test: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("netc-{suite}-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A nested list literal of `shape` with varied values in (-0.8, 0.8).
pub fn varied_literal(shape: &[usize], seed: usize) -> String {
    fn go(shape: &[usize], seed: usize, k: &mut usize) -> String {
        match shape.split_first() {
            None => {
                *k += 1;
                let v = ((*k * 7 + seed * 13) as f64 * 0.618_033_988_749_895).fract() * 1.6 - 0.8;
                format!("{v:.6}")
            }
            Some((&n, rest)) => format!("[{}]", (0..n).map(|_| go(rest, seed, k)).collect::<Vec<_>>().join(", ")),
        }
    }
    go(shape, seed, &mut 0)
}

/// Proptest's settings with `cases` cases, its failures kept beside the test's file
/// (`tests/NAME.proptest-regressions`; by default it would keep them in a directory at the
/// crate root, since `tests/main.rs` is the root of every test file).
pub fn proptest_cases(cases: u32) -> proptest::test_runner::Config {
    use proptest::test_runner::{Config, FileFailurePersistence};
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    }
}
