//! gelu, silu, erf, clip, the comparisons, where and var against PyTorch: values and first
//! derivatives at special points (0, ±tiny, every region of erf's approximation, clip's
//! bounds, large magnitudes), comparisons at ties and signed zeros, where's gradient routed
//! by the mask (also through a branch whose own gradient is NaN where it is not taken) and
//! broadcast back, var with both corrections. The references were computed once by
//! `tests/data/activations/make_reference.py` (PyTorch, float64) and are checked in as
//! `reference.json` beside it. Eval blocks run in float64 on the JIT (inline erf, exp, tanh)
//! and on the interpreter (libm's erf).

use crate::common;

use common::reference::{self, assert_all_close_abs, eval_both, grad, list, nums, shown, F64_REL};
use serde_json::Value;

/// `vs` as rows of `cols` values.
fn rows(vs: &[f64], cols: usize) -> String {
    format!("[{}]", vs.chunks(cols).map(list).collect::<Vec<_>>().join(", "))
}

#[test]
fn erf_gelu_silu_and_clip_at_special_points() {
    let r = reference::load("activations");
    let table = r["elementwise"].as_array().unwrap();
    assert_eq!(table.len(), 8, "erf, two gelus, silu, four clips");
    for entry in table {
        let expr = entry["expr"].as_str().unwrap();
        let x = nums(&entry["x"]);
        // gelu is ½x(1 + erf(x/√2)) (or tanh) in both netc and torch: for x ≪ 0 the sum
        // cancels, so one ulp of erf near −1 is an absolute error of ~ulp(1)·|x|/2 in the
        // value (and ulp(1)/2 in the slope) on either side.
        let cancels = expr.starts_with("gelu");
        let abs = |scale: &dyn Fn(f64) -> f64| -> Vec<f64> {
            x.iter().map(|&v| if cancels { 4e-16 * scale(v) } else { 0.0 }).collect()
        };
        let src =
            format!("eval t {{\n  let x = {}\n  let y = {expr}\n  let f = sum(y)\n  y\n  grad f wrt x\n}}\n", list(&x));
        for (exec, out) in eval_both(&src) {
            let what = format!("{expr} ({exec:?}) at {x:?}");
            assert_all_close_abs(
                &format!("{what}: value"),
                shown(&out, 0),
                &nums(&entry["y"]),
                F64_REL,
                &abs(&|v| v.abs()),
            );
            assert_all_close_abs(
                &format!("{what}: derivative"),
                grad(&out, "x"),
                &nums(&entry["dy"]),
                F64_REL,
                &abs(&|_| 1.0),
            );
        }
    }
}

#[test]
fn clip_passes_the_gradient_strictly_inside_its_bounds() {
    // torch.clamp with number bounds (PyTorch 2.x): slope 1 strictly between the bounds, 0 at
    // the bounds themselves and outside.
    let r = reference::load("activations");
    let entry = r["elementwise"].as_array().unwrap().iter().find(|e| e["expr"] == "clip(x, -1, 2)").unwrap();
    let (x, dy) = (nums(&entry["x"]), nums(&entry["dy"]));
    for (v, d) in x.iter().zip(&dy) {
        assert_eq!(*d, if *v > -1.0 && *v < 2.0 { 1.0 } else { 0.0 }, "torch's slope at {v}");
    }
    let src = "eval t {\n  let x = [-1, 2, -1.0000001, 2.0000001, 0, -0.9999999, 1.9999999]\n  let f = sum(clip(x, -1, 2))\n  grad f wrt x\n}\n";
    for (exec, out) in eval_both(src) {
        assert_eq!(grad(&out, "x"), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0], "{exec:?}");
    }
}

#[test]
fn comparisons_give_masks_as_torch() {
    let r = reference::load("activations");
    let c = &r["comparisons"];
    let (a, b) = (nums(&c["a"]), nums(&c["b"]));
    for op in [">", "<", ">=", "<=", "==", "!="] {
        let src = format!("eval t {{\n  let a = {}\n  let b = {}\n  a {op} b\n}}\n", list(&a), list(&b));
        for (exec, out) in eval_both(&src) {
            assert_eq!(shown(&out, 0), nums(&c[op]).as_slice(), "a {op} b ({exec:?}) at {a:?}, {b:?}");
        }
    }
    // NaN: every comparison is false except !=, as in torch and numpy.
    let src = "eval t {\n  let z = [0, 1]\n  let n = z / z * 0 + [0, 1] * 0 / 0\n  concat([n > 0, n < 0, n >= n, n <= n, n == n, n != n])\n}\n";
    for (exec, out) in eval_both(src) {
        assert_eq!(shown(&out, 0), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0], "{exec:?}");
    }
}

#[test]
fn where_routes_the_gradient_by_the_mask() {
    let r = reference::load("activations");
    let s = &r["where"]["switch"];
    let (x, a, b, w) = (nums(&s["x"]), nums(&s["a"]), nums(&s["b"]), nums(&s["w"]));
    let src = format!(
        "eval t {{\n  let x = {}\n  let a = {}\n  let b = {}\n  let w = {}\n  let y = where(x > 0, a * x, b)\n  let f = sum(y * w)\n  y\n  grad f wrt x, a, b\n}}\n",
        rows(&x, 4),
        rows(&a, 4),
        list(&b),
        rows(&w, 4)
    );
    let zero = [0.0; 8];
    for (exec, out) in eval_both(&src) {
        let what = format!("where(x > 0, a * x, b) ({exec:?})");
        assert_all_close_abs(&format!("{what}: value"), shown(&out, 0), &nums(&s["y"]), 0.0, &zero);
        assert_all_close_abs(&format!("{what}: d/dx"), grad(&out, "x"), &nums(&s["dx"]), 0.0, &zero);
        assert_all_close_abs(&format!("{what}: d/da"), grad(&out, "a"), &nums(&s["da"]), 0.0, &zero);
        // b [4] broadcast over both rows: its gradient is summed back.
        assert_all_close_abs(&format!("{what}: d/db"), grad(&out, "b"), &nums(&s["db"]), 0.0, &zero);
    }
    let u = &r["where"]["untaken"];
    let z = nums(&u["x"]);
    let src = format!(
        "eval t {{\n  let x = {}\n  let y = where(x > 0, log(x), x * 3)\n  let f = sum(y)\n  y\n  grad f wrt x\n}}\n",
        list(&z)
    );
    for (exec, out) in eval_both(&src) {
        let what = format!("where(x > 0, log(x), x * 3) ({exec:?})");
        assert_all_close_abs(&format!("{what}: value"), shown(&out, 0), &nums(&u["y"]), F64_REL, &[0.0; 4]);
        assert_all_close_abs(&format!("{what}: d/dx"), grad(&out, "x"), &nums(&u["dx"]), F64_REL, &[0.0; 4]);
    }
}

#[test]
fn var_with_both_corrections() {
    let r = reference::load("activations");
    let v = &r["var"];
    let x = rows(&nums(&v["x"]), 4);
    for correction in [0, 1] {
        let want = &v[format!("axis1_c{correction}")];
        let src = format!(
            "eval t {{\n  let x = {x}\n  let y = var(x, axis: 1, correction: {correction}, keepdims: true)\n  let f = sum(y * [[1], [2], [-1.5]])\n  y\n  grad f wrt x\n}}\n"
        );
        for (exec, out) in eval_both(&src) {
            let what = format!("var correction {correction} ({exec:?})");
            assert_all_close_abs(&format!("{what}: value"), shown(&out, 0), &nums(&want["y"]), F64_REL, &[0.0; 3]);
            assert_all_close_abs(&format!("{what}: d/dx"), grad(&out, "x"), &nums(&want["dx"]), F64_REL, &[1e-16; 12]);
        }
    }
    let want = &v["all"];
    let src = format!("eval t {{\n  let x = {x}\n  let y = var(x)\n  y\n  grad y wrt x\n}}\n");
    for (exec, out) in eval_both(&src) {
        assert_all_close_abs(&format!("var(x) ({exec:?})"), shown(&out, 0), &nums(&want["y"]), F64_REL, &[0.0]);
        assert_all_close_abs(
            &format!("var(x) ({exec:?}): d/dx"),
            grad(&out, "x"),
            &nums(&want["dx"]),
            F64_REL,
            &[1e-16; 12],
        );
    }
}

/// `vs` as a [d0, d1, d2] literal.
fn cube(vs: &[f64], d1: usize, d2: usize) -> String {
    format!("[{}]", vs.chunks(d1 * d2).map(|m| rows(m, d2)).collect::<Vec<_>>().join(", "))
}

#[test]
fn attention_matches_torch_scaled_dot_product_attention() {
    // The prelude's attention(q, k, v, mask:) against F.scaled_dot_product_attention with a
    // boolean attn_mask broadcast over the batch (masked keys get weight exactly 0), and
    // without a mask.
    let r = reference::load("activations");
    let a = &r["attention"];
    let (q, k, v, w) = (
        cube(&nums(&a["q"]), 3, 4),
        cube(&nums(&a["k"]), 5, 4),
        cube(&nums(&a["v"]), 5, 3),
        cube(&nums(&a["w"]), 3, 3),
    );
    let mask = rows(&nums(&a["mask"]), 5);
    for (name, call) in
        [("masked", format!("attention(q, k, v, mask: {mask})")), ("unmasked", "attention(q, k, v)".into())]
    {
        let want = &a[name];
        let src = format!(
            "eval t {{\n  let q = {q}\n  let k = {k}\n  let v = {v}\n  let y = {call}\n  let f = sum(y * {w})\n  y\n  grad f wrt q, k, v\n}}\n"
        );
        for (exec, out) in eval_both(&src) {
            let what = format!("{name} attention ({exec:?})");
            let abs = |n| vec![1e-15; n];
            assert_all_close_abs(&format!("{what}: value"), shown(&out, 0), &nums(&want["y"]), 1e-13, &abs(18));
            assert_all_close_abs(&format!("{what}: d/dq"), grad(&out, "q"), &nums(&want["dq"]), 1e-13, &abs(24));
            assert_all_close_abs(&format!("{what}: d/dk"), grad(&out, "k"), &nums(&want["dk"]), 1e-13, &abs(40));
            assert_all_close_abs(&format!("{what}: d/dv"), grad(&out, "v"), &nums(&want["dv"]), 1e-13, &abs(30));
        }
    }
}

/// `vs` as a literal of `shape` (row-major).
fn nested(vs: &[f64], shape: &[usize]) -> String {
    if shape.len() <= 1 {
        return list(vs);
    }
    let inner: usize = shape[1..].iter().product();
    format!("[{}]", vs.chunks(inner).map(|c| nested(c, &shape[1..])).collect::<Vec<_>>().join(", "))
}

#[test]
fn convolution_and_pooling_follow_torch_floor_rule() {
    // A 3×3, stride-2, pad-1 conv of an even 6×6 input is 3×3 (the last row and column are in
    // no window and get a zero gradient), as are avgpool2d with padding (the zeros counted) and
    // maxpool2d of 5×5; global_avgpool is the mean of each plane.
    let r = reference::load("activations");
    let t = &r["windows"];
    let x = nested(&nums(&t["x"]), &[1, 2, 6, 6]);
    let w = nested(&nums(&t["w"]), &[3, 2, 3, 3]);
    let x5 = nested(&nums(&t["x5"]), &[1, 2, 5, 5]);
    let cases = [
        ("conv", "conv(x, w, stride: 2, pad: 1)", vec!["x", "w"]),
        ("avgpool", "avgpool2d(x, size: 3, stride: 2, pad: 1)", vec!["x"]),
        ("maxpool", "maxpool2d(x5, size: 2, stride: 2)", vec!["x5"]),
        ("global", "global_avgpool(x)", vec!["x"]),
    ];
    let lets = format!("  let x = {x}\n  let w = {w}\n  let x5 = {x5}");
    for (name, expr, wrt) in cases {
        check_window(&lets, expr, &wrt, &t[name], |v| if v == "w" { "dw".into() } else { "dx".into() });
    }
}

/// `y = expr` (its variables defined by `lets`) against `want`: y's shape and values, and the
/// gradients of sum(y · c) (c a fixed ramp) with respect to each of `wrt`, in `want[key(v)]`.
fn check_window(lets: &str, expr: &str, wrt: &[&str], want: &Value, key: fn(&str) -> String) {
    let shape: Vec<usize> = want["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let n: usize = shape.iter().product();
    let c: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 + 0.5).collect();
    let src = format!(
        "eval t {{\n{lets}\n  let y = {expr}\n  let f = sum(y * {})\n  y\n  grad f wrt {}\n}}\n",
        nested(&c, &shape),
        wrt.join(", ")
    );
    for (exec, out) in eval_both(&src) {
        let what = format!("{expr} ({exec:?})");
        assert_eq!(out.shows[0].1.shape, shape, "{what}: shape");
        assert_all_close_abs(&format!("{what}: value"), shown(&out, 0), &nums(&want["y"]), 1e-13, &vec![1e-15; n]);
        for v in wrt {
            let g = grad(&out, v);
            let want = nums(&want[key(v).as_str()]);
            assert_all_close_abs(&format!("{what}: d/d{v}"), g, &want, 1e-13, &vec![1e-15; g.len()]);
        }
    }
}

#[test]
fn grouped_one_dimensional_transposed_convolutions_and_upsampling_match_torch() {
    let r = reference::load("activations");
    let t = &r["more_windows"];
    let vars = [
        ("x", vec![1, 4, 5, 5]),
        ("wg", vec![4, 2, 3, 3]),
        ("x1", vec![2, 3, 7]),
        ("w1", vec![4, 3, 3]),
        ("xt", vec![1, 2, 3, 3]),
        ("wt", vec![2, 3, 3, 3]),
    ];
    let lets: Vec<String> = vars.iter().map(|(n, s)| format!("  let {n} = {}", nested(&nums(&t[*n]), s))).collect();
    let cases = [
        ("grouped", "conv(x, wg, pad: 1, groups: 2)", vec!["x", "wg"]),
        ("conv1d", "conv1d(x1, w1, stride: 2, pad: 1)", vec!["x1", "w1"]),
        ("transposed", "conv_transpose2d(xt, wt, stride: 2, pad: 1)", vec!["xt", "wt"]),
        ("upsample", "upsample2d(x)", vec!["x"]),
    ];
    let lets = lets.join("\n");
    for (name, expr, wrt) in cases {
        check_window(&lets, expr, &wrt, &t[name], |v| if v == "x" { "dx".into() } else { format!("d{v}") });
    }
}
