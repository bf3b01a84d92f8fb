//! A training run's link back to Python. The step loop runs without the GIL; after a step it
//! takes the GIL back only when it has something to do there: call the user's callback
//! (every step), redraw the progress bar, or check for signals (a pending Ctrl-C raises
//! KeyboardInterrupt in Python's handler) — the last two at most every `CHECK_EVERY`. A
//! raised exception, or a callback that returns `False`, ends the run after the current
//! step; `fit` raises the exception once the run has stopped cleanly.

use std::time::{Duration, Instant};

use netc::training::Progress;
use pyo3::prelude::*;

/// How often a run without a callback looks at Python's signals and redraws its bar: often
/// enough that Ctrl-C feels immediate, rarely enough to cost nothing.
const CHECK_EVERY: Duration = Duration::from_millis(50);

pub struct PyProgress {
    /// `callback(step, loss)`, after every step; returning `False` stops the run.
    callback: Option<Py<PyAny>>,
    /// An object with `start(total)`, `update(step, loss, samples_per_second)` and `close()`
    /// (the Python half's bar), or None.
    bar: Option<Py<PyAny>>,
    last_check: Instant,
    /// The latest numbers the loop reported, for the next redraw.
    shown: Option<(usize, f32, f64)>,
    /// What stopped the run: raised again by `fit`.
    pub error: Option<PyErr>,
    /// The callback returned `False`.
    pub stopped_by_callback: bool,
}

impl PyProgress {
    pub fn new(callback: Option<Py<PyAny>>, bar: Option<Py<PyAny>>) -> PyProgress {
        PyProgress { callback, bar, last_check: Instant::now(), shown: None, error: None, stopped_by_callback: false }
    }

    /// Call `method` of the bar; a failing bar is dropped rather than failing the run.
    fn bar_call(&mut self, py: Python<'_>, method: &str, args: impl for<'p> FnOnce(Python<'p>) -> Vec<Py<PyAny>>) {
        let Some(bar) = &self.bar else { return };
        let args = pyo3::types::PyTuple::new(py, args(py));
        let failed = match args {
            Ok(args) => bar.bind(py).call_method1(method, args).is_err(),
            Err(_) => true,
        };
        if failed {
            self.bar = None;
        }
    }

    fn redraw(&mut self, py: Python<'_>) {
        if let Some((step, loss, sps)) = self.shown.take() {
            self.bar_call(py, "update", |py| {
                vec![
                    step.into_pyobject(py).unwrap().into_any().unbind(),
                    loss.into_pyobject(py).unwrap().into_any().unbind(),
                    sps.into_pyobject(py).unwrap().into_any().unbind(),
                ]
            });
        }
    }
}

impl Progress for PyProgress {
    fn start(&mut self, total: usize) {
        if self.bar.is_some() {
            Python::attach(|py| {
                self.bar_call(py, "start", |py| vec![total.into_pyobject(py).unwrap().into_any().unbind()])
            });
        }
    }

    fn update(&mut self, step: usize, loss: f32, samples_per_second: f64) {
        self.shown = Some((step, loss, samples_per_second));
    }

    fn finish(&mut self) {
        if self.bar.is_some() {
            Python::attach(|py| {
                self.redraw(py);
                self.bar_call(py, "close", |_| vec![]);
            });
        }
    }

    fn after_step(&mut self, step: usize, loss: f32) -> bool {
        let due = self.last_check.elapsed() >= CHECK_EVERY;
        if self.callback.is_none() && !due {
            return true;
        }
        Python::attach(|py| {
            if due {
                self.last_check = Instant::now();
                if let Err(e) = py.check_signals() {
                    self.error = Some(e);
                    return false;
                }
                self.redraw(py);
            }
            let Some(callback) = &self.callback else { return true };
            match callback.bind(py).call1((step, loss)) {
                // Only an explicit `False` stops: a callback that returns nothing goes on.
                Ok(answer) if answer.is(&pyo3::types::PyBool::new(py, false)) => {
                    self.stopped_by_callback = true;
                    false
                }
                Ok(_) => true,
                Err(e) => {
                    self.error = Some(e);
                    false
                }
            }
        })
    }
}
