//! Replays every input the fuzzers found interesting (and their seeds), kept under
//! `tests/fuzz_regressions/TARGET/`, through the same entry points as the fuzz targets in
//! `tests/fuzz`: none may panic.

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| run(&bytes));
        assert!(result.is_ok(), "{} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "no inputs for {target}");
}

#[test]
fn frontend() {
    replay("frontend", netc::fuzz::frontend);
}

#[test]
fn csv() {
    replay("csv", netc::fuzz::csv);
}

#[test]
fn npy() {
    replay("npy", netc::fuzz::npy);
}

#[test]
fn idx() {
    replay("idx", netc::fuzz::idx);
}

#[test]
fn safetensors() {
    replay("safetensors", netc::fuzz::safetensors);
}

#[test]
fn build() {
    replay("netc_build", netc::fuzz::build);
}

#[test]
fn repl() {
    replay("repl", netc::fuzz::repl);
}
