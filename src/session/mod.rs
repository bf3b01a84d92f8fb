//! A `.net` program as an object: checked once, its parameters held in memory, then trained,
//! run and differentiated on arrays from memory, and saved and loaded in the CLI's weights
//! format. The Python module (`python/`) is a thin layer over `Session`; the CLI shares its
//! pieces: `netc predict` runs `Forward`, `netc run --save/--resume` write and read the same
//! checkpoints (`runtime::weights::save_checkpoint`), and data from arrays is checked by
//! `training::data::dataset_from_arrays` as data files are by `load_data`.

pub mod forward;
mod train;

use std::path::{Path, PathBuf};

pub use forward::{Forward, Port};
pub use train::Fields;

use crate::diag::{self, Diagnostic, SourceFile};
use crate::frontend::checked::{Checked, Model, TrainDecl};
use crate::ir::graph::ParamKind;
use crate::runtime::weights::Checkpoint;
use crate::training::{Engine, TrainGraphs};

/// A source that did not compile: the rendered diagnostics (plain text, no colour) and where
/// the first one points.
#[derive(Clone, Debug)]
pub struct CompileError {
    pub rendered: String,
    pub code: &'static str,
    /// 1-based line and column of the first diagnostic's first label, when it has one.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub diagnostics: Vec<Diagnostic>,
}

impl CompileError {
    fn new(diagnostics: Vec<Diagnostic>, name: &str, text: Option<&str>) -> CompileError {
        let file = text.map(|text| SourceFile { name, text });
        let rendered = diag::render(&diagnostics, file.as_ref(), false);
        let first = diagnostics.first();
        let at =
            first.and_then(|d| d.labels.first()).zip(text).map(|((span, _), text)| diag::line_column(text, span.start));
        CompileError {
            rendered,
            code: first.map_or("E-io", |d| d.code),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            diagnostics,
        }
    }
}

/// Which model and train block of a file a session is about, and how it starts.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The model (default: the one the train block trains, or the file's only model).
    pub model: Option<String>,
    /// The train block (default: the file's only one, or the only one training `model`).
    pub train: Option<String>,
    /// The seed of the initial parameters and of the data order (default: the train block's).
    pub seed: Option<u64>,
    /// Where the data block's files are (default: the `.net` file's folder, or the current one).
    pub data_dir: Option<PathBuf>,
}

/// What a tensor of a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A model parameter (trained, or frozen by the train block).
    Param,
    /// Model state that is saved with the parameters but not trained (e.g. a batch norm's
    /// running statistics).
    State,
    /// The optimizer's state: velocities, Adam's moments.
    Optimizer,
}

/// One tensor a session holds: model parameters first, then state, then optimizer state.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: TensorKind,
}

/// A checked program with the parameters of one model, ready to train and run.
pub struct Session {
    checked: Checked,
    /// The `.net` file, when the session was read from one (`save` never writes over it).
    source: Option<PathBuf>,
    model: usize,
    train: Option<usize>,
    /// Where data paths of the data block are resolved.
    base: PathBuf,
    seed: u64,
    tensors: Vec<TensorInfo>,
    /// One buffer per tensor. Allocated once: callers may keep views of them (the Python
    /// module's zero-copy `params`), so they are written in place and never reallocated.
    values: Vec<Vec<f32>>,
    /// The model's own tensors (`Param` and `State`) are `values[..model_tensors]`.
    model_tensors: usize,
    /// Train steps run since the parameters were initialised or loaded from a checkpoint.
    steps: usize,
    /// The train graphs, until the engine takes them.
    program: Option<TrainGraphs>,
    // `Send`: the session moves between threads (see the assertion at the end).
    engine: Option<Box<dyn Engine + Send>>,
    forward: Option<Forward>,
    gradients: Option<train::Gradients>,
    /// Messages for the user that are not errors (a data fallback was used).
    notes: Vec<String>,
}

impl Session {
    /// Read, check and prepare a `.net` file.
    pub fn from_file(path: &Path, opts: &Options) -> Result<Session, CompileError> {
        let name = path.display().to_string();
        let text = read_source(path).map_err(|d| CompileError::new(vec![d], &name, None))?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut session = Session::from_source(&text, &name, base, opts)?;
        session.source = Some(path.to_path_buf());
        Ok(session)
    }

    /// Check and prepare source text; `name` labels its diagnostics and `base` is the folder
    /// its data paths are relative to.
    pub fn from_source(text: &str, name: &str, base: &Path, opts: &Options) -> Result<Session, CompileError> {
        let checked = crate::frontend::check::check_source(text).map_err(|d| CompileError::new(d, name, Some(text)))?;
        let usage = |msg: String| CompileError::new(vec![Diagnostic::new("E-usage", msg)], name, None);
        let (model, train) = choose(&checked, opts).map_err(usage)?;
        let base = opts.data_dir.clone().unwrap_or_else(|| base.to_path_buf());
        let t = train.map(|i| &checked.trains[i]);
        let seed = opts.seed.or(t.map(|t| t.seed)).unwrap_or(0);
        let m = &checked.models[model];
        let shapes = |g: &crate::ir::graph::Graph| -> Vec<(String, Vec<usize>)> {
            g.params
                .iter()
                .map(|p| (p.name.clone(), p.shape.iter().map(|d| d.known().unwrap_or(1)).collect()))
                .collect()
        };
        let model_shapes = shapes(&m.graph);
        // With a train block the tensors are the train step's (model parameters, then
        // optimizer state), initialised as `netc run` does; otherwise the model's.
        let (program, all, values) = match t {
            Some(t) => {
                let program = TrainGraphs::new(t).map_err(|e| usage(format!("train {}: {e}", t.name)))?;
                let all = shapes(&program.step.graph);
                if all.get(..model_shapes.len()) != Some(&model_shapes[..]) {
                    return Err(usage(format!("train {}: its parameters are not those of model `{}`", t.name, m.name)));
                }
                let values = crate::training::initial_params(&program.step.graph, seed);
                (Some(program), all, values)
            }
            None => (None, model_shapes.clone(), crate::training::initial_params(&m.graph, seed)),
        };
        let tensors = all
            .into_iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let kind = match m.graph.params.get(i).map(|p| p.kind) {
                    Some(ParamKind::Trainable) => TensorKind::Param,
                    Some(ParamKind::State) => TensorKind::State,
                    None => TensorKind::Optimizer,
                };
                TensorInfo { name, shape, kind }
            })
            .collect();
        Ok(Session {
            source: None,
            model_tensors: model_shapes.len(),
            checked,
            model,
            train,
            base,
            seed,
            tensors,
            values,
            steps: 0,
            program,
            engine: None,
            forward: None,
            gradients: None,
            notes: vec![],
        })
    }

    pub fn model(&self) -> &Model {
        &self.checked.models[self.model]
    }

    /// The train block, as written in the file.
    pub fn train_decl(&self) -> Option<&TrainDecl> {
        self.train.map(|i| &self.checked.trains[i])
    }

    pub fn checked(&self) -> &Checked {
        &self.checked
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Train steps run since the parameters were initialised (or the checkpoint's count, after
    /// loading one).
    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The values of tensor `i` of `tensors()`.
    pub fn value(&self, i: usize) -> &[f32] {
        &self.values[i]
    }

    /// Overwrite tensor `i` in place; the caller checked the length.
    pub fn set_value(&mut self, i: usize, values: &[f32]) -> Result<(), String> {
        let t = &self.tensors[i];
        let dst = &mut self.values[i];
        if dst.len() != values.len() {
            return Err(format!("`{}` holds {} values, {} were given", t.name, dst.len(), values.len()));
        }
        dst.copy_from_slice(values);
        Ok(())
    }

    /// Notes gathered since the last call (e.g. which data fallback was used).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The fields the train block reads from its data (empty without a train block).
    pub fn fields(&self) -> Vec<crate::training::data::TrainField> {
        self.train_decl().map(crate::training::data::train_fields).unwrap_or_default()
    }

    /// The model's inputs and outputs, per sample.
    pub fn ports(&self) -> Result<(Vec<Port>, Vec<Port>), Diagnostic> {
        forward::ports(self.model())
    }

    /// Run the forward pass (every output of the model, in inference mode) over `samples`
    /// samples, `batch` at a time; see `Forward::run`. Compiles on first use.
    pub fn forward(
        &mut self,
        inputs: &[&[f32]],
        samples: usize,
        batch: usize,
        results: &mut [&mut [f32]],
    ) -> Result<(), Diagnostic> {
        if self.forward.is_none() {
            self.forward = Some(Forward::new(self.model(), &[], false)?);
        }
        let f = self.forward.as_mut().expect("compiled above");
        check_int_inputs(&self.checked.models[self.model].graph, f.inputs(), inputs)?;
        f.run(inputs, samples, batch, &self.values[..self.model_tensors], results, &mut |_| {})
            .map_err(|e| Diagnostic::new("E-predict", e))
    }

    /// Save every tensor, the step count and the seed as `netc run --save` does, never over
    /// the `.net` file or its data block's files.
    pub fn save(&self, path: &Path) -> Result<(), Diagnostic> {
        let names: Vec<(String, Vec<usize>)> = self.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
        let checkpoint = Checkpoint { step: self.steps, seed: Some(self.seed) };
        let data = self.train_decl().and_then(|t| t.data).map(|d| &self.checked.data[d]);
        let data_files = data.map(|d| crate::training::data::input_files(d, &self.base)).unwrap_or_default();
        let inputs: Vec<&Path> = self.source.iter().chain(&data_files).map(PathBuf::as_path).collect();
        crate::runtime::weights::save_checkpoint(path, &names, &self.values, checkpoint, &inputs)
    }

    /// Load weights written by `netc run --save` (or any safetensors file with the model's
    /// parameter and state names and shapes). A checkpoint's optimizer state, step count and
    /// seed are restored too when the file has all of it; otherwise the optimizer starts
    /// afresh.
    pub fn load(&mut self, path: &Path) -> Result<(), Diagnostic> {
        use crate::runtime::weights;
        let mut found = weights::load_by_name(path)?;
        let expected = |kinds: &[TensorKind]| -> Vec<(&str, &[usize])> {
            self.tensors
                .iter()
                .filter(|t| kinds.contains(&t.kind))
                .map(|t| (t.name.as_str(), t.shape.as_slice()))
                .collect()
        };
        let model = weights::take_expected(path, &mut found, &expected(&[TensorKind::Param, TensorKind::State]))?;
        let optimizer_names = expected(&[TensorKind::Optimizer]);
        let optimizer = if optimizer_names.iter().all(|(n, _)| found.contains_key(*n)) {
            Some(weights::take_expected(path, &mut found, &optimizer_names)?)
        } else {
            None
        };
        for (dst, w) in self.values.iter_mut().zip(&model) {
            dst.copy_from_slice(&w.data);
        }
        let state = &mut self.values[self.model_tensors..];
        match &optimizer {
            Some(ws) => state.iter_mut().zip(ws).for_each(|(dst, w)| dst.copy_from_slice(&w.data)),
            None => state.iter_mut().for_each(|dst| dst.fill(0.0)),
        }
        let checkpoint = match optimizer {
            Some(_) => weights::read_checkpoint(path)?,
            None => None,
        };
        self.steps = checkpoint.map_or(0, |c| c.step);
        if let Some(seed) = checkpoint.and_then(|c| c.seed) {
            self.seed = seed;
        }
        Ok(())
    }

    /// Draw the initial parameters again (optimizer state zero, step 0), from `seed` or the
    /// session's seed.
    pub fn reset(&mut self, seed: Option<u64>) {
        let seed = seed.unwrap_or(self.seed);
        let fresh = match (&self.program, self.train_decl()) {
            (Some(p), _) => crate::training::initial_params(&p.step.graph, seed),
            (None, Some(t)) => {
                // The engine took the train graphs: rebuild them for the initial values.
                match TrainGraphs::new(t) {
                    Ok(p) => crate::training::initial_params(&p.step.graph, seed),
                    Err(_) => return,
                }
            }
            (None, None) => crate::training::initial_params(&self.model().graph, seed),
        };
        for (dst, src) in self.values.iter_mut().zip(fresh) {
            dst.copy_from_slice(&src);
        }
        self.seed = seed;
        self.steps = 0;
    }
}

/// The values of each input declared `int`: whole numbers below the class count or axis they
/// index, checked as training and `netc predict` check them (`Field::make_int_input`), so that
/// a bad id is named with its sample rather than found mid-run.
fn check_int_inputs(g: &crate::ir::graph::Graph, ports: &[Port], inputs: &[&[f32]]) -> Result<(), Diagnostic> {
    use crate::runtime::data::{Field, FieldType};
    for (index, (p, values)) in ports.iter().zip(inputs).enumerate().filter(|(_, (p, _))| p.integer) {
        let what = format!("model input `{}`", p.name);
        let mut field = Field::new(&p.name, FieldType::Float, vec![p.size().max(1)], values.to_vec(), &what)?;
        let used = g.index_use(index);
        field.make_int_input(&p.name, used.classes, used.rows)?;
    }
    Ok(())
}

/// Read a `.net` file: a missing file, one that is not a regular file (a device, a FIFO),
/// one over `files::MAX_SOURCE_BYTES` or invalid UTF-8 is a diagnostic.
pub fn read_source(file: &Path) -> Result<String, Diagnostic> {
    crate::runtime::files::read_text(file, crate::runtime::files::MAX_SOURCE_BYTES)
        .map_err(|m| Diagnostic::new("E-io", m))
}

/// The model and the train block `opts` ask for (indices into `c.models` and `c.trains`).
fn choose(c: &Checked, opts: &Options) -> Result<(usize, Option<usize>), String> {
    let names = |v: &mut dyn Iterator<Item = &str>| v.collect::<Vec<_>>().join(", ");
    let unknown = |what: &str, n: &str, all: Vec<&str>| {
        let hint = diag::nearest(n, all.iter().copied()).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        format!("no {what} is named `{n}`{hint}; the file has: {}", all.join(", "))
    };
    let model_index = |n: &str| {
        c.models
            .iter()
            .position(|m| m.name == n)
            .ok_or_else(|| unknown("model", n, c.models.iter().map(|m| m.name.as_str()).collect()))
    };
    let train = match &opts.train {
        Some(n) => Some(
            c.trains
                .iter()
                .position(|t| t.name == *n)
                .ok_or_else(|| unknown("train block", n, c.trains.iter().map(|t| t.name.as_str()).collect()))?,
        ),
        None => {
            let of_model: Vec<usize> =
                (0..c.trains.len()).filter(|&i| opts.model.as_ref().is_none_or(|m| c.trains[i].model == *m)).collect();
            match of_model.as_slice() {
                [] => None,
                [one] => Some(*one),
                several => {
                    return Err(format!(
                        "the file has {} train blocks{}; choose one with train=NAME: {}",
                        several.len(),
                        opts.model.as_ref().map(|m| format!(" for model `{m}`")).unwrap_or_default(),
                        names(&mut several.iter().map(|&i| c.trains[i].name.as_str()))
                    ))
                }
            }
        }
    };
    let model = match (&opts.model, train) {
        (Some(m), Some(t)) if c.trains[t].model != *m => {
            return Err(format!("train {} trains model `{}`, not `{m}`", c.trains[t].name, c.trains[t].model))
        }
        (Some(m), _) => model_index(m)?,
        (None, Some(t)) => model_index(&c.trains[t].model)?,
        (None, None) => match c.models.as_slice() {
            [] => return Err("the file has no model".into()),
            [_] => 0,
            several => {
                return Err(format!(
                    "the file has {} models; choose one with model=NAME: {}",
                    several.len(),
                    names(&mut several.iter().map(|m| m.name.as_str()))
                ))
            }
        },
    };
    Ok((model, train))
}

// The Python module releases the GIL while a session trains or runs, and may do so on any
// thread: a session must be movable between threads.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Session>();
};
