//! Trained weights on disk: input is the model's named f32 parameters, output a safetensors
//! file (and back). Saving is atomic, so a crash mid-save never destroys the previous weights;
//! loading checks every name and shape against the model and says which one disagrees.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::diag::{nearest, Diagnostic};
use crate::ir::graph::ParamInfo;

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
    // Names seen so far, in a set: a 10,000-layer model has 20,000 tensors.
    let mut seen = std::collections::HashSet::with_capacity(tensors.len());
    for &(t, shape, data) in tensors {
        let size = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if size != Some(data.len()) {
            return Err(error(format!(
                "{name}: tensor `{t}` has {} values, but its shape {shape:?} needs {}",
                data.len(),
                size.map_or("more than fit in memory".to_string(), |s| s.to_string())
            )));
        }
        if !seen.insert(t) {
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
    take_expected(path, &mut load_by_name(path)?, expected)
}

/// [`load_for`] the tensors of a graph's parameters (a dimension not known until run time,
/// the batch, as 1).
pub fn load_params(path: &Path, params: &[ParamInfo]) -> Result<Vec<Weight>, Diagnostic> {
    let shapes: Vec<Vec<usize>> =
        params.iter().map(|p| p.shape.iter().map(|d| d.known().unwrap_or(1)).collect()).collect();
    let expected: Vec<(&str, &[usize])> =
        params.iter().zip(&shapes).map(|(p, s)| (p.name.as_str(), s.as_slice())).collect();
    load_for(path, &expected)
}

/// The tensors of a safetensors file by name: matching 20,000 of them is then linear, not
/// quadratic.
pub fn load_by_name(path: &Path) -> Result<std::collections::HashMap<String, Weight>, Diagnostic> {
    Ok(load(path)?.into_iter().map(|w| (w.name.clone(), w)).collect())
}

/// `load_for` on tensors already loaded from `path` (`load_by_name`): removes the expected
/// ones from `found` and returns them in the expected order.
pub fn take_expected(
    path: &Path,
    found: &mut std::collections::HashMap<String, Weight>,
    expected: &[(&str, &[usize])],
) -> Result<Vec<Weight>, Diagnostic> {
    let name = path.display();
    let mut out = Vec::with_capacity(expected.len());
    for &(want, shape) in expected {
        let Some(w) = found.remove(want) else {
            let mut names: Vec<&str> = found.keys().map(String::as_str).collect();
            names.sort_unstable(); // the suggestion must not depend on hash order
            let mut d = error(format!("{name}: no tensor named `{want}`"));
            if let Some(near) = nearest(want, names) {
                d = d.help(format!("the file has `{near}`: was the layer renamed?"));
            }
            return Err(d);
        };
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

/// Where a saved run stands: the steps done, and the seed of its data order and random
/// streams (absent in checkpoints written before runs drew random numbers). Saved in a
/// weights file's metadata, it makes the file a checkpoint for `netc run --resume`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Checkpoint {
    pub step: usize,
    pub seed: Option<u64>,
}

impl Checkpoint {
    /// The metadata key: one key, since a map of several would serialise in random order,
    /// and the same run must write the same bytes.
    pub const KEY: &'static str = "netc.checkpoint";

    pub fn metadata(&self) -> std::collections::HashMap<String, String> {
        let seed = self.seed.map(|s| format!(" seed={s}")).unwrap_or_default();
        [(Checkpoint::KEY.to_string(), format!("step={}{seed}", self.step))].into_iter().collect()
    }

    /// `step=N seed=S` under `KEY`, or the older `netc.step` = N.
    pub fn read(meta: &std::collections::HashMap<String, String>) -> Option<Checkpoint> {
        if let Some(text) = meta.get(Checkpoint::KEY) {
            let field = |name: &str| {
                text.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
            };
            return Some(Checkpoint { step: field("step")? as usize, seed: field("seed") });
        }
        Some(Checkpoint { step: meta.get("netc.step")?.parse().ok()?, seed: None })
    }
}

/// Save a training run's tensors as `netc run --save` writes them: the model's parameters
/// (and state) under their names, the optimizer state after them, and the checkpoint — a
/// weights file that is also a checkpoint for `--resume`. `names` and `values` pair up; the
/// file never replaces one of `inputs`.
pub fn save_checkpoint(
    path: &Path,
    names: &[(String, Vec<usize>)],
    values: &[Vec<f32>],
    checkpoint: Checkpoint,
    inputs: &[&Path],
) -> Result<(), Diagnostic> {
    let refs: Vec<WeightRef> =
        names.iter().zip(values).map(|((n, s), v)| (n.as_str(), s.as_slice(), v.as_slice())).collect();
    save_with_metadata(path, &refs, Some(checkpoint.metadata()), inputs)
}

/// The checkpoint of a file written by `save_checkpoint`; `None` for plain weights.
pub fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, Diagnostic> {
    Ok(Checkpoint::read(&load_metadata(path)?))
}
