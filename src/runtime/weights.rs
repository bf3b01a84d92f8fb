//! Trained weights on disk: input is the model's named f32 parameters, output a safetensors
//! file (and back). Saving is atomic, so a crash mid-save never destroys the previous weights;
//! loading checks every name and shape against the model and says which one disagrees.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::diag::{nearest, Diagnostic};

/// The diagnostic code of every weights error.
pub const CODE: &str = "E-weights";

fn error(message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(CODE, message)
}

/// One named tensor of a weights file, e.g. `fc1.W` of shape `[784, 100]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// A borrowed tensor to save: (name, shape, row-major values).
pub type WeightRef<'a> = (&'a str, &'a [usize], &'a [f32]);

impl Weight {
    pub fn as_ref(&self) -> WeightRef<'_> {
        (&self.name, &self.shape, &self.data)
    }
}

/// A tensor as the safetensors writer sees it: f32, little-endian bytes.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Where `save` stages the new file before renaming it over `path` (see `files::write_atomic`).
pub fn temp_path(path: &Path) -> PathBuf {
    crate::runtime::files::temp_path(path)
}

/// Save `tensors` to a safetensors file at `path`, atomically: the bytes go to `temp_path`,
/// are flushed to disk, and only then renamed over `path`. A crash at any point leaves either
/// the old file or the new one, never a mix.
pub fn save(path: &Path, tensors: &[WeightRef]) -> Result<(), Diagnostic> {
    save_with_metadata(path, tensors, None, &[])
}

/// `save`, with string metadata in the file's header (e.g. the step of a checkpoint), never
/// writing over one of `inputs` (the run's source, data and loaded weights).
pub fn save_with_metadata(
    path: &Path,
    tensors: &[WeightRef],
    metadata: Option<std::collections::HashMap<String, String>>,
    inputs: &[&Path],
) -> Result<(), Diagnostic> {
    let name = path.display();
    for (i, &(t, shape, data)) in tensors.iter().enumerate() {
        let size = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if size != Some(data.len()) {
            return Err(error(format!(
                "{name}: tensor `{t}` has {} values, but its shape {shape:?} needs {}",
                data.len(),
                size.map_or("more than fit in memory".to_string(), |s| s.to_string())
            )));
        }
        if tensors[..i].iter().any(|&(other, _, _)| other == t) {
            return Err(error(format!("{name}: two tensors are named `{t}`")));
        }
    }
    let views = tensors.iter().map(|&(t, shape, data)| (t, F32View { shape, data }));
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| error(format!("{name}: cannot encode the weights: {e}")))?;
    crate::runtime::files::write_atomic(path, &bytes, inputs)
        .map_err(|e| error(format!("{name}: cannot write the weights: {e}")))
}

/// The bytes of a weights file: a regular file no larger than the memory limit.
fn read(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    use crate::runtime::files;
    files::read_input(path, files::max_data_bytes())
        .map_err(|e| error(format!("{}: cannot read the weights: {e}", path.display())))
}

/// Load every tensor of a safetensors file, sorted by name. F32 and F64 tensors are read
/// (F64 rounded to f32); other dtypes are an error naming the tensor.
pub fn load(path: &Path) -> Result<Vec<Weight>, Diagnostic> {
    let name = path.display();
    let bytes = read(path)?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| {
        error(format!("{name}: not a valid safetensors file ({e})"))
            .note(format!("the file is {} bytes; it may be truncated or not a weights file", bytes.len()))
    })?;
    let mut weights = Vec::with_capacity(file.len());
    for (t, view) in file.iter() {
        let data = match view.dtype() {
            Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                .collect(),
            other => {
                return Err(error(format!("{name}: tensor `{t}` has dtype {other:?}; netc reads F32 and F64 weights")))
            }
        };
        weights.push(Weight { name: t.to_string(), shape: view.shape().to_vec(), data });
    }
    weights.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(weights)
}

/// The string metadata of a safetensors file's header (empty if it has none).
pub fn load_metadata(path: &Path) -> Result<std::collections::HashMap<String, String>, Diagnostic> {
    let name = path.display();
    let bytes = read(path)?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| error(format!("{name}: not a valid safetensors file ({e})")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Load the tensors a model declares, in the model's order, checking each one's shape. Extra
/// tensors in the file are ignored; a missing one is an error suggesting the nearest name.
pub fn load_for(path: &Path, expected: &[(&str, &[usize])]) -> Result<Vec<Weight>, Diagnostic> {
    let name = path.display();
    let mut found = load(path)?;
    let mut out = Vec::with_capacity(expected.len());
    for &(want, shape) in expected {
        let Some(i) = found.iter().position(|w| w.name == want) else {
            let mut d = error(format!("{name}: no tensor named `{want}`"));
            if let Some(near) = nearest(want, found.iter().map(|w| w.name.as_str())) {
                d = d.help(format!("the file has `{near}`: was the layer renamed?"));
            }
            return Err(d);
        };
        let w = found.swap_remove(i);
        if w.shape != shape {
            return Err(error(format!(
                "{name}: tensor `{want}` has shape {:?} in the file, but the model declares {shape:?}",
                w.shape
            )));
        }
        out.push(w);
    }
    Ok(out)
}
