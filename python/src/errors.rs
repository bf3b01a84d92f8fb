//! netc's diagnostics as Python exceptions: a source that does not compile raises
//! `CompileError` (with where it points); a bad argument or array `ValueError`/`TypeError`, a
//! file that cannot be read or written `OSError`, anything else `NetcError`. The message is
//! the diagnostic as the CLI prints it, without colour.

use netc::diag::{self, Diagnostic};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

create_exception!(
    netc,
    CompileError,
    PyException,
    "A .net source that does not compile. The message is the rendered diagnostics; `line` and \
     `column` (1-based, or None) say where the first one points, `code` is its class (`E-shape`)."
);

create_exception!(netc, NetcError, PyRuntimeError, "netc could not do what was asked (the message says why).");

/// A source that did not compile, with `line`, `column`, `code` and `diagnostics` (every
/// message) as attributes.
pub fn compile_error(py: Python<'_>, e: netc::session::CompileError) -> PyErr {
    // A file that cannot be read or a model that is not there is not a compile error.
    if let ("E-io" | "E-usage", [d]) = (e.code, e.diagnostics.as_slice()) {
        return diagnostic(d.clone());
    }
    let err = CompileError::new_err(e.rendered.trim_end().to_string());
    let value = err.value(py);
    let messages: Vec<String> = e.diagnostics.iter().map(|d| d.message.clone()).collect();
    let attrs = (|| -> PyResult<()> {
        value.setattr("line", e.line)?;
        value.setattr("column", e.column)?;
        value.setattr("code", e.code)?;
        value.setattr("diagnostics", messages)?;
        Ok(())
    })();
    match attrs {
        Ok(()) => err,
        Err(failed) => failed,
    }
}

/// A diagnostic as the Python exception of its class.
pub fn diagnostic(d: Diagnostic) -> PyErr {
    let text = diag::render(std::slice::from_ref(&d), None, false);
    // Python prints the exception's class: the "error[E-…]: " prefix would repeat it.
    let text = text.trim_end().strip_prefix(&format!("error[{}]: ", d.code)).unwrap_or(text.trim_end()).to_string();
    match d.code {
        // A weights or data file that is not there, as Python's open() says it.
        _ if d.message.ends_with("no such file") => PyFileNotFoundError::new_err(text),
        "E-io" => PyOSError::new_err(text),
        "E-data" | "E-usage" | "E-weights" | "E-predict" => PyValueError::new_err(text),
        "E-memory" => PyMemoryError::new_err(text),
        _ => NetcError::new_err(format!("[{}] {text}", d.code)),
    }
}
