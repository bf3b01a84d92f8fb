//! `Model.params`, `.state` and `.optimizer_state`: a mapping from tensor names to numpy
//! arrays. Reading gives a read-only view of the model's own buffer (no copy: it shows the
//! values as training changes them, and keeps the model alive as its base); assigning
//! `m.params["W"] = a` copies `a` in after checking its shape and dtype.

use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::model::Model;

#[pyclass(frozen, module = "netc._netc", name = "Tensors", mapping)]
pub struct Tensors {
    model: Py<Model>,
    /// What these tensors are ("parameters", "state", "optimizer state"), for messages.
    what: &'static str,
    /// `(name, index in the session's tensors)`, in the model's order.
    entries: Vec<(String, usize)>,
}

impl Tensors {
    pub fn new(model: Py<Model>, what: &'static str, entries: Vec<(String, usize)>) -> Tensors {
        Tensors { model, what, entries }
    }

    fn index(&self, name: &str) -> PyResult<usize> {
        match self.entries.iter().find(|(n, _)| n == name) {
            Some(&(_, i)) => Ok(i),
            None => {
                let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
                let hint = netc::diag::nearest(name, names.iter().copied())
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                let list = if names.is_empty() { "none".to_string() } else { names.join(", ") };
                Err(PyKeyError::new_err(format!("no {} named `{name}`{hint}; the model has: {list}", self.what)))
            }
        }
    }
}

#[pymethods]
impl Tensors {
    fn __len__(&self) -> usize {
        self.entries.len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let i = self.index(name)?;
        Model::view(self.model.bind(py), i)
    }

    fn __setitem__(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.index(name)?;
        self.model.bind(py).get().assign(py, i, value)
    }

    fn __delitem__(&self, name: &str) -> PyResult<()> {
        Err(PyTypeError::new_err(format!(
            "a model's {} cannot be removed (`{name}`); assign new values instead",
            self.what
        )))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.keys(py)?.try_iter()?.into_any())
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.entries.iter().map(|(n, _)| n))
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let model = self.model.bind(py);
        let views = self.entries.iter().map(|&(_, i)| Model::view(model, i)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, views)
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let model = self.model.bind(py);
        let pairs =
            self.entries.iter().map(|(n, i)| Ok((n.clone(), Model::view(model, *i)?))).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, pairs)
    }

    #[pyo3(signature = (name, default=None))]
    fn get<'py>(&self, py: Python<'py>, name: &str, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        match self.entries.iter().find(|(n, _)| n == name) {
            Some(&(_, i)) => Model::view(self.model.bind(py), i),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Assign several tensors from a mapping, all or none: every one is checked first.
    pub fn update(&self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let dict = PyDict::new(py);
        dict.call_method1("update", (values,))?;
        let mut checked = vec![];
        for (name, value) in dict.iter() {
            let name: String = name.extract()?;
            let i = self.index(&name)?;
            checked.push((i, self.model.bind(py).get().convert(py, i, &value)?));
        }
        let model = self.model.bind(py).get();
        for (i, values) in checked {
            model.store(py, i, &values)?;
        }
        Ok(())
    }

    /// A copy of every tensor as a plain dict of arrays.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in
            self.items(py)?.iter().map(|p| p.extract::<(String, Bound<PyAny>)>()).collect::<PyResult<Vec<_>>>()?
        {
            dict.set_item(name, value.call_method0("copy")?)?;
        }
        Ok(dict)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let model = self.model.bind(py).get();
        let shapes: Vec<String> = self
            .entries
            .iter()
            .map(|(n, i)| format!("'{n}': {}", crate::arrays::shape_str(false, &model.shape_of(py, *i))))
            .collect();
        Ok(format!("<{} {{{}}}>", self.what, shapes.join(", ")))
    }
}
