//! The let cache seen from inside: what a line's program holds after a long chain.

use super::Session;

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
    lines.extend((0..300).map(|_| "let a = a * 3 + 0.7".to_string()));
    let mut s = session(&lines);
    let (src, _) = s.program("a");
    assert!(lets_in(&src) <= super::CACHE_AFTER + 1, "{src}");
    // The cached value is the exact one: the uncached program computes the same bits.
    let (uncached, _) = s.program_uncached("a");
    assert_eq!(lets_in(&uncached), 301);
    let value = |src: &str| {
        let c = s.check(src).unwrap();
        crate::commands::eval::evaluate(c.evals.last().unwrap(), 0).unwrap().shows[0].1.clone()
    };
    assert_eq!(value(&src), value(&uncached));
}

#[test]
fn values_drawn_at_run_time_are_not_cached() {
    let mut lines = vec!["let x = [[1, 2, 3]]".to_string(), "let h = dense(x, 2)".to_string()];
    lines.push("let c0 = h".to_string());
    lines.extend((1..40).map(|i| format!("let c{i} = c{} * 1", i - 1)));
    lines.push("let k0 = x".to_string());
    lines.extend((1..40).map(|i| format!("let k{i} = k{} + 1", i - 1)));
    let mut s = session(&lines);
    let (src, _) = s.program("c39 + k39");
    assert!(src.contains("let h = dense(x, 2)") && src.contains("let c39 = c38 * 1"), "{src}");
    // The k chain is a function of literals: cut, at most CACHE_AFTER of its lets unknown.
    let ks = src.lines().filter(|l| l.starts_with("let k")).count();
    assert!(ks <= super::CACHE_AFTER + 1 && !src.contains("let k0 = x"), "{src}");
    assert!(src.contains("= [[33.0, 34.0, 35.0]]"), "k32 as its literal: {src}");
}
