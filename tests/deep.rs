//! Deep, huge and special inputs (issue #23): each is generated here, run through the `netc`
//! binary, and must end in a diagnostic (exit 1) or a result, never in a crash (exit 134 or
//! 101), a hang or memory without end. The sizes are ten times those that crashed netc
//! before where a debug build runs them in seconds; `netc` itself bounds the rest.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{netc, temp_dir};

/// `netc ARGS...` on `source` written to a fresh directory: (exit code, stdout, stderr).
fn run_on(test: &str, source: &str, args: &[&str]) -> (i32, String, String) {
    let dir = temp_dir("deep", test);
    let path = dir.join("m.net");
    std::fs::write(&path, source).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.insert(1, path.to_str().unwrap());
    netc(&all)
}

fn assert_diagnostic(what: &str, (code, _, err): &(i32, String, String), code_name: &str) {
    assert_eq!(*code, 1, "{what}: exit {code}, stderr:\n{}", &err[..err.len().min(2000)]);
    assert!(err.contains(code_name), "{what}: expected {code_name} in:\n{}", &err[..err.len().min(2000)]);
}

fn assert_ok(what: &str, (code, _, err): &(i32, String, String)) {
    assert_eq!(*code, 0, "{what}: exit {code}, stderr:\n{}", &err[..err.len().min(2000)]);
}

fn sum_of(terms: usize) -> String {
    format!("eval e {{\n  let a = 1\n  {}\n}}\n", vec!["a"; terms].join(" + "))
}

fn pipeline(stages: usize) -> String {
    format!("model m(x: [B, 4]) -> y: [B, 4] {{\n  x{}\n}}\n", " |> relu".repeat(stages))
}

fn nested_list(depth: usize) -> String {
    format!("eval e {{\n  let a = {}1{}\n}}\n", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn long_sums_and_pipelines_check_or_are_refused_by_their_depth() {
    // Within the limit: a sum of 15,000 terms and a 10,000-stage pipeline are fine.
    assert_ok("15k terms", &run_on("sum_ok", &sum_of(15_000), &["run"]));
    assert_ok("10k stages", &run_on("pipe_ok", &pipeline(10_000), &["check"]));
    // Ten times what overflowed the stack: a diagnostic naming the limit.
    let r = run_on("sum_deep", &sum_of(110_000), &["check"]);
    assert_diagnostic("110k terms", &r, "E-nesting");
    assert!(r.2.contains("over the limit of 20000"), "{}", r.2);
    assert_diagnostic("48k stages", &run_on("pipe_deep", &pipeline(48_000), &["check"]), "E-nesting");
    assert_diagnostic("100k brackets", &run_on("list_deep", &nested_list(100_000), &["check"]), "E-nesting");
    // A syntax error after a deep expression: the half-built tree is dropped without recursion.
    let broken = sum_of(200_000).replace("\n}", " +\n}");
    assert_diagnostic("broken deep sum", &run_on("sum_broken", &broken, &["check"]), "E-syntax");
}

#[test]
fn a_hundred_thousand_chained_lets_compile_and_train() {
    let mut src = String::from("model m(x: [B, 4]) -> y: [B, 4] {\n  let h0 = x\n");
    let n = 100_000;
    for i in 1..n {
        src.push_str(&format!("  let h{i} = h{} + 1\n", i - 1));
    }
    src.push_str(&format!(
        "  h{}\n}}\ndata d {{ source: synthetic(samples: 4, classes: 2, seed: 0) }}\n\
         train m {{ loss: mean(y * y); steps: 1; batch: 2 }}\n",
        n - 1
    ));
    assert_ok("100k lets", &run_on("lets", &src, &["run", "--quiet"]));
}

#[test]
fn a_very_long_repl_line_is_a_diagnostic() {
    let line = format!("{}\n1 + 1\n", vec!["1"; 110_000].join(" + "));
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("E-nesting"), "{stderr}");
    assert!(stdout.contains('2'), "the session goes on after the error: {stdout}");
}

#[test]
fn exponential_elaboration_runs_out_of_budget() {
    let doubling = "fn f(x) = f([x, x])\neval e { f(1) }\n";
    let mut lists = String::from("eval e {\n  let a0 = [1]\n");
    for i in 1..=60 {
        lists.push_str(&format!("  let a{i} = [a{}, a{}]\n", i - 1, i - 1));
    }
    lists.push_str("  1\n}\n");
    let mut calls = String::from("fn f0(x) = x\n");
    for i in 1..=40 {
        calls.push_str(&format!("fn f{i}(x) = f{}(x) + f{}(x)\n", i - 1, i - 1));
    }
    calls.push_str("eval e { f40(1.0) }\n");
    for (name, src) in [("doubling", doubling.to_string()), ("lists", lists), ("calls", calls)] {
        let r = run_on(name, &src, &["check"]);
        assert_diagnostic(name, &r, "E-budget");
        assert!(r.2.contains("10000"), "{name}: the limit is in the message: {}", r.2);
    }
}

#[test]
fn devices_and_fifos_are_refused_as_inputs() {
    let dir = temp_dir("deep", "devices");
    for dev in ["/dev/zero", "/dev/urandom"] {
        let (code, _, err) = netc(&["check", dev]);
        assert_eq!(code, 1, "{dev}: {err}");
        assert!(err.contains("not a regular file"), "{dev}: {err}");
    }
    // A data file that is a device.
    let model = dir.join("m.net");
    std::fs::write(
        &model,
        "model m(x: [B, 4]) -> s: [B, 3] { x |> dense(3) }\n\
         data d { source: csv(\"/dev/zero\") }\n\
         train m { loss: cross_entropy(s, labels); steps: 1; batch: 2 }\n",
    )
    .unwrap();
    let (code, _, err) = netc(&["run", model.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    // A FIFO with no writer: refused at once, not waited on.
    let fifo = dir.join("pipe.net");
    if Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        let (code, _, err) = netc(&["check", fifo.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("FIFO"), "{err}");
    }
    // The REPL's :load.
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b":load /dev/zero\n1 + 2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains('3'));
}

#[test]
fn a_csv_header_of_a_million_columns_is_read_in_linear_time() {
    let dir = temp_dir("deep", "csv");
    let columns = 1_000_000;
    let mut text: String = (0..columns).map(|i| format!("c{i},")).collect();
    text.push_str("label\n");
    text.push_str(&"1,".repeat(columns));
    text.push_str("0\n");
    std::fs::write(dir.join("wide.csv"), text).unwrap();
    // The model takes 4 features: the file's 1,000,000 is a clear error, found quickly.
    std::fs::write(
        dir.join("m.net"),
        "model m(x: [B, 4]) -> s: [B, 3] { x |> dense(3) }\n\
         data d { source: csv(\"wide.csv\") }\n\
         train m { loss: cross_entropy(s, labels); steps: 1; batch: 1 }\n",
    )
    .unwrap();
    let (code, _, err) = netc(&["run", dir.join("m.net").to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1000000"), "{err}");
}

#[test]
fn deep_if_blocks_losses_and_chains_check_and_train() {
    // `if training { if training { ... } else { x } } else { x }`, 19,000 deep: within the
    // nesting limit (each `if` is a level), so it checks and trains.
    let n = 19_000;
    let ifs = format!(
        "model m(x: [B, 4]) -> y: [B, 4] {{\n  {}x{}\n}}\n\
         data d {{ source: synthetic(samples: 4, classes: 2, seed: 0) }}\n\
         train m {{ loss: mean(y * y); steps: 1; batch: 2 }}\n",
        "if training { ".repeat(n),
        " } else { x }".repeat(n)
    );
    assert_ok("19k ifs", &run_on("ifs", &ifs, &["run", "--quiet"]));
    // 25,000 deep: refused by the same limit.
    let deeper = ifs
        .replace(&"if training { ".repeat(n), &"if training { ".repeat(25_000))
        .replace(&" } else { x }".repeat(n), &" } else { x }".repeat(25_000));
    assert_diagnostic("25k ifs", &run_on("ifs_deep", &deeper, &["check"]), "E-nesting");
    // A train block's loss of 15,000 terms (the train block walks it for the names it reads).
    let loss = format!(
        "model m(x: [B, 4]) -> s: [B, 3] {{ x |> dense(3) }}\n\
         data d {{ source: synthetic(samples: 4, classes: 3, seed: 0) }}\n\
         train m {{ loss: {}; steps: 1; batch: 2 }}\n",
        vec!["mean(s * s)"; 15_000].join(" + ")
    );
    assert_ok("15k-term loss", &run_on("loss", &loss, &["run", "--quiet"]));
    // 100,000 negations and a product by zero: the optimizer asks whether the chain can be
    // infinite, walking it to its end.
    let mut chain = String::from("model m(x: [B, 4]) -> y: [B, 4] {\n  let h0 = relu(x)\n");
    for i in 1..100_000 {
        chain.push_str(&format!("  let h{i} = -h{}\n", i - 1));
    }
    chain.push_str(
        "  x + h99999 * 0\n}\ndata d { source: synthetic(samples: 4, classes: 2, seed: 0) }\n\
         train m { loss: mean(y * y); steps: 1; batch: 2 }\n",
    );
    assert_ok("100k negations", &run_on("negations", &chain, &["run", "--quiet"]));
}

#[test]
fn summary_build_and_predict_take_a_ten_thousand_stage_pipeline() {
    let dir = temp_dir("deep", "commands");
    let model = dir.join("m.net");
    std::fs::write(&model, format!("model m(x: [B, 4]) -> y: [B, 4] {{\n  x{}\n}}\n", " |> relu".repeat(10_000)))
        .unwrap();
    let input = dir.join("x.csv");
    std::fs::write(&input, "a,b,c,d\n1,-2,3,4\n").unwrap();
    let (m, o, out) = (model.to_str().unwrap(), dir.join("m.o"), dir.join("y.csv"));
    let (code, table, err) = netc(&["summary", m]);
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("model m(x: [B, 4])"), "{table}");
    assert_ok("build", &netc(&["build", m, "-o", o.to_str().unwrap()]));
    assert_ok("predict", &netc(&["predict", m, "--input", input.to_str().unwrap(), "-o", out.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "y_0,y_1,y_2,y_3\n1,0,3,4\n");
}

#[test]
fn devices_and_fifos_are_refused_as_fields_weights_and_predict_inputs() {
    let dir = temp_dir("deep", "devices_new");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    // Names that say .npy and .csv, for a device and a FIFO with no writer.
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.npy")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.safetensors")).unwrap();
    let fifo = Command::new("mkfifo").arg(dir.join("pipe.csv")).status().is_ok_and(|s| s.success());
    let model = "model m(x: [B, 4]) -> s: [B, 3] { x |> dense(3) }\n";
    let refused = |what: &str, (code, _, err): (i32, String, String)| {
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains("not a regular file"), "{what}: {err}");
    };
    // Named data fields.
    let mut files = vec!["zero.npy"];
    if fifo {
        files.push("pipe.csv");
    }
    for file in files {
        let reader = if file.ends_with(".npy") { "npy" } else { "csv" };
        std::fs::write(
            dir.join("f.net"),
            format!(
                "{model}data d {{\n  x: {reader}(\"{file}\")\n  y: {reader}(\"{file}\", int)\n}}\n\
                 train m {{ loss: cross_entropy(s, y); steps: 1; batch: 2 }}\n"
            ),
        )
        .unwrap();
        refused(file, netc(&["run", &path("f.net"), "--quiet"]));
    }
    // Weights: --load, --init-from, build --weights, graph --load.
    std::fs::write(
        dir.join("w.net"),
        format!(
            "{model}data d {{ source: synthetic(samples: 4, classes: 3, seed: 0) }}\n\
             train m {{ loss: cross_entropy(s, labels); steps: 1; batch: 2 }}\n"
        ),
    )
    .unwrap();
    let (w, weights) = (path("w.net"), path("zero.safetensors"));
    refused("--load", netc(&["run", &w, "--quiet", "--load", &weights]));
    refused("--init-from", netc(&["run", &w, "--quiet", "--init-from", &weights]));
    refused("build --weights", netc(&["build", &w, "-o", &path("w.o"), "--weights", &weights]));
    refused("graph --load", netc(&["graph", &w, "--values", "--load", &weights]));
    // predict --input and --load.
    std::fs::write(dir.join("p.net"), "model p(x: [B, 4]) -> y: [B, 4] { x * 2 }\n").unwrap();
    refused("predict --input", netc(&["predict", &path("p.net"), "--input", &path("zero.npy")]));
    if fifo {
        refused("predict --input fifo", netc(&["predict", &path("p.net"), "--input", &path("pipe.csv")]));
    }
    refused("predict --load", netc(&["predict", &w, "--load", &weights, "--input", &path("zero.npy")]));
}

#[test]
fn wide_csv_fields_and_predict_inputs_are_read_in_linear_time() {
    // The header of a million columns again, read as named fields (one by name, the rest by
    // default) and as a predict input.
    let dir = temp_dir("deep", "csv_fields");
    let columns = 1_000_000;
    let mut text: String = (0..columns).map(|i| format!("c{i},")).collect();
    text.push_str("label\n");
    text.push_str(&"1,".repeat(columns));
    text.push_str("0\n");
    std::fs::write(dir.join("wide.csv"), text).unwrap();
    std::fs::write(
        dir.join("m.net"),
        "model m(x: [B, 4]) -> s: [B, 3] { x |> dense(3) }\n\
         data d {\n  x: csv(\"wide.csv\")\n  y: csv(\"wide.csv\", int, columns: \"label\")\n}\n\
         train m { loss: cross_entropy(s, y); steps: 1; batch: 1 }\n",
    )
    .unwrap();
    let m = dir.join("m.net");
    let (code, _, err) = netc(&["run", m.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1000000"), "{err}");
    std::fs::write(dir.join("p.net"), "model p(x: [B, 4]) -> y: [B, 4] { x * 2 }\n").unwrap();
    let (p, wide) = (dir.join("p.net"), dir.join("wide.csv"));
    let (code, _, err) = netc(&["predict", p.to_str().unwrap(), "--input", wide.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1000001"), "{err}");
}

/// `(exit code, stderr)` is a clean end: a result or a diagnostic, never a panic or a signal.
fn assert_handled(what: &str, (code, _, err): &(i32, String, String)) {
    assert!(*code == 0 || *code == 1, "{what}: exit {code}, stderr:\n{}", &err[..err.len().min(2000)]);
    assert!(!err.contains("panicked"), "{what}: {}", &err[..err.len().min(2000)]);
}

#[test]
fn deep_and_huge_inputs_through_slicing_concat_gather_einsum_and_list_lets() {
    let eval = |body: &str| format!("eval e {{\n  let x = [[1, 2, 3], [4, 5, 6]]\n  let i = [1, 0]\n  {body}\n}}\n");
    let nest = |depth: usize, open: &str, close: &str| format!("{}x{}", open.repeat(depth), close.repeat(depth));
    let deep = [
        ("10,000 chained slices", format!("x{}", "[::-1]".repeat(10_000))),
        ("10,000 chained gathers", format!("x{}", "[i]".repeat(10_000))),
        ("3,000 nested concats", nest(3_000, "concat([", ", x], axis: 0)[2:]")),
        ("3,000 nested einsums", nest(3_000, "einsum(\"ij,jk->ik\", ", ", [[1, 0, 0], [0, 1, 0], [0, 0, 1]])")),
        ("3,000 nested takes", nest(3_000, "take(", ", i, axis: 0)")),
    ];
    for (what, expr) in &deep {
        assert_handled(what, &run_on("structure_deep", &eval(expr), &["run"]));
    }
    // Past the nesting limit: a diagnostic, not a stack overflow.
    let too_deep = eval(&nest(30_000, "concat([", ", x], axis: 0)[2:]"));
    assert_diagnostic("30,000 nested concats", &run_on("structure_too_deep", &too_deep, &["check"]), "E-nesting");
    // 10,000 list bindings in a chain.
    let mut chain = String::from("let c = x\n");
    for _ in 0..10_000 {
        chain.push_str("  let [a, b] = split(c, 1, axis: 0)\n  let c = concat([b, a], axis: 0)\n");
    }
    chain.push_str("  c");
    assert_ok("10,000 let-lists", &run_on("let_lists", &eval(&chain), &["run"]));
    // Huge indices, bounds, steps and sizes: each a diagnostic.
    let huge = [
        "x[99999999999999999999999]",
        "x[9223372036854775807]",
        "x[-9223372036854775807]",
        "x[0, 9223372036854775807:]",
        "x[0:9223372036854775807:9223372036854775807]",
        "x[::-9223372036854775807]",
        "x[:, ::0]",
        "take(x, [9223372036854775807], axis: 0)",
        "x[[4503599627370496]]",
        "pad(x, 9223372036854775807)",
        "reshape(x, [9223372036854775807, -1])",
        "expand(x, 9223372036854775807, axis: 0)",
        "split(x, 9223372036854775807, axis: 0)",
        "einsum(\"ij,jk->ik\", x, x)",
    ];
    for expr in huge {
        let r = run_on("structure_huge", &eval(expr), &["run"]);
        assert_handled(expr, &r);
        assert_eq!(r.0, 1, "{expr}: {}", r.2);
    }
    // A literal of a million indices.
    let million = format!("sum(x[0, [{}]])", vec!["2"; 1_000_000].join(", "));
    assert_handled("a million indices", &run_on("structure_million", &eval(&million), &["run"]));
}

#[test]
fn a_directory_as_source_or_data_is_a_diagnostic() {
    let dir = temp_dir("deep", "directory");
    std::fs::create_dir_all(dir.join("sub.net")).unwrap();
    std::fs::create_dir_all(dir.join("d.csv")).unwrap();
    let (code, _, err) = netc(&["check", dir.join("sub.net").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("directory"), "{err}");
    std::fs::write(
        dir.join("m.net"),
        "model m(x: [B, 4]) -> s: [B, 3] { x |> dense(3) }\n\
         data d { source: csv(\"d.csv\") }\n\
         train m { loss: cross_entropy(s, labels); steps: 1; batch: 1 }\n",
    )
    .unwrap();
    let (code, _, err) = netc(&["run", dir.join("m.net").to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("directory"), "{err}");
}
