//! Entry points for the fuzz targets (`tests/fuzz`, run with cargo-fuzz) and for the
//! regression tests that replay their findings (`tests/fuzz_regressions.rs`). Each takes
//! arbitrary bytes and must return, whatever they hold, without panicking.

use std::path::PathBuf;

use crate::runtime::data::LoadOptions;

/// The front end and code generation: lex, parse, check, then JIT-compile every model's
/// forward graph and every train block's step (small ones: the memory limit is 64 MiB).
pub fn frontend(bytes: &[u8]) {
    let Ok(src) = std::str::from_utf8(bytes) else { return };
    let Ok(checked) = crate::frontend::check::check_source(src) else { return };
    let limit = 64 << 20;
    for m in &checked.models {
        if crate::ir::limits::check(&m.graph, 4, limit, "fuzz").is_ok() {
            let mut g = m.graph.clone();
            if crate::ir::opt::optimize(&mut g, None).is_ok() {
                let _ = crate::drivers::jit::compile(&g, &crate::codegen::CompileOptions::default());
            }
        }
    }
    for t in &checked.trains {
        if crate::ir::limits::check(&t.graph, 4, limit, "fuzz").is_ok() {
            if let Ok(program) = crate::training::TrainGraphs::new(t) {
                let _ = crate::training::jit_engine::jit_engine(program, false);
            }
        }
    }
    for e in &checked.evals {
        if crate::ir::limits::check(&e.graph, 1, limit, "fuzz").is_ok() {
            let _ = crate::commands::eval::evaluate(e, 0);
        }
    }
}

/// A scratch file of this process for loaders that read paths.
fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("netc-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::write(&path, bytes);
    path
}

/// The CSV loader, with and without a declared sample shape and class count.
pub fn csv(bytes: &[u8]) {
    let path = scratch("in.csv", bytes);
    let _ = crate::runtime::data::load_csv(&path, &LoadOptions::default());
    let opts = LoadOptions { sample_shape: Some(vec![2, 2]), classes: Some(3), ..LoadOptions::default() };
    let _ = crate::runtime::data::load_csv(&path, &opts);
}

/// The NPY loader: the bytes as features, then as labels (the other file valid).
pub fn npy(bytes: &[u8]) {
    let good = scratch("good.npy", &valid_npy());
    let path = scratch("in.npy", bytes);
    let _ = crate::runtime::data::load_npy(&path, &good, &LoadOptions::default());
    let _ = crate::runtime::data::load_npy(&good, &path, &LoadOptions::default());
}

/// The IDX loader: the bytes as images, then as labels.
pub fn idx(bytes: &[u8]) {
    let labels = scratch("good-labels.idx", &[0, 0, 8, 1, 0, 0, 0, 2, 1, 0]);
    let images = scratch("good-images.idx", &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 7, 9]);
    let path = scratch("in.idx", bytes);
    let _ = crate::runtime::data::load_idx(&path, &labels, &LoadOptions::default());
    let _ = crate::runtime::data::load_idx(&images, &path, &LoadOptions::default());
}

/// The safetensors weight loader, plain and checked against a model's parameters.
pub fn safetensors(bytes: &[u8]) {
    let path = scratch("in.safetensors", bytes);
    let _ = crate::runtime::weights::load(&path);
    let _ = crate::runtime::weights::load_for(&path, &[("W", &[2, 3]), ("b", &[3])]);
    let _ = crate::runtime::weights::load_metadata(&path);
}

/// A float32 [2] NPY file: two labels, 0 and 1.
fn valid_npy() -> Vec<u8> {
    let header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    out.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
    out.extend_from_slice(header);
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out.extend_from_slice(&0f32.to_le_bytes());
    out.extend_from_slice(&1f32.to_le_bytes());
    out
}

/// `netc build` of every model of the bytes as a `.net` source (models under a 64 MiB limit):
/// the header must give every macro and every parameter of a prototype a distinct name (C
/// names are mangled injectively), and, where a C compiler is installed, compile with
/// `-Wall -Wextra -Werror -pedantic -std=c99`.
pub fn build(bytes: &[u8]) {
    let Ok(src) = std::str::from_utf8(bytes) else { return };
    let Ok(checked) = crate::frontend::check::check_source(src) else { return };
    for m in &checked.models {
        let opts = crate::drivers::object::BuildOptions {
            model: Some(m.name.clone()),
            memory_limit: Some(64 << 20),
            source_name: "fuzz.net".into(),
            ..Default::default()
        };
        if crate::ir::limits::check(&m.graph, 4, 64 << 20, "fuzz").is_err() {
            continue;
        }
        let Ok(built) = crate::drivers::object::build(&checked, &opts) else { continue };
        if let Err(e) = header_names_are_distinct(&built.header) {
            panic!("{e}\n{}", built.header);
        }
        if let Err(e) = header_compiles(&built.header) {
            panic!("the header does not compile:\n{e}\n{}", built.header);
        }
    }
}

/// Every `#define` names a different macro, and no prototype names two parameters alike.
pub fn header_names_are_distinct(header: &str) -> Result<(), String> {
    let mut macros = std::collections::HashSet::new();
    for line in header.lines() {
        if let Some(name) = line.strip_prefix("#define ").and_then(|r| r.split_whitespace().next()) {
            if !macros.insert(name) {
                return Err(format!("macro {name} is defined twice"));
            }
        }
        if line.starts_with("void ") || line.starts_with("int64_t ") {
            let Some(params) = line.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map(|(p, _)| p) else {
                continue;
            };
            let mut names = std::collections::HashSet::new();
            for p in params.split(',') {
                let name = p.trim().rsplit(|c: char| c == '*' || c == ' ').next().unwrap_or("");
                if !names.insert(name) || macros.contains(name) {
                    return Err(format!("parameter `{name}` of `{line}` is not distinct"));
                }
            }
        }
    }
    Ok(())
}

/// Compile `header` (included by an empty C file) with `cc -std=c99 -pedantic -Wall
/// -Wextra -Werror`; Ok if it compiles or no `cc` is installed.
pub fn header_compiles(header: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("netc-fuzz-{}-cc", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (h, c) = (dir.join("model.h"), dir.join("main.c"));
    std::fs::write(&h, header).map_err(|e| e.to_string())?;
    std::fs::write(&c, "#include \"model.h\"\nint main(void) { return 0; }\n").map_err(|e| e.to_string())?;
    let out = std::process::Command::new("cc")
        .args(["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
        .arg(&c)
        .output();
    match out {
        Err(_) => Ok(()), // no C compiler here
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
    }
}

/// The REPL: the bytes as a piped session, line by line (`:load` and `:train` lines are
/// skipped: they read files and train for as long as the file says).
pub fn repl(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let script: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with(":load") && !l.trim_start().starts_with(":train"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let _ = crate::commands::repl::run_script(script.as_bytes(), &mut out, &mut err);
}
