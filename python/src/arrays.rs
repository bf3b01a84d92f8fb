//! numpy arrays in: each array a model input or a data field, checked against what it must
//! hold and handed to the library as contiguous float32 values. A C-contiguous float32 array
//! is read where it is; anything else is converted once (`numpy.ascontiguousarray`), or
//! refused: a dtype that is not a number is a `TypeError`, a shape that does not fit a
//! `ValueError`, each naming the array and what it must be.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// How an array's shape must look.
#[derive(Clone, Copy, Debug)]
pub enum Layout<'a> {
    /// Samples first, then this shape per sample (`[N, 64]`).
    Batched(&'a [usize]),
    /// Exactly this shape (a model input without a batch axis).
    Fixed(&'a [usize]),
    /// Samples first, then any shape of this many values per sample (a metric's target).
    BatchedSize(usize),
    /// Samples first, then anything (a field no one reads: the library says so).
    AnyBatched,
}

/// What an array's values must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// Numbers: floats, integers or bools, all read as float32 (a model input, a float field).
    Numbers,
    /// Class indices: an integer array (as PyTorch's targets), never floats.
    Classes,
    /// A model input declared `int` (token ids): an integer array (as PyTorch's embedding
    /// takes), never floats; values past 2^24 are refused (float32 carries them inexactly).
    Integers,
    /// Floats only (a parameter: an integer array is more likely a mistake than a value).
    Floats,
}

/// What an array given for `name` must hold; `whose` says who reads it (`model digits_mlp`).
pub struct Want<'a> {
    pub name: &'a str,
    pub whose: &'a str,
    pub layout: Layout<'a>,
    pub values: Values,
}

/// `(N, 64)`, numpy's way of writing a shape; `N` stands for the samples.
pub fn shape_str(batch: bool, dims: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::with_capacity(dims.len() + 1);
    if batch {
        parts.push("N".into());
    }
    parts.extend(dims.iter().map(|d| d.to_string()));
    match parts.len() {
        1 => format!("({},)", parts[0]),
        _ => format!("({})", parts.join(", ")),
    }
}

impl Want<'_> {
    fn expected(&self) -> String {
        match self.layout {
            Layout::Batched(s) => shape_str(true, s),
            Layout::Fixed(s) => shape_str(false, s),
            Layout::BatchedSize(n) => format!("(N, …) with {n} values per sample"),
            Layout::AnyBatched => "(N, …)".into(),
        }
    }

    /// The number of samples of an array of shape `got`, or why it does not fit.
    fn samples(&self, got: &[usize]) -> PyResult<usize> {
        let fits = match self.layout {
            Layout::Batched(s) => got.len() == s.len() + 1 && got[1..] == *s,
            Layout::Fixed(s) => got == s,
            Layout::BatchedSize(n) => !got.is_empty() && got[1..].iter().product::<usize>() == n,
            Layout::AnyBatched => !got.is_empty(),
        };
        if fits {
            return Ok(match self.layout {
                Layout::Fixed(_) => 1,
                Layout::Batched(_) | Layout::BatchedSize(_) | Layout::AnyBatched => got[0],
            });
        }
        let mut msg = format!(
            "`{}` has shape {}, but {} reads it as {}",
            self.name,
            shape_str(false, got),
            self.whose,
            self.expected()
        );
        if let Layout::Batched(s) = self.layout {
            if got == s {
                msg.push_str(&format!("; for one sample, add the batch axis: {}[None]", self.name));
            }
        }
        Err(PyValueError::new_err(msg))
    }
}

/// `obj` as C-contiguous float32 values and its number of samples. A C-contiguous float32
/// array (for a field of floats) is borrowed as it is: no copy.
pub fn float32<'py>(obj: &Bound<'py, PyAny>, want: &Want) -> PyResult<(PyReadonlyArrayDyn<'py, f32>, usize)> {
    let integer = matches!(want.values, Values::Classes | Values::Integers);
    if !integer {
        if let Ok(a) = obj.cast::<PyArrayDyn<f32>>() {
            if a.is_c_contiguous() {
                let samples = want.samples(a.shape())?;
                let a = a.try_readonly().map_err(|e| PyValueError::new_err(format!("`{}`: {e}", want.name)))?;
                return Ok((a, samples));
            }
        }
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let array = np.call_method1("asarray", (obj,)).map_err(|e| {
        PyTypeError::new_err(format!(
            "`{}` cannot be read as a numpy array ({e}); {} reads {}",
            want.name,
            want.whose,
            want.expected()
        ))
    })?;
    let dtype = array.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    let accepted = match (kind.as_str(), want.values) {
        ("f", _) => !integer,
        ("i" | "u", _) => want.values != Values::Floats,
        ("b", Values::Numbers) => true,
        _ => false,
    };
    if !accepted {
        let what = match want.values {
            Values::Classes => format!("class indices: give an integer array (e.g. {}.astype(numpy.int64))", want.name),
            Values::Integers => {
                format!("integers (it is declared int): give an integer array (e.g. {}.astype(numpy.int64))", want.name)
            }
            Values::Numbers => "numbers: give a float32, float64, integer or bool array".to_string(),
            Values::Floats => "float32 values: give a float32 or float64 array".to_string(),
        };
        return Err(PyTypeError::new_err(format!(
            "`{}` has dtype {}, but {} reads it as {what} of shape {}",
            want.name,
            dtype.str()?,
            want.whose,
            want.expected()
        )));
    }
    let shape: Vec<usize> = array.getattr("shape")?.extract()?;
    let samples = want.samples(&shape)?;
    if integer && dtype.getattr("itemsize")?.extract::<usize>()? >= 4 && array.getattr("size")?.extract::<usize>()? > 0
    {
        // float32 holds whole numbers exactly up to 2^24: a larger one would silently change.
        let largest: f64 = np.call_method1("abs", (np.call_method1("min", (&array,))?,))?.extract()?;
        let largest = largest.max(array.call_method0("max")?.extract::<f64>()?);
        if largest > 16_777_216.0 {
            return Err(PyValueError::new_err(format!(
                "`{}` holds {largest}, but {} carries integers as float32, exact only up to 2^24 = 16777216",
                want.name, want.whose
            )));
        }
    }
    let f32_dtype = np.getattr("float32")?;
    let converted = np.call_method1("ascontiguousarray", (array, f32_dtype))?;
    let converted = converted.cast_into::<PyArrayDyn<f32>>().map_err(PyErr::from)?;
    let converted = converted.try_readonly().map_err(|e| PyValueError::new_err(format!("`{}`: {e}", want.name)))?;
    Ok((converted, samples))
}

/// The values of an array `float32` returned (C-contiguous, so always a slice).
pub fn values<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>) -> &'a [f32] {
    a.as_slice().expect("float32() returns C-contiguous arrays")
}
