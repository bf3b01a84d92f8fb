//! Diagnostics snapshots: every `tests/ui/*.net` is run through `netc check` (or the command
//! named by a first-line `# args:` directive, with `{file}` for the file) and its exit code and
//! stderr are compared with `tests/ui/NAME.stderr`. Re-bless with `NETC_BLESS=1 cargo test ui::`.

use std::path::Path;
use std::process::Command;

fn run_case(path: &Path) -> String {
    let src = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&src);
    let args: Vec<String> = match text.lines().next().and_then(|l| l.strip_prefix("# args:")) {
        Some(a) => a.split_whitespace().map(|w| w.replace("{file}", &path.display().to_string())).collect(),
        None => vec!["check".into(), path.display().to_string()],
    };
    let out =
        Command::new(env!("CARGO_BIN_EXE_netc")).args(&args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{}: netc panicked:\n{stderr}", path.display());
    format!("exit: {}\n{}", out.status.code().map_or("signal".to_string(), |c| c.to_string()), stderr)
}

#[test]
fn diagnostics_match_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let bless = std::env::var_os("NETC_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "net"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "the ui cases are missing");
    let mut failures = vec![];
    for case in &cases {
        // Run with a relative path so snapshots do not depend on where the checkout lives.
        let rel = case.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let got = run_case(rel);
        let expected_path = case.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("--- {}\nexpected:\n{expected}\ngot:\n{got}", rel.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ (NETC_BLESS=1 to update):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
