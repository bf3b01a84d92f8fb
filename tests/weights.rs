//! Weights files: a safetensors round trip, compatibility with the `safetensors` crate itself,
//! atomic saves that survive an interruption, and a clear error for each way a file can be
//! wrong (missing, corrupt, truncated, a missing tensor, a shape that disagrees with the model).

use std::path::Path;

use netc::diag::Diagnostic;
use netc::runtime::weights::{self, Weight};
use safetensors::{Dtype, SafeTensors};

use crate::common;
use common::TempDir;

fn temp_dir(test: &str) -> TempDir {
    common::temp_dir("weights", test)
}

#[track_caller]
fn assert_error<T: std::fmt::Debug>(result: Result<T, Diagnostic>, parts: &[&str]) {
    let err = result.expect_err("expected an error");
    assert_eq!(err.code, weights::CODE);
    let mut msg = err.message.clone();
    msg.extend(err.notes.iter().map(|n| format!("\nnote: {n}")));
    msg.extend(err.help.iter().map(|h| format!("\nhelp: {h}")));
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not contain {p:?}");
    }
}

/// A small model's parameters: a weight matrix, a bias and a scalar.
fn params(scale: f32) -> Vec<Weight> {
    vec![
        Weight { name: "fc1.W".into(), shape: vec![2, 3], data: (0..6).map(|i| i as f32 * scale).collect() },
        Weight { name: "fc1.b".into(), shape: vec![3], data: vec![0.5, -0.25, 1e-8] },
        Weight { name: "temperature".into(), shape: vec![], data: vec![f32::MAX] },
    ]
}

fn save(path: &Path, ws: &[Weight]) -> Result<(), Diagnostic> {
    weights::save(path, &ws.iter().map(Weight::as_ref).collect::<Vec<_>>())
}

#[test]
fn round_trip() {
    let dir = temp_dir("round-trip");
    let path = dir.join("model.safetensors");
    save(&path, &params(1.5)).unwrap();
    assert_eq!(weights::load(&path).unwrap(), params(1.5));
    // In the model's order, whatever the file's.
    let expected: [(&str, &[usize]); 2] = [("temperature", &[]), ("fc1.W", &[2, 3])];
    let got = weights::load_for(&path, &expected).unwrap();
    assert_eq!(got, [params(1.5)[2].clone(), params(1.5)[0].clone()]);
}

#[test]
fn the_file_is_plain_safetensors() {
    let dir = temp_dir("compatible");
    let path = dir.join("model.safetensors");
    save(&path, &params(1.0)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(names, ["fc1.W", "fc1.b", "temperature"]);
    let w = file.tensor("fc1.W").unwrap();
    assert_eq!((w.dtype(), w.shape()), (Dtype::F32, &[2usize, 3][..]));
    assert_eq!(&w.data()[4..8], &1.0f32.to_le_bytes());
}

#[test]
fn f64_tensors_load_as_f32() {
    let dir = temp_dir("f64");
    let path = dir.join("double.safetensors");
    let data: Vec<u8> = [0.25f64, -3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(Dtype::F64, vec![2], &data).unwrap();
    std::fs::write(&path, safetensors::serialize([("w", view)], None).unwrap()).unwrap();
    assert_eq!(weights::load(&path).unwrap(), [Weight { name: "w".into(), shape: vec![2], data: vec![0.25, -3.0] }]);

    let ints = [1u8, 2];
    let view = safetensors::tensor::TensorView::new(Dtype::U8, vec![2], &ints).unwrap();
    std::fs::write(&path, safetensors::serialize([("steps", view)], None).unwrap()).unwrap();
    assert_error(weights::load(&path), &["double.safetensors", "`steps`", "U8"]);
}

#[test]
fn a_truncated_file_is_an_error() {
    let dir = temp_dir("truncated");
    let path = dir.join("model.safetensors");
    save(&path, &params(1.0)).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 9, 3, 0] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        assert_error(weights::load(&path), &["model.safetensors", "not a valid safetensors file", "truncated"]);
    }
}

#[test]
fn an_interrupted_save_leaves_the_old_file_intact() {
    let dir = temp_dir("interrupted");
    let path = dir.join("model.safetensors");
    save(&path, &params(1.0)).unwrap();
    // A save that died after writing part of the temp file, before the rename.
    let tmp = weights::temp_path(&path);
    assert_eq!(tmp.parent(), path.parent(), "the temp file must be on the same file system");
    std::fs::write(&tmp, b"\x40\x00\x00\x00\x00\x00\x00\x00{\"fc1.W\":").unwrap();
    assert_eq!(weights::load(&path).unwrap(), params(1.0));
    // The next save replaces both the stale temp file and the old weights.
    save(&path, &params(2.0)).unwrap();
    assert_eq!(weights::load(&path).unwrap(), params(2.0));
    assert!(!tmp.exists());
}

#[test]
fn missing_and_corrupt_files() {
    let dir = temp_dir("corrupt");
    assert_error(weights::load(&dir.join("none.safetensors")), &["none.safetensors", "cannot read"]);
    let path = dir.join("junk.safetensors");
    std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\x7fthis is not a header").unwrap();
    assert_error(weights::load(&path), &["junk.safetensors", "not a valid safetensors file"]);
    std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 12345678}").unwrap();
    assert_error(weights::load(&path), &["junk.safetensors", "not a valid safetensors file"]);
    assert_error(weights::save(&dir.join("no/such/dir/w.safetensors"), &[]), &["w.safetensors", "cannot write"]);
}

#[test]
fn a_missing_tensor_or_a_wrong_shape_names_both_sides() {
    let dir = temp_dir("model-check");
    let path = dir.join("model.safetensors");
    save(&path, &params(1.0)).unwrap();
    assert_error(
        weights::load_for(&path, &[("fc1.w", &[2, 3])]),
        &["model.safetensors: no tensor named `fc1.w`", "the file has `fc1.W`"],
    );
    assert_error(
        weights::load_for(&path, &[("fc1.W", &[3, 2])]),
        &["model.safetensors: tensor `fc1.W` has shape [2, 3] in the file, but the model declares [3, 2]"],
    );
}

#[test]
fn save_rejects_inconsistent_tensors() {
    let dir = temp_dir("save-check");
    let path = dir.join("w.safetensors");
    assert_error(weights::save(&path, &[("a", &[2, 2], &[1.0; 3])]), &["w.safetensors", "`a` has 3 values", "needs 4"]);
    assert_error(weights::save(&path, &[("a", &[1], &[1.0]), ("a", &[1], &[2.0])]), &["two tensors are named `a`"]);
    assert_error(weights::save(&path, &[("a", &[usize::MAX, 2], &[])]), &["`a` has 0 values"]);
    assert!(!path.exists());
}

#[test]
fn corrupted_files_give_errors_not_panics() {
    let dir = temp_dir("corrupted");
    let path = dir.join("model.safetensors");
    save(&path, &params(1.0)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut rng = netc::runtime::rng::Rng::new(5);
    let expected: [(&str, &[usize]); 2] = [("fc1.W", &[2, 3]), ("fc1.b", &[3])];
    for _ in 0..2000 {
        let mut bytes = good.clone();
        for _ in 0..=rng.below(3) {
            let i = rng.below(bytes.len() as u64) as usize;
            bytes[i] = rng.next_u64() as u8;
        }
        bytes.truncate(bytes.len() - rng.below(3) as usize);
        std::fs::write(&path, &bytes).unwrap();
        let _ = weights::load_for(&path, &expected);
    }
}
