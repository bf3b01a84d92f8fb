//! `netc bench`: the JSON report has every figure, each positive (no wall-clock thresholds).

use crate::common;
use common::*;

/// The number `key` of a JSON object.
fn number(json: &str, key: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    v.get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {json}"))
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {json}"))
}

/// `rnn.net` in a fresh directory `name`: an rnn of `hidden` units over x [B, 6, 3], its last
/// step through a dense layer to 2 classes, trained by SGD on 8 synthetic samples (the
/// directory goes when its `TempDir` is dropped).
fn rnn_file(name: &str, hidden: usize) -> (TempDir, std::path::PathBuf) {
    let dir = temp_dir("bench", name);
    let file = dir.join("rnn.net");
    let source = format!(
        "model m(x: [B, 6, 3]) -> s: [B, 2] {{\n  let h = rnn(x, {hidden})\n  dense(transpose(h, perm: [1, 0, 2])[-1], 2)\n}}\n\
         data d {{ source: synthetic(samples: 8, classes: 2, seed: 1) }}\n\
         train m {{\n  loss: cross_entropy(s, labels)\n  optimizer: sgd(lr: 0.1)\n  batch: 8\n}}\n"
    );
    std::fs::write(&file, source).unwrap();
    (dir, file)
}

#[test]
fn bench_reports_times_throughput_and_memory() {
    let (code, out, err) =
        netc(&["bench", "examples/digits_cnn.net", "--steps", "3", "--warmup", "1", "--json", "--threads", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with('{') && out.trim().ends_with('}'), "{out}");
    assert_eq!(field(&out, "model"), "\"digits_cnn\"", "{out}");
    assert_eq!(number(&out, "batch"), 32.0);
    assert_eq!(number(&out, "steps"), 3.0);
    assert_eq!(number(&out, "threads"), 1.0);
    for key in [
        "first_step_ms",
        "compile_step_ms",
        "compile_infer_ms",
        "step_ms_median",
        "step_ms_min",
        "infer_ms_median",
        "forward_gflop",
        "step_gflop",
        "step_gflops",
        "infer_gflops",
        "peak_rss_mib",
    ] {
        assert!(number(&out, key) > 0.0, "{key} is not positive in {out}");
    }
    // Forward FLOPs: the conv as its im2col GEMM, 2·32·8·8·8·(1·3·3), plus the dense layer
    // 2·32·128·10.
    let expected = 2.0 * 32.0 * 8.0 * 8.0 * 8.0 * 9.0 + 2.0 * 32.0 * 128.0 * 10.0;
    assert!((number(&out, "forward_gflop") * 1e9 - expected).abs() < 1.0, "{out}");
    // A step executes the conv and its filter gradient (the image needs no gradient, so the
    // conv's input gradient is never computed), and the dense layer's three products.
    let conv = 2.0 * 32.0 * 8.0 * 8.0 * 8.0 * 9.0;
    let dense = 2.0 * 32.0 * 128.0 * 10.0;
    assert!((number(&out, "step_gflop") * 1e9 - (2.0 * conv + 3.0 * dense)).abs() < 1.0, "{out}");
}

#[test]
fn bench_compile_only_reports_compile_times() {
    let (code, out, err) = netc(&["bench", "examples/mlp.net", "--compile-only", "--json"]);
    assert_eq!(code, 0, "{err}");
    for key in ["compile_step_ms", "compile_infer_ms", "compile_ms", "total_ms"] {
        assert!(number(&out, key) > 0.0, "{key} is not positive in {out}");
    }
    assert!(!out.contains("step_ms_median"), "{out}");
}

#[test]
fn bench_without_a_train_block_is_an_error() {
    let (code, _, err) = netc(&["bench", "examples/gates.net"]);
    assert_eq!(code, 1);
    assert!(err.contains("no train block"), "{err}");
}

#[test]
fn bench_profile_times_every_kernel_of_the_step() {
    let (code, out, err) = netc(&["bench", "examples/spiral.net", "--steps", "5", "--warmup", "1", "--profile"]);
    assert_eq!(code, 0, "{err}");
    let table = &out[out.find("train step by kernel").unwrap_or_else(|| panic!("no profile in {out}"))..];
    let rows: Vec<&str> = table.lines().filter(|l| l.contains('%') && !l.contains("share")).collect();
    // One row per kernel, in order, then the total; each a time, a share and a summary in
    // the model's own sizes: the spiral's 3-class log-softmax and its [B, 100] layer.
    let (kernels, total) = rows.split_at(rows.len() - 1);
    assert!(kernels.len() >= 10, "{table}");
    assert!(total[0].contains("(all kernels)"), "{table}");
    let mut sum = 0.0;
    for (k, row) in kernels.iter().enumerate() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], k.to_string(), "{row}");
        let us: f64 = cells[1].parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(us >= 0.0, "{row}");
        sum += us;
    }
    let all: f64 = total[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!((sum - all).abs() <= 0.01 * kernels.len() as f64 + 1e-3 * all, "{sum} vs {all}: {table}");
    assert!(table.contains("log_softmax B rows of 3"), "{table}");
    assert!(table.contains("map [B, 100]"), "{table}");

    // Without --profile there is no table.
    let (code, out, _) = netc(&["bench", "examples/spiral.net", "--steps", "2", "--warmup", "0"]);
    assert_eq!(code, 0);
    assert!(!out.contains("train step by kernel"), "{out}");
}

#[test]
fn bench_profile_times_the_kernels_inside_a_loop() {
    // A loop's body kernels follow it in the table, indented, each charged its time summed
    // over the steps; the rows still add up to the total.
    let (_dir, file) = rnn_file("profile_loop", 5);
    let (code, out, err) = netc(&["bench", file.to_str().unwrap(), "--steps", "3", "--warmup", "1", "--profile"]);
    assert_eq!(code, 0, "{err}");
    let table = &out[out.find("train step by kernel").unwrap_or_else(|| panic!("no profile in {out}"))..];
    let rows: Vec<&str> = table.lines().filter(|l| l.contains('%') && !l.contains("share")).collect();
    let (kernels, total) = rows.split_at(rows.len() - 1);
    // The summary starts after the share column; a body kernel's is indented by two spaces.
    let summary = |row: &str| row[row.find('%').unwrap() + 3..].to_string();
    let loops: Vec<usize> = (0..kernels.len()).filter(|&k| summary(kernels[k]).starts_with("loop 6")).collect();
    // The forward loop and the backward loop (reversed).
    assert_eq!(loops.len(), 2, "{table}");
    for &at in &loops {
        let body = kernels[at + 1..].iter().take_while(|r| summary(r).starts_with("  ")).count();
        assert!(body >= 2, "no body rows after loop row {at}: {table}");
        assert!(kernels[at + 1..at + 1 + body].iter().any(|r| summary(r).contains("gemm")), "{table}");
    }
    let mut sum = 0.0;
    for (k, row) in kernels.iter().enumerate() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], k.to_string(), "{row}");
        sum += cells[1].parse::<f64>().unwrap_or_else(|_| panic!("{row}"));
    }
    let all: f64 = total[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!((sum - all).abs() <= 0.01 * kernels.len() as f64 + 1e-3 * all, "{sum} vs {all}: {table}");
}

#[test]
fn a_loop_counts_its_body_products_once_per_step() {
    // rnn(x, 5) over x [B, 6, 3]: each step x_t W_ih (2·3·5) and h W_hh (2·5·5) per sample,
    // 80 FLOPs; 6 steps; then the dense 2·5·2. Batch 8.
    let (_dir, file) = rnn_file("loop_flops", 5);
    let (code, out, err) = netc(&["bench", file.to_str().unwrap(), "--compile-only", "--json"]);
    assert_eq!(code, 0, "{err}");
    let forward = number(&out, "forward_gflop") * 1e9;
    assert!((forward - 8.0 * (6.0 * 80.0 + 20.0)).abs() < 1e-6, "{out}");
    // The step: the forward; the dense's two gradients (2·5·2 each); and a backward loop whose
    // step reads the cell's stored values (no products recomputed), then computes dh (2·5·5);
    // dW_hh (2·5·5 per step) and dW_ih (2·3·5 per step) are one product each after it.
    let step = number(&out, "step_gflop") * 1e9;
    assert!((step - 8.0 * (500.0 + 40.0 + 6.0 * 130.0)).abs() < 1e-6, "{out}");
    // `netc summary` charges the loop to its layer, once.
    let (code, out, err) = netc(&["summary", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.contains(" rnn ")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.trim_end().ends_with(" 480"), "{out}");
    assert!(out.contains("forward FLOPs per sample: 500"), "{out}");
}

/// `netc bench FILE --profile` (2 steps after 1 warm-up): the kernel summaries of the train
/// step's table in order (a loop's body kernels indented by two spaces), and the table.
fn profile(file: &std::path::Path) -> (Vec<String>, String) {
    let (code, out, err) = netc(&["bench", file.to_str().unwrap(), "--steps", "2", "--warmup", "1", "--profile"]);
    assert_eq!(code, 0, "{err}");
    let table = out[out.find("train step by kernel").unwrap_or_else(|| panic!("no profile in {out}"))..].to_string();
    let rows = table
        .lines()
        .filter(|l| l.contains('%') && !l.contains("share") && !l.contains("(all kernels)"))
        .map(|row| row[row.find('%').unwrap() + 3..].to_string())
        .collect();
    (rows, table)
}

#[test]
fn gelu_writes_its_input_and_activation_once_and_no_scaled_copies() {
    // gelu(z) = z/2 · (1 + erf(z/√2)): the backward reads z/√2, z/2 and 1 + erf too. z and
    // 1 + erf(z/√2) are written once; z/√2 and z/2 are a multiply of z that every reader
    // recomputes rather than 32-wide passes of their own. So the forward writes three maps of
    // the hidden layer's shape (z, 1 + erf, the activation), not five.
    let dir = temp_dir("bench", "gelu_maps");
    let file = dir.join("gelu.net");
    let source = "model m(x: [B, 16]) -> s: [B, 2] {\n  x |> dense(32) |> gelu |> dense(2)\n}\n\
                  data d { source: synthetic(samples: 8, classes: 2, seed: 1) }\n\
                  train m {\n  loss: cross_entropy(s, labels)\n  optimizer: sgd(lr: 0.1)\n  batch: 8\n}\n";
    std::fs::write(&file, source).unwrap();
    let (rows, table) = profile(&file);
    // The forward: up to the second dense layer's product.
    let forward =
        rows.iter().position(|r| r.starts_with("gemm") && r.ends_with("32x2")).unwrap_or_else(|| panic!("{table}"));
    let maps = rows[..forward].iter().filter(|r| **r == "map [B, 32]").count();
    assert_eq!(maps, 3, "{table}");
}

#[test]
fn an_lstm_step_writes_its_stored_activations_into_their_stacks() {
    // The backward pass reads each step's σ(i), σ(f), tanh(g), σ(o) and tanh(c') from stacks
    // the forward loop fills. Each is computed straight into its step's slot of the stack:
    // 15 maps per step, where a copy of each into its stack made 20.
    let (_dir, file) = rnn_file("lstm_stacks", 7);
    let source = std::fs::read_to_string(&file).unwrap().replace("rnn(x, 7)", "lstm(x, 7)");
    std::fs::write(&file, source).unwrap();
    let (code, out, err) = netc(&["bench", file.to_str().unwrap(), "--steps", "2", "--warmup", "1", "--profile"]);
    assert_eq!(code, 0, "{err}");
    let forward = out.lines().find(|l| l.contains("loop 6 x [")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(forward.matches("map").count(), 15, "{forward}");
}

#[test]
fn a_loop_reads_its_recurrent_weight_row_by_row() {
    // The forward body's product h @ transpose(W_hh) reads the weight's transpose. Passed as a
    // view, every step's GEMM would read it column by column; it is copied once before the
    // loop (`map [7, 7]`), and the backward loop, which reads it transposed again, is not
    // given a copy (no second `map [7, 7]`).
    let (_dir, file) = rnn_file("loop_invariant_copy", 7);
    let (rows, table) = profile(&file);
    let forward = rows.iter().position(|r| r.starts_with("loop 6 x")).unwrap_or_else(|| panic!("{table}"));
    assert!(rows[..forward].iter().any(|r| r.starts_with("map [7, 7]")), "{table}");
    assert_eq!(rows.iter().filter(|r| r.starts_with("map [7, 7]")).count(), 1, "{table}");
}

#[test]
fn a_backward_loop_leaves_the_shared_weight_gradient_to_one_gemm_after_it() {
    // rnn(x, 7) over x [B, 6, 3]: the input's products of all steps are one product before
    // the forward loop, whose body keeps one GEMM (h W_hh); the backward body has one (dh):
    // dW_hh = Σ_t h_tᵀ dz_t is one GEMM after the loop over the 6 steps' stacks (`opt::hoist`),
    // with k = 6·B, not a [7, 7] product and sum per step.
    let (_dir, file) = rnn_file("loop_accumulate", 7);
    let (rows, table) = profile(&file);
    let body = |at: usize| -> Vec<&String> { rows[at + 1..].iter().take_while(|r| r.starts_with("  ")).collect() };
    let forward = rows.iter().position(|r| r.starts_with("loop 6 x")).unwrap_or_else(|| panic!("{table}"));
    let backward = rows.iter().position(|r| r.starts_with("loop 6 reversed")).unwrap_or_else(|| panic!("{table}"));
    let gemms = |at: usize| body(at).iter().filter(|r| r.contains("gemm")).count();
    assert_eq!(gemms(forward), 1, "{table}");
    assert_eq!(gemms(backward), 1, "{table}");
    assert!(!body(backward).iter().any(|r| r.contains("[7, 7]")), "{table}");
    let after = &rows[backward + 1 + body(backward).len()..];
    assert!(after.iter().any(|r| r.starts_with("gemm 7x6·B . 6·Bx7")), "{table}");
}
