//! Every shipped example passes the checker, and `netc check` reports what it declares.

use crate::common;
use common::*;

#[test]
fn every_example_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "net") {
            let (code, _, stderr) = netc(&["check", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{} does not check:\n{stderr}", path.display());
            n += 1;
        }
    }
    assert!(n >= 7, "examples are missing");
}

#[test]
fn check_prints_shapes_and_parameter_counts() {
    let (code, out, _) = netc(&["check", "examples/mlp.net"]);
    assert_eq!(code, 0);
    // 784*256 + 256 + 256*256 + 256 + 256*10 + 10
    assert!(out.contains("parameters: 6 tensors, 269322 values"), "{out}");
    assert!(out.contains("input  x: [B, 784]"), "{out}");
    assert!(out.contains("output scores: [B, 10]"), "{out}");

    let (_, out, _) = netc(&["check", "examples/cifar_cnn.net"]);
    // conv 16*3*3*3 + 16, conv 32*16*3*3 + 32, dense 32*8*8*10 + 10
    assert!(out.contains(&format!("{} values", 16 * 27 + 16 + 32 * 144 + 32 + 2048 * 10 + 10)), "{out}");
    assert!(out.contains("dense_1.W [2048, 10]"), "{out}");

    let (_, out, _) = netc(&["check", "examples/spiral.net"]);
    assert!(out.contains("parameters: 4 tensors, 603 values"), "{out}");
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = netc(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["run", "check", "graph", "gradcheck", "build", "repl"] {
        assert!(out.contains(cmd), "--help does not list {cmd}:\n{out}");
    }
}
