//! The Python module `netc._netc`: a `.net` program as a `Model` over the library the CLI
//! uses (`netc::session::Session`), exchanging arrays with numpy.
//!
//! - `model.rs`    the `Model` class: compile, fit, predict, forward, gradients, save, load
//! - `tensors.rs`  `Model.params` / `.state` / `.optimizer_state`: mappings of numpy views
//! - `arrays.rs`   numpy arrays in (dtype and shape checked, converted at most once)
//! - `progress.rs` a training run's link back to Python: signals, callback, progress bar
//! - `errors.rs`   diagnostics as Python exceptions
//!
//! The Python half of the package (`netc/__init__.py`) adds the keyword conveniences of
//! `fit`, the progress bar and the scikit-learn estimators.

mod arrays;
mod errors;
mod model;
mod progress;
mod tensors;

use pyo3::prelude::*;

#[pymodule]
fn _netc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<model::Model>()?;
    m.add_class::<tensors::Tensors>()?;
    m.add("CompileError", py.get_type::<errors::CompileError>())?;
    m.add("NetcError", py.get_type::<errors::NetcError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
