//! Every ```net block of docs/language.md runs with `netc run` (its eval blocks give the same
//! numbers on the JIT and the interpreter); every ```net-error block is rejected.

use crate::common;

/// (should pass, source) of every block.
fn blocks() -> Vec<(bool, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/language.md")).unwrap();
    let mut blocks = vec![];
    let mut current: Option<(bool, String)> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```net") => current = Some((true, String::new())),
            (None, "```net-error") => current = Some((false, String::new())),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some((_, text)), l) => {
                text.push_str(l);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 12, "docs/language.md lost its examples");
    blocks
}

#[test]
fn language_doc_examples_run() {
    // The blocks read the shipped example data by the paths they show.
    let dir = common::temp_dir("docs", "run");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name().to_str().unwrap())).unwrap();
    }
    for (i, (should_pass, src)) in blocks().into_iter().enumerate() {
        let file = dir.join(&format!("block{i}.net"));
        std::fs::write(&file, &src).unwrap();
        let file = file.to_str().unwrap();
        if should_pass {
            let checked = netc::frontend::check::check_source(&src).unwrap();
            // Every train block runs (a few steps: the docs show settings, not results).
            let mut runs: Vec<Vec<&str>> =
                checked.trains.iter().map(|t| vec!["run", file, "--train", &t.name, "--steps", "20"]).collect();
            if runs.is_empty() {
                runs.push(vec!["run", file]);
            }
            let mut out = String::new();
            for args in runs {
                let (code, o, err) = common::netc(&args);
                assert_eq!(code, 0, "this example does not run ({args:?}):\n{src}\n{err}");
                assert!(err.is_empty() || !err.contains("rror"), "this example reports an error:\n{src}\n{err}");
                out.push_str(&o);
            }
            for e in &checked.evals {
                let name = e.name.as_deref().unwrap_or("(unnamed)");
                assert!(out.contains(&format!("eval {name}")), "eval {name} printed nothing:\n{out}");
            }
        } else {
            let (code, out, _) = common::netc(&["run", file]);
            assert_eq!(code, 1, "this example should be rejected:\n{src}\n{out}");
            assert!(netc::frontend::check::check_source(&src).is_err());
        }
    }
}

#[test]
fn language_doc_evals_agree_on_both_engines() {
    use netc::commands::eval::{evaluate_with, Exec};
    for (_, src) in blocks().into_iter().filter(|b| b.0) {
        let checked = netc::frontend::check::check_source(&src).unwrap();
        for e in &checked.evals {
            let jit = evaluate_with(e, 0, Exec::Jit).unwrap_or_else(|m| panic!("JIT: {m}\n{src}"));
            let interp = evaluate_with(e, 0, Exec::Interp).unwrap_or_else(|m| panic!("interpreter: {m}\n{src}"));
            let flat = |o: &netc::commands::eval::EvalOutput| -> Vec<f64> {
                let shows = o.shows.iter().flat_map(|(_, t)| t.data.clone());
                let grads = o.grads.iter().flat_map(|(_, f, gs)| {
                    f.data.iter().copied().chain(gs.iter().flat_map(|(_, g)| g.data.clone())).collect::<Vec<_>>()
                });
                shows.chain(grads).collect()
            };
            let (a, b) = (flat(&jit), flat(&interp));
            assert_eq!(a.len(), b.len(), "{src}");
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "JIT {x} vs interpreter {y} in\n{src}");
            }
        }
    }
}
