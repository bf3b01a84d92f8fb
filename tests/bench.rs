//! `netc bench`: the JSON report has every figure, each positive (no wall-clock thresholds).

mod common;
use common::*;

/// The number after `"key": ` in a flat JSON object.
fn number(json: &str, key: &str) -> f64 {
    let at = json.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no `{key}` in {json}"));
    let rest = &json[at + key.len() + 4..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim().parse().unwrap_or_else(|_| panic!("`{key}` is not a number in {json}"))
}

#[test]
fn bench_reports_times_throughput_and_memory() {
    let (code, out, err) =
        netc(&["bench", "examples/digits_cnn.net", "--steps", "3", "--warmup", "1", "--json", "--threads", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with('{') && out.trim().ends_with('}'), "{out}");
    assert!(out.contains("\"model\": \"digits_cnn\""), "{out}");
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
