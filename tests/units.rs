//! The library's modules tested one at a time (the lexer, the parser, the RNG, the memory
//! plan, ...) through their public items. They live here rather than in `#[cfg(test)]`
//! modules of the library so that `cargo test` compiles the library once, not a second time
//! as a unit-test crate (`[lib] test = false`; a fresh build of the tests 415 → 358 s on the
//! 2-core AVX2 machine).

mod check_train;
mod collective;
mod data_parallel_engine;
mod diag;
mod files;
mod interp;
mod lexer;
mod memplan;
mod metrics;
mod ops;
mod params;
mod parser;
mod random_streams;
mod repl_session;
mod rng;
mod winograd_transforms;

/// The library is not compiled as a test crate (`[lib] test = false`), so a `#[cfg(test)]`
/// module in `src/` would never run: its tests belong here.
#[test]
fn the_library_has_no_test_modules_that_would_never_run() {
    fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).unwrap().contains(concat!("#[cfg", "(test)]"))
            {
                found.push(path.display().to_string());
            }
        }
    }
    let mut found = vec![];
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
    assert!(found.is_empty(), "move these tests to tests/units/: {found:?}");
}
