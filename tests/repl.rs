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

/// A chain of lets (`let t = t * 3 / 3`, over and over) is cut by writing known values as
/// literals once a line needs more than 32 of them: the literal must be the exact f64 (a third
/// times three over three, a hundred times, is still exactly a third in f64), and
/// `:grad` must still differentiate through every link.
#[test]
fn a_long_chain_of_lets_keeps_exact_values_and_gradients() {
    let mut script = String::from("let t = 1 / 3\nlet x = [1, 2, 3]\nlet a = x\n");
    for _ in 0..100 {
        script.push_str("let t = t * 3 / 3\nlet a = a * 1.01\n");
    }
    script.push_str("t - 1 / 3\nsum(a)\n:grad sum(a) wrt x\nlet s = \"text\"\n");
    for i in 0..40 {
        script.push_str(&format!("let c{i} = {} + 1\n", if i == 0 { "x".to_string() } else { format!("c{}", i - 1) }));
    }
    script.push_str("c39\n");
    let (out, err, code) = repl(&script);
    assert_eq!(code, 0);
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("\n0\n"), "t is exactly the third: {out}");
    // 6 · 1.01^100 = 16.2288...; its gradient is 1.01^100 = 2.70481 for each element.
    assert!(out.contains("\n16.2289\n"), "{out}");
    assert!(out.contains("[2.70481, 2.70481, 2.70481]"), "{out}");
    assert!(out.contains("[41, 42, 43]"), "{out}");
}

/// A value drawn when the program runs (a dense layer's initial weights, drawn in the order
/// the program creates them) is never frozen by the cache: a line evaluated after a long chain
/// built on it gives what `:grad`, which always computes every let from its expression, gives.
#[test]
fn a_chain_through_a_layer_evaluates_as_grad_computes_it() {
    let mut script = String::from("let x = [[1, 2, 3]]\nlet h1 = dense(x, 2)\nlet h2 = dense(x, 2)\nlet c0 = h2\n");
    for i in 1..40 {
        script.push_str(&format!("let c{i} = c{} * 1\n", i - 1));
    }
    script.push_str("c39\nsum(c39 + h1)\n:grad sum(c39 + h1) wrt x\n");
    let (out, err, code) = repl(&script);
    assert_eq!(code, 0);
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("sum(c39 + h1) = ")).expect(&out);
    assert_eq!(lines[at], format!("sum(c39 + h1) = {}", lines[at - 1]), "{out}");
}

/// Binding a name again after its chain was cached: the cached lets keep the value of the
/// binding they saw, lets after it see the new one.
#[test]
fn a_name_bound_again_after_caching_changes_only_what_follows() {
    let mut script = String::from("let a = 2\nlet b0 = a\n");
    for i in 1..40 {
        script.push_str(&format!("let b{i} = b{} + a\n", i - 1));
    }
    script.push_str("b39\nlet a = 100\nb39\nlet b40 = b39 + a\nb40\na\n");
    let (out, err, code) = repl(&script);
    assert_eq!(code, 0);
    assert!(err.is_empty(), "{err}");
    let shown: Vec<&str> = out.lines().filter(|l| !l.contains(':')).collect();
    assert_eq!(shown, ["80", "80", "180", "100"], "{out}");
}
