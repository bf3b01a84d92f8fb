//! The let cache seen from inside: what a line's program holds after a long chain.

use netc::commands::repl::cache::CACHE_AFTER;
use netc::commands::repl::Session;

fn session(lines: &[String]) -> Session {
    let mut s = Session::new(false);
    for l in lines {
        let out = s.handle(l);
        assert!(out.err.is_empty(), "{l}: {}", out.err);
    }
    s
}

fn lets_in(src: &str) -> usize {
    src.lines().filter(|l| l.trim_start().starts_with("let ")).count()
}

#[test]
fn a_chain_of_lets_is_cut_and_each_line_checks_a_bounded_program() {
    let mut lines = vec!["let a = [0.1, 0.2]".to_string()];
    lines.extend((0..300).map(|_| "let a = a * 0.5 + 0.7".to_string()));
    let mut s = session(&lines);
    let (src, _) = s.program("a");
    assert!(lets_in(&src) <= CACHE_AFTER + 1, "{src}");
    // The cached value is the exact one: the uncached program computes the same bits.
    let (uncached, _) = s.program_uncached("a");
    assert_eq!(lets_in(&uncached), 301);
    let value = |src: &str| {
        let c = s.check(src).unwrap();
        netc::commands::eval::evaluate(c.evals.last().unwrap(), 0).unwrap().shows[0].1.clone()
    };
    assert_eq!(value(&src), value(&uncached));
}

#[test]
fn values_drawn_at_run_time_are_not_cached() {
    let mut lines = vec!["let x = [[1, 2, 3]]".to_string(), "let h = dense(x, 2)".to_string()];
    lines.push("let c0 = h".to_string());
    lines.extend((1..40).map(|i| format!("let c{i} = c{} * 1", i - 1)));
    lines.push("let k0 = x + 0.1".to_string());
    lines.extend((1..40).map(|i| format!("let k{i} = k{} + 0.25", i - 1)));
    let mut s = session(&lines);
    let (src, _) = s.program("c39 + k39");
    assert!(src.contains("let h = dense(x, 2)") && src.contains("let c39 = c38 * 1"), "{src}");
    // The k chain is a function of literals: cut, at most CACHE_AFTER of its lets unknown.
    let ks = src.lines().filter(|l| l.starts_with("let k")).count();
    assert!(ks <= CACHE_AFTER + 1 && !src.contains("let k0 = x"), "{src}");
    assert!(src.lines().any(|l| l.starts_with("let k") && l.contains(" = [[")), "a k as its literal: {src}");
}

/// What `line` prints on stdout, failing on any diagnostic.
fn shown(s: &mut Session, line: &str) -> String {
    let out = s.handle(line);
    assert!(out.err.is_empty(), "{line}: {}", out.err);
    out.out
}

/// A counter (`let n = n + 1`, whole numbers) is cut like a chain of floats: its values are
/// kept as integer literals, exact, and still index.
#[test]
fn an_integer_chain_is_cut_keeps_exact_values_and_may_index() {
    // 2^53 - 992: every value of the chain is exact in f64, none of them in f32.
    let mut lines = vec!["let x = [10.5, 20.5, 30.5, 40.5]".to_string(), "let n = 9007199254740000".to_string()];
    lines.extend((0..300).map(|_| "let n = n + 1".to_string()));
    lines.push("let i = [2, 0] + (n - 9007199254740300)".to_string());
    let mut s = session(&lines);
    let (src, _) = s.program("x[i]");
    assert!(lets_in(&src) <= CACHE_AFTER + 2, "{src}");
    assert!(src.contains("let n = 90071992547402") && src.contains(".0\nlet n = n + 1"), "n as a literal: {src}");
    assert_eq!(shown(&mut s, "n - 9007199254740000"), "300\n");
    assert_eq!(shown(&mut s, "x[i]"), "[30.5, 10.5]\n  shape [2]\n");
    assert_eq!(shown(&mut s, "take(x, i)"), "[30.5, 10.5]\n  shape [2]\n");
}

/// Floats that happen to be whole (`[1.5, 2.5] * 2`, a sum of halves) are cut too, and stay
/// floats: they still cannot index.
#[test]
fn a_chain_of_whole_floats_is_cut_and_stays_float() {
    let mut lines = vec![
        "let x = [10.5, 20.5, 30.5, 40.5]".to_string(),
        "let f = [1.5, 0.5] * 2".to_string(),
        "let g = sum([0.5, 0.5])".to_string(),
    ];
    lines.extend((0..300).map(|_| "let f = f + 1".to_string()));
    lines.extend((0..300).map(|_| "let g = g * 1".to_string()));
    let mut s = session(&lines);
    let (src, _) = s.program("f + g");
    assert!(lets_in(&src) <= CACHE_AFTER + 2, "{src}");
    assert!(src.contains(".0] / 1\nlet f = f + 1") && src.contains("let g = sum([1.0]) / 1"), "{src}");
    assert_eq!(shown(&mut s, "f + g"), "[304, 302]\n  shape [2]\n");
    for line in ["x[f]", "x[g]", "take(x, f)"] {
        let err = s.handle(line).err;
        assert!(err.contains("indices must be whole numbers, and this tensor holds floats"), "{line}: {err}");
    }
}

#[test]
fn literals_keep_the_type_the_checker_gave() {
    use netc::ir::tensor::Tensor;
    let whole = Tensor { shape: vec![2], data: vec![3.0, -5.0] };
    assert_eq!(netc::commands::repl::cache::literal(&whole, true).as_deref(), Some("[3.0, -5.0]"));
    assert_eq!(netc::commands::repl::cache::literal(&whole, false).as_deref(), Some("[3.0, -5.0] / 1"));
    assert_eq!(netc::commands::repl::cache::literal(&Tensor::scalar(4.0), false).as_deref(), Some("sum([4.0]) / 1"));
    assert_eq!(netc::commands::repl::cache::literal(&Tensor::scalar(0.1), false).as_deref(), Some("0.1"));
    assert_eq!(netc::commands::repl::cache::literal(&Tensor::scalar(f64::NAN), false), None);
}
