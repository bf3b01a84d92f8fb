//! The REPL driven by piped scripts, as a user at a pipe would: every command, an error in the
//! middle of a script followed by a correct line, multi-line input, and `:load` of an example.

use std::io::Write;
use std::process::{Command, Stdio};

fn repl(script: &str) -> (String, String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("repl")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn values_are_printed_with_their_shapes() {
    let (out, err, code) = repl("let x = [1, 2, 3]\nlet W = [[1, 0], [0, 1], [1, 1]]\nx @ W\nsum(x * x)\n");
    assert_eq!(code, 0);
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("x: [3]"), "{out}");
    assert!(out.contains("[4, 5]\n  shape [2]"), "{out}");
    assert!(out.contains("\n14\n"), "{out}");
}

#[test]
fn grad_type_and_graph_commands() {
    let (out, err, _) = repl(
        "let x = -2\nlet y = 5\nlet z = -4\n:grad (x + y) * z wrt x, y, z\n:type [[1, 2]] @ [[1], [2]]\n:graph x * y\n",
    );
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("(x + y) * z = -12"), "{out}");
    assert!(out.contains("d(x + y) * z/dx = -4"), "{out}");
    assert!(out.contains("/dz = 3"), "{out}");
    assert!(out.contains(": [1, 1]"), "{out}");
    assert!(out.contains("# ---- backward ----"), "{out}");
    assert!(out.contains("= mul(%0, %1)"), "{out}");
}

#[test]
fn an_error_does_not_end_the_session() {
    let (out, err, code) = repl("let a = [1, 2]\nlet b = a @ nope\na * 10\n");
    assert_eq!(code, 0);
    assert!(err.contains("unknown name `nope`"), "{err}");
    assert!(err.contains("<repl>:1:13"), "the diagnostic points into the typed line: {err}");
    assert!(out.contains("[10, 20]"), "the line after the error still runs: {out}");
    // A shape error, then a definition that uses an earlier name.
    let (out, err, _) = repl("let m = [[1, 2], [3, 4]]\nm @ [1, 2, 3]\nfn double(v) = v * 2\ndouble(m)\n");
    assert!(err.contains("dot product") || err.contains("matmul"), "{err}");
    assert!(out.contains("[[2, 4],\n [6, 8]]"), "{out}");
}

#[test]
fn multi_line_definitions_and_models() {
    let script = "model m(x: [B, 3]) -> [B, 2] {\n  x |> dense(2)\n}\n:type m([[1, 2, 3], [4, 5, 6]])\n";
    let (out, err, _) = repl(script);
    assert!(err.is_empty(), "{err}");
    assert!(out.contains(": [2, 2]"), "{out}");
}

#[test]
fn load_runs_an_example_and_quit_stops() {
    let (out, err, _) = repl(":load examples/neuron.net\n:help\n:quit\n1 + 1\n");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("df/dx = [0.393224, -0.589836]"), "{out}");
    assert!(out.contains("loaded examples/neuron.net"), "{out}");
    assert!(out.contains(":grad EXPR wrt"), "help: {out}");
    assert!(!out.contains("\n2\n"), "nothing runs after :quit: {out}");
    let (_, err, _) = repl(":bogus\n:load does/not/exist.net\n");
    assert!(err.contains("unknown command `:bogus`"), "{err}");
    assert!(err.contains("cannot read does/not/exist.net"), "{err}");
}

/// Each line is checked with only the definitions and lets it uses (and theirs): names bound
/// again resolve to the binding before the user, functions pull in the functions they call,
/// and a definition made twice is still reported with both places.
#[test]
fn a_line_brings_in_what_it_uses_and_nothing_is_lost() {
    let (out, err, code) = repl(
        "let x = 1\nlet x = x + 1\nlet unrelated = [[1, 2], [3, 4]]\nx * 10\n\
         fn f(a) = a * 2\nfn g(a) = f(a) + 1\nlet y = [1, 2]\ng(y)\n\
         fn f(a) = a\n:grad sum(g(y)) wrt y\n",
    );
    assert_eq!(code, 0);
    assert!(out.contains("\n20\n"), "x is 2 when used: {out}");
    assert!(out.contains("[3, 5]"), "g calls f: {out}");
    assert!(err.contains("`f` is defined twice"), "{err}");
    assert!(out.contains("[2, 2]"), "the gradient through g and f: {out}");
}
