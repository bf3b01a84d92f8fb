//! `netc bench`: the JSON report has every figure, each positive (no wall-clock thresholds).

mod common;
use common::*;

/// The number `key` of a JSON object.
fn number(json: &str, key: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    v.get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {json}"))
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {json}"))
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
