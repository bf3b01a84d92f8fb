//! The front end: source text in, a `Checked` program out (one graph per model, train block
//! and eval block), or every diagnostic found.
//!
//! - `lexer`: logos tokens; `parser` (+ `grammar/netc.lalrpop`): tokens → `ast`
//! - `check/`: names, shapes and settings, by elaborating the program (each call of a
//!   function or layer is expanded with its arguments' shapes); built-ins lower into graph
//!   primitives through `lower`
//! - `checked`: the checked program, what every later stage reads
//! - `prelude.net`: the built-in layers written in the language

pub mod ast;
pub mod builtins;
pub mod check;
pub mod checked;
pub mod lexer;
pub mod lower;
pub mod parser;

use std::path::Path;

use crate::diag::Diagnostic;

/// Read a source file; a missing file or invalid UTF-8 is a diagnostic.
pub fn read_source(file: &Path) -> Result<String, Diagnostic> {
    let bytes = std::fs::read(file)
        .map_err(|e| Diagnostic::new("E-io", format!("cannot read {}: {}", file.display(), io_reason(&e))))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let src = String::from_utf8_lossy(e.as_bytes());
        let line = src[..at.min(src.len())].lines().count().max(1);
        Diagnostic::new(
            "E-io",
            format!("{} is not UTF-8 text: invalid byte at offset {at} (line {line})", file.display()),
        )
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
