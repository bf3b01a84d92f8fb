//! `netc._netc.Model`: one model of a `.net` file with its parameters, over
//! `netc::session::Session`. Compiled code runs without the GIL. A model is used by one
//! thread at a time: a call from another thread waits (without holding the GIL) until the
//! model is free; a call from inside a `fit` callback on the model it trains is an error.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use netc::session::{Fields, Options, Port, Session, TensorKind};
use netc::training::data::{ArrayField, TrainField};
use netc::training::Overrides;
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::arrays::{self, shape_str, Layout, Values, Want};
use crate::errors::{self, NetcError};
use crate::progress::PyProgress;
use crate::tensors::Tensors;

/// What the lock guards: the session and what the last `fit` left.
struct Inner {
    session: Session,
    /// The loss of every step of the last `fit` (also of an interrupted one).
    history: Vec<f32>,
    /// What the last `fit` did: steps, seconds in the step loop, samples per second, whether
    /// it was stopped early.
    last_fit: Option<(usize, f64, f64, bool)>,
}

#[pyclass(frozen, subclass, module = "netc._netc", name = "Model")]
pub struct Model {
    inner: Mutex<Inner>,
    /// The thread holding `inner` (0: none), to refuse a re-entrant call instead of waiting
    /// for ourselves forever.
    owner: AtomicU64,
    /// The model's inputs and outputs per sample, for checking arrays without the lock.
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    fields: Vec<TrainField>,
    /// The tensors' names, shapes and kinds (fixed for the model's life).
    tensors: Vec<netc::session::TensorInfo>,
    model_name: String,
    train_name: Option<String>,
    path: Option<PathBuf>,
}

/// A small number per thread (`ThreadId::as_u64` is unstable).
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    NUMBER.with(|n| *n)
}

/// `inner`, locked; clears `owner` when dropped.
struct Locked<'a> {
    guard: MutexGuard<'a, Inner>,
    owner: &'a AtomicU64,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Release);
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.guard
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.guard
    }
}

fn diag(d: netc::diag::Diagnostic) -> PyErr {
    errors::diagnostic(d)
}

impl Model {
    /// The session, waiting for another thread to finish with it (without the GIL, so that
    /// thread can call back into Python meanwhile).
    fn lock(&self, py: Python<'_>) -> PyResult<Locked<'_>> {
        let me = thread_number();
        loop {
            match self.inner.try_lock() {
                Ok(guard) => {
                    self.owner.store(me, Ordering::Release);
                    return Ok(Locked { guard, owner: &self.owner });
                }
                // A panic in an earlier call was already raised as PanicException; the
                // session's buffers are still whole (they are only written in place).
                Err(TryLockError::Poisoned(p)) => {
                    self.owner.store(me, Ordering::Release);
                    return Ok(Locked { guard: p.into_inner(), owner: &self.owner });
                }
                Err(TryLockError::WouldBlock) if self.owner.load(Ordering::Acquire) == me => {
                    return Err(NetcError::new_err(
                        "the model is busy in this thread: a fit callback cannot use the model it trains \
                         (take views of m.params before fit: they show the values as they change)",
                    ))
                }
                Err(TryLockError::WouldBlock) => py.detach(|| drop(self.inner.lock())),
            }
        }
    }

    /// A read-only numpy view of tensor `i`, with the model as its base.
    pub fn view<'py>(model: &Bound<'py, Model>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        let py = model.py();
        let this = model.get();
        let inner = this.lock(py)?;
        let shape = &this.tensors[i].shape;
        let values = inner.session.value(i);
        let view = ArrayViewD::from_shape(IxDyn(shape), values)
            .map_err(|e| NetcError::new_err(format!("`{}`: {e}", this.tensors[i].name)))?;
        // SAFETY: the session allocates each tensor's buffer once and only ever writes it in
        // place (`Session::values`), so the memory stays valid and unmoved for as long as the
        // model lives — and the model is the array's base, kept alive by it.
        let array = unsafe { PyArrayDyn::<f32>::borrow_from_array(&view, model.clone().into_any()) };
        drop(inner);
        let array = array.try_readwrite().map_err(|e| NetcError::new_err(e.to_string()))?.make_nonwriteable();
        Ok(array.as_any().clone())
    }

    pub fn shape_of(&self, _py: Python<'_>, i: usize) -> Vec<usize> {
        self.tensors[i].shape.clone()
    }

    /// `value` as the values of tensor `i`: a float array of exactly its shape.
    pub fn convert(&self, _py: Python<'_>, i: usize, value: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
        let t = &self.tensors[i];
        let whose = format!("model {}", self.model_name);
        let want = Want { name: &t.name, whose: &whose, layout: Layout::Fixed(&t.shape), values: Values::Floats };
        let (a, _) = arrays::float32(value, &want)?;
        Ok(arrays::values(&a).to_vec())
    }

    pub fn store(&self, py: Python<'_>, i: usize, values: &[f32]) -> PyResult<()> {
        let mut inner = self.lock(py)?;
        inner.session.set_value(i, values).map_err(PyValueError::new_err)
    }

    /// `m.params["W"] = value`.
    pub fn assign(&self, py: Python<'_>, i: usize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let values = self.convert(py, i, value)?;
        self.store(py, i, &values)
    }

    fn tensors_of(slf: &Bound<'_, Model>, kinds: &[TensorKind], what: &'static str) -> Tensors {
        let entries = slf
            .get()
            .tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| kinds.contains(&t.kind))
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Tensors::new(slf.clone().unbind(), what, entries)
    }

    /// The arrays of `fields` (name → array), checked against the train block's fields.
    fn array_fields(&self, fields: &Bound<'_, PyDict>) -> PyResult<Vec<ArrayField>> {
        let whose = format!("train {}", self.train_name.as_deref().unwrap_or(&self.model_name));
        let mut out = vec![];
        for (name, value) in fields.iter() {
            let name: String = name.extract()?;
            let field = self.fields.iter().find(|f| f.name == name);
            let layout = match field {
                Some(f) if f.required => Layout::Batched(&f.shape),
                Some(f) => Layout::BatchedSize(f.shape.iter().product()),
                // The library names the fields it reads and the nearest one.
                None => Layout::AnyBatched,
            };
            let values = match field {
                Some(f) if f.integer && f.model_input => Values::Integers,
                Some(f) if f.integer => Values::Classes,
                _ => Values::Numbers,
            };
            let (a, _) = arrays::float32(&value, &Want { name: &name, whose: &whose, layout, values })?;
            out.push(ArrayField { name, shape: a.shape().to_vec(), values: arrays::values(&a).to_vec() });
        }
        Ok(out)
    }

    /// The model's inputs from `given` (name → array), checked, and the number of samples.
    fn input_arrays<'py>(
        &self,
        given: &[(String, Bound<'py, PyAny>)],
    ) -> PyResult<(Vec<PyReadonlyArrayDyn<'py, f32>>, usize)> {
        let whose = format!("model {}", self.model_name);
        if let Some((name, _)) = given.iter().find(|(n, _)| !self.inputs.iter().any(|p| p.name == *n)) {
            return Err(PyTypeError::new_err(format!(
                "model {} has no input `{name}`; its inputs are: {}",
                self.model_name,
                self.describe_inputs()
            )));
        }
        let mut arrays = vec![];
        let mut samples: Option<(usize, &str)> = None;
        for p in &self.inputs {
            let Some((_, value)) = given.iter().find(|(n, _)| *n == p.name) else {
                return Err(PyTypeError::new_err(format!(
                    "model {} needs the input `{}`; its inputs are: {}",
                    self.model_name,
                    p.name,
                    self.describe_inputs()
                )));
            };
            let layout = if p.batched { Layout::Batched(&p.shape) } else { Layout::Fixed(&p.shape) };
            let values = if p.integer { Values::Integers } else { Values::Numbers };
            let (a, n) = arrays::float32(value, &Want { name: &p.name, whose: &whose, layout, values })?;
            if p.batched {
                match samples {
                    Some((m, other)) if m != n => {
                        return Err(PyValueError::new_err(format!(
                            "`{}` has {n} samples, but `{other}` has {m}: every input holds one entry per sample",
                            p.name
                        )))
                    }
                    _ => samples = Some((n, &p.name)),
                }
            }
            arrays.push(a);
        }
        Ok((arrays, samples.map_or(1, |s| s.0)))
    }

    fn describe_inputs(&self) -> String {
        self.inputs
            .iter()
            .map(|p| format!("{} {}", p.name, shape_str(p.batched, &p.shape)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Run the forward pass on `given` inputs: every output, as new arrays.
    fn run_forward<'py>(
        &self,
        py: Python<'py>,
        given: &[(String, Bound<'py, PyAny>)],
        batch: usize,
    ) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let (inputs, samples) = self.input_arrays(given)?;
        let outputs: Vec<Bound<'py, PyArrayDyn<f32>>> = self
            .outputs
            .iter()
            .map(|p| {
                let mut dims = p.shape.clone();
                if p.batched {
                    dims.insert(0, samples);
                }
                PyArrayDyn::<f32>::zeros(py, IxDyn(&dims), false)
            })
            .collect();
        if samples == 0 {
            return Ok(outputs);
        }
        let xs: Vec<&[f32]> = inputs.iter().map(arrays::values).collect();
        // SAFETY: the output arrays were just created here and no other reference to them
        // exists until they are returned.
        let mut ys: Vec<&mut [f32]> = outputs
            .iter()
            .map(|a| unsafe { a.as_slice_mut() }.map_err(|e| NetcError::new_err(e.to_string())))
            .collect::<PyResult<_>>()?;
        let mut inner = self.lock(py)?;
        let session = &mut inner.session;
        py.detach(|| session.forward(&xs, samples, batch, &mut ys)).map_err(diag)?;
        Ok(outputs)
    }
}

#[pymethods]
impl Model {
    /// Compile a `.net` file (`path`) or source text (`source`); `model` and `train` choose
    /// among several, `seed` draws the initial parameters (default: the train block's).
    #[new]
    #[pyo3(signature = (path=None, *, source=None, model=None, train=None, seed=None, data_dir=None, name=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        source: Option<String>,
        model: Option<String>,
        train: Option<String>,
        seed: Option<u64>,
        data_dir: Option<PathBuf>,
        name: Option<String>,
    ) -> PyResult<Model> {
        let opts = Options { model, train, seed, data_dir };
        let session = match (&path, source) {
            (Some(p), None) => py.detach(|| Session::from_file(p, &opts)),
            (None, Some(text)) => {
                let name = name.unwrap_or_else(|| "<source>".into());
                let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                py.detach(|| Session::from_source(&text, &name, &base, &opts))
            }
            (Some(_), Some(_)) => return Err(PyTypeError::new_err("give a path or source=, not both")),
            (None, None) => return Err(PyTypeError::new_err("give the path of a .net file, or its text as source=")),
        }
        .map_err(|e| errors::compile_error(py, e))?;
        let (inputs, outputs) = session.ports().map_err(diag)?;
        Ok(Model {
            inputs,
            outputs,
            fields: session.fields(),
            tensors: session.tensors().to_vec(),
            model_name: session.model().name.clone(),
            train_name: session.train_decl().map(|t| t.name.clone()),
            path,
            owner: AtomicU64::new(0),
            inner: Mutex::new(Inner { session, history: vec![], last_fit: None }),
        })
    }

    /// Train: `fields` maps field names to arrays (None: the file's data block). Returns the
    /// loss of every step. The Python class's `fit` wraps this.
    #[pyo3(signature = (fields=None, *, steps=None, epochs=None, batch=None, lr=None, seed=None, callback=None, bar=None))]
    #[allow(clippy::too_many_arguments)]
    fn _fit<'py>(
        &self,
        py: Python<'py>,
        fields: Option<Bound<'py, PyDict>>,
        steps: Option<usize>,
        epochs: Option<usize>,
        batch: Option<usize>,
        lr: Option<f64>,
        seed: Option<u64>,
        callback: Option<Py<PyAny>>,
        bar: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        if steps.is_some() && epochs.is_some() {
            return Err(PyTypeError::new_err("give steps= or epochs=, not both"));
        }
        if let Some(lr) = lr {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(PyValueError::new_err(format!("lr must be a finite number ≥ 0, not {lr}")));
            }
        }
        let data = match &fields {
            Some(f) if !f.is_empty() => Fields::Arrays(self.array_fields(f)?),
            _ => Fields::DataBlock,
        };
        let overrides = Overrides { steps, epochs, batch, lr, seed };
        let mut progress = PyProgress::new(callback, bar);
        let mut inner = self.lock(py)?;
        let session = &mut inner.session;
        let report = py.detach(|| session.fit(data, &overrides, &mut progress));
        let notes = inner.session.take_notes();
        if let Ok(r) = &report {
            inner.history = r.losses.clone();
            inner.last_fit = Some((r.losses.len(), r.seconds, r.samples_per_second, r.interrupted));
        }
        drop(inner);
        if !notes.is_empty() {
            let warnings = py.import("warnings")?;
            for note in notes {
                warnings.call_method1("warn", (note,))?;
            }
        }
        // What stopped the run (KeyboardInterrupt, the callback's exception) comes first: a
        // failure after it is its consequence.
        if let Some(e) = progress.error.take() {
            return Err(e);
        }
        let report = report.map_err(diag)?;
        Ok(PyArray1::from_vec(py, report.losses))
    }

    /// The first output (or `output`) of the model on `x`: an array for a model of one
    /// input, or a dict of arrays by input name. Inference mode; `batch` samples at a time.
    #[pyo3(signature = (x, *, batch=256, output=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: Bound<'py, PyAny>,
        batch: usize,
        output: Option<&str>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let given: Vec<(String, Bound<'py, PyAny>)> = match x.cast::<PyDict>() {
            Ok(d) => d.iter().map(|(k, v)| Ok((k.extract::<String>()?, v))).collect::<PyResult<_>>()?,
            Err(_) => match self.inputs.as_slice() {
                [one] => vec![(one.name.clone(), x)],
                _ => {
                    return Err(PyTypeError::new_err(format!(
                        "model {} has {} inputs ({}): give a dict of arrays by name, or call forward(name=array, …)",
                        self.model_name,
                        self.inputs.len(),
                        self.describe_inputs()
                    )))
                }
            },
        };
        let which = match output {
            None => 0,
            Some(name) => self.outputs.iter().position(|p| p.name == name).ok_or_else(|| {
                let names: Vec<&str> = self.outputs.iter().map(|p| p.name.as_str()).collect();
                PyValueError::new_err(format!(
                    "model {} has no output `{name}`; its outputs are: {}",
                    self.model_name,
                    names.join(", ")
                ))
            })?,
        };
        if batch == 0 {
            return Err(PyValueError::new_err("batch must be at least 1"));
        }
        let mut outs = self.run_forward(py, &given, batch)?;
        Ok(outs.swap_remove(which))
    }

    /// Every output of the model on these inputs (by name), in inference mode.
    #[pyo3(signature = (**inputs))]
    fn forward<'py>(&self, py: Python<'py>, inputs: Option<Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyDict>> {
        let given: Vec<(String, Bound<'py, PyAny>)> = match &inputs {
            Some(d) => d.iter().map(|(k, v)| Ok((k.extract::<String>()?, v))).collect::<PyResult<_>>()?,
            None => vec![],
        };
        let outs = self.run_forward(py, &given, 256)?;
        let dict = PyDict::new(py);
        for (p, a) in self.outputs.iter().zip(outs) {
            dict.set_item(&p.name, a)?;
        }
        Ok(dict)
    }

    /// The train block's loss on these fields (one batch of all of them) and its gradient
    /// with respect to every parameter, as (float, dict of arrays); `training`: as a train
    /// step sees it (batch statistics, dropout), else in inference mode.
    #[pyo3(signature = (fields, *, training=true))]
    fn _loss_and_grads<'py>(
        &self,
        py: Python<'py>,
        fields: Bound<'py, PyDict>,
        training: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let arrays = self.array_fields(&fields)?;
        let mut inner = self.lock(py)?;
        let session = &mut inner.session;
        let (loss, grads) = py.detach(|| session.loss_and_grads(arrays, training)).map_err(diag)?;
        drop(inner);
        let dict = PyDict::new(py);
        let params = self.tensors.iter().filter(|t| t.kind == TensorKind::Param);
        for (t, g) in params.zip(grads) {
            let a = PyArray1::from_vec(py, g).reshape(t.shape.clone())?;
            dict.set_item(&t.name, a)?;
        }
        PyTuple::new(py, [loss.into_pyobject(py)?.into_any(), dict.into_any()])
    }

    /// The train block's loss and metrics: on these fields, or (none given) on the data
    /// block's training set and, as `test_…`, its test set.
    #[pyo3(signature = (fields=None))]
    fn _evaluate<'py>(&self, py: Python<'py>, fields: Option<Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyDict>> {
        let data = match &fields {
            Some(f) if !f.is_empty() => Fields::Arrays(self.array_fields(f)?),
            _ => Fields::DataBlock,
        };
        let mut inner = self.lock(py)?;
        let session = &mut inner.session;
        let (train, test) = py.detach(|| session.evaluate(data)).map_err(diag)?;
        drop(inner);
        let dict = PyDict::new(py);
        dict.set_item("loss", train.loss)?;
        for (label, v) in &train.metrics {
            dict.set_item(label, v)?;
        }
        if let Some(test) = test {
            dict.set_item("test_loss", test.loss)?;
            for (label, v) in &test.metrics {
                dict.set_item(format!("test_{label}"), v)?;
            }
        }
        Ok(dict)
    }

    /// The model's parameters: name → read-only numpy view; assign to change one.
    #[getter]
    fn params(slf: &Bound<'_, Self>) -> Tensors {
        Model::tensors_of(slf, &[TensorKind::Param], "parameter")
    }

    /// Assign every parameter from a mapping (all are checked before any is written).
    #[setter]
    fn set_params(slf: &Bound<'_, Self>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let t = Model::tensors_of(slf, &[TensorKind::Param], "parameter");
        Tensors::update(&t, slf.py(), values)
    }

    /// Model state that is saved but not trained (running statistics).
    #[getter]
    fn state(slf: &Bound<'_, Self>) -> Tensors {
        Model::tensors_of(slf, &[TensorKind::State], "state tensor")
    }

    /// The optimizer's state (momentum velocities, Adam's moments and step count).
    #[getter]
    fn optimizer_state(slf: &Bound<'_, Self>) -> Tensors {
        Model::tensors_of(slf, &[TensorKind::Optimizer], "optimizer state tensor")
    }

    /// Inputs by name, each its shape with None for the batch axis.
    #[getter]
    fn inputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        ports_dict(py, &self.inputs)
    }

    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        ports_dict(py, &self.outputs)
    }

    /// The fields the train block reads: name → dict(shape, integer, bound, model_input,
    /// required); `integer`: only integer arrays are taken (class labels, an `int` input),
    /// `bound`: their values lie in 0..bound (classes, or the rows an id indexes).
    #[getter]
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for f in &self.fields {
            let info = PyDict::new(py);
            let mut shape: Vec<Option<usize>> = vec![None];
            shape.extend(f.shape.iter().map(|&d| Some(d)));
            info.set_item("shape", PyTuple::new(py, shape)?)?;
            info.set_item("integer", f.integer)?;
            info.set_item("bound", f.bound)?;
            info.set_item("model_input", f.model_input)?;
            info.set_item("required", f.required)?;
            dict.set_item(&f.name, info)?;
        }
        Ok(dict)
    }

    /// The train block's settings, the defaults of `fit` (None without a train block).
    #[getter]
    fn train_settings<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let inner = self.lock(py)?;
        let Some(t) = inner.session.train_decl() else { return Ok(None) };
        let dict = PyDict::new(py);
        dict.set_item("name", &t.name)?;
        match t.length {
            netc::frontend::checked::Length::Steps(s) => dict.set_item("steps", s)?,
            netc::frontend::checked::Length::Epochs(e) => dict.set_item("epochs", e)?,
        }
        dict.set_item("batch", t.batch)?;
        use netc::frontend::checked::Optimizer;
        let lr = match t.optimizer {
            Optimizer::Sgd { lr } | Optimizer::Momentum { lr, .. } | Optimizer::Adam { lr, .. } => lr,
        };
        dict.set_item("lr", lr)?;
        dict.set_item("seed", t.seed)?;
        dict.set_item("data", t.data.map(|i| inner.session.checked().data[i].name.clone()))?;
        Ok(Some(dict))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.model_name
    }

    /// The train block's name (None when the file does not train this model).
    #[getter]
    fn train(&self) -> Option<&str> {
        self.train_name.as_deref()
    }

    /// Train steps taken since the parameters were drawn or loaded from a checkpoint.
    #[getter]
    fn steps(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.lock(py)?.session.steps())
    }

    /// The seed the initial parameters were drawn with.
    #[getter]
    fn seed(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.lock(py)?.session.seed())
    }

    /// The loss of every step of the last `fit` (also of one that was interrupted).
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let losses = self.lock(py)?.history.clone();
        Ok(PyArray1::from_vec(py, losses))
    }

    /// What the last `fit` did: `{steps, seconds, samples_per_second, stopped}` (seconds in
    /// the step loop, as `netc run` reports them), or None before any.
    #[getter]
    fn last_fit<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some((steps, seconds, sps, stopped)) = self.lock(py)?.last_fit else { return Ok(None) };
        let dict = PyDict::new(py);
        dict.set_item("steps", steps)?;
        dict.set_item("seconds", seconds)?;
        dict.set_item("samples_per_second", sps)?;
        dict.set_item("stopped", stopped)?;
        Ok(Some(dict))
    }

    /// The `.net` file compiled (None for source text).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// Write the parameters, the optimizer state and the step count as `netc run --save`
    /// does (safetensors): `netc predict --load`, `netc run --load/--resume` read it.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let mut inner = self.lock(py)?;
        // `&mut`: a session may be moved between threads (Send), not shared (Sync).
        let session = &mut inner.session;
        // Every way a save fails is the file system's or the target's (a directory, a device,
        // the model's own source): an OSError, as Python's open() would raise.
        py.detach(move || session.save(&path)).map_err(|d| {
            let text = netc::diag::render(std::slice::from_ref(&d), None, false);
            pyo3::exceptions::PyOSError::new_err(
                text.trim_end().trim_start_matches(&format!("error[{}]: ", d.code)).to_string(),
            )
        })
    }

    /// Read weights written by `netc run --save` or `save` (a checkpoint's optimizer state
    /// and step count too).
    fn load_weights(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let mut inner = self.lock(py)?;
        let session = &mut inner.session;
        py.detach(|| session.load(&path)).map_err(diag)
    }

    /// Draw the initial parameters again (from `seed`, default the model's), optimizer state
    /// and step count zero.
    #[pyo3(signature = (seed=None))]
    fn reset(&self, py: Python<'_>, seed: Option<u64>) -> PyResult<()> {
        let mut inner = self.lock(py)?;
        let session = &mut inner.session;
        py.detach(|| session.reset(seed));
        inner.history.clear();
        inner.last_fit = None;
        Ok(())
    }

    fn __repr__(&self) -> String {
        let params: usize = self
            .tensors
            .iter()
            .filter(|t| t.kind == TensorKind::Param)
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        let inputs = self.describe_inputs();
        let outputs = self
            .outputs
            .iter()
            .map(|p| format!("{} {}", p.name, shape_str(p.batched, &p.shape)))
            .collect::<Vec<_>>()
            .join(", ");
        let from = self.path.as_ref().map(|p| format!(", from {}", p.display())).unwrap_or_default();
        let train = self.train_name.as_ref().map(|t| format!(", train {t}")).unwrap_or_default();
        format!("<netc model {}({inputs}) -> {outputs}; {params} parameters{train}{from}>", self.model_name)
    }
}

fn ports_dict<'py>(py: Python<'py>, ports: &[Port]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for p in ports {
        let mut shape: Vec<Option<usize>> = if p.batched { vec![None] } else { vec![] };
        shape.extend(p.shape.iter().map(|&d| Some(d)));
        dict.set_item(&p.name, PyTuple::new(py, shape)?)?;
    }
    Ok(dict)
}
