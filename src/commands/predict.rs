//! `netc predict FILE --load W.safetensors --input x.npy -o out.npy`: run a model's forward
//! pass on new data. Input: a checked program, trained weights and one NPY or CSV file per
//! model input (`--input name=file`); output: the model's output for every sample, as NPY or
//! CSV, computed in batches by the JIT (or the interpreter).
//!
//! Every sample count, per-sample size and name is checked before anything runs; a problem is
//! a diagnostic naming the file and the model input.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::diag::Diagnostic;
use crate::frontend::checked::{Checked, Model};
use crate::ir::graph::{Dim, Graph, InputKind};
use crate::runtime::data::{self, fmt_dims, Array};

/// What `netc predict` was asked (flags are parsed in main.rs).
pub struct PredictOptions {
    /// The model to run (default: the one the file trains, or its only model).
    pub model: Option<String>,
    /// Trained weights (safetensors, the model's parameter names).
    pub load: Option<PathBuf>,
    /// `name=path` or a bare path (for a model of one input).
    pub inputs: Vec<String>,
    /// Where to write the outputs (.npy or .csv); stdout as CSV when absent.
    pub output: Option<PathBuf>,
    /// Which model output, for a model with several.
    pub output_name: Option<String>,
    pub batch: usize,
    pub json: bool,
    pub quiet: bool,
    pub interpreter: bool,
}

fn err(msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new("E-predict", msg)
}

/// The file format, from the extension.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Format {
    Npy,
    Csv,
}

fn format_of(path: &Path, flag: &str) -> Result<Format, Diagnostic> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npy") => Ok(Format::Npy),
        Some("csv") => Ok(Format::Csv),
        _ => Err(err(format!("{flag} {}: the file must end in .npy or .csv", path.display()))),
    }
}

/// Every numeric column of a CSV file with a header row: `[rows, columns]`.
fn read_csv(path: &Path) -> Result<Array, Diagnostic> {
    let spec = data::FieldSpec {
        name: "input".into(),
        ty: data::FieldType::Float,
        path: path.to_path_buf(),
        columns: Some(data::Columns::Rest),
        exclude: vec![],
        scale: 1.0,
        shape: None,
        shape_from: String::new(),
        classes: None,
        ids: None,
    };
    let field = data::load_field(&spec)?;
    let mut shape = vec![field.len()];
    shape.extend_from_slice(field.shape());
    Ok(Array { shape, values: field.values().to_vec() })
}

/// The values for a model input declared `int`: whole numbers, below the class count or axis
/// they index (as training checks them), so that no id is found wrong mid-run.
fn check_ids(g: &Graph, name: &str, path: &Path, per_sample: usize, values: &[f32]) -> Result<(), Diagnostic> {
    let Some(index) = g.inputs.iter().position(|i| i.name == name && i.integer) else {
        return Ok(());
    };
    let source = path.display().to_string();
    let mut field = data::Field::new(name, data::FieldType::Float, vec![per_sample.max(1)], values.to_vec(), &source)?;
    let used = g.index_use(index);
    field.make_int_input(name, used.classes, used.rows)
}

/// The model `predict` runs.
fn pick_model<'c>(c: &'c Checked, name: Option<&str>) -> Result<&'c Model, Diagnostic> {
    let names = || c.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
    match name {
        Some(n) => c
            .models
            .iter()
            .find(|m| m.name == n)
            .ok_or_else(|| err(format!("no model is named `{n}`; the file has: {}", names()))),
        None => {
            if let [only] = c.models.as_slice() {
                return Ok(only);
            }
            let trained: Vec<&str> = c.trains.iter().map(|t| t.model.as_str()).collect();
            match trained.as_slice() {
                [m] => Ok(c.models.iter().find(|x| x.name == *m).expect("a train block's model exists")),
                _ if c.models.is_empty() => Err(err("the file has no model")),
                _ => Err(err(format!("the file has {} models; choose one with --model: {}", c.models.len(), names()))),
            }
        }
    }
}

/// One loaded input: the model input it feeds, its file, its values and samples.
struct Loaded {
    name: String,
    file: PathBuf,
    values: Vec<f32>,
    samples: usize,
}

/// Run the forward pass over every sample and write (or return) the result; the returned
/// string is what goes to stdout.
pub fn predict(c: &Checked, file: &Path, o: &PredictOptions) -> Result<String, Diagnostic> {
    let started = Instant::now();
    if o.batch == 0 {
        return Err(err("--batch must be at least 1"));
    }
    let out_format = match &o.output {
        Some(p) => {
            crate::commands::train::check_output_path(p, "-o")?;
            Some(format_of(p, "-o")?)
        }
        None if o.json => return Err(err("--json prints a summary: give the output file with -o")),
        None => None,
    };
    let model = pick_model(c, o.model.as_deref())?;
    let mut g: Graph = model.graph.clone();
    let inputs: Vec<(String, Vec<Dim>)> =
        g.inputs.iter().filter(|i| i.kind == InputKind::Data).map(|i| (i.name.clone(), i.shape.clone())).collect();

    // Bind each --input to a model input.
    let mut bound: Vec<(String, PathBuf)> = vec![];
    for spec in &o.inputs {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) => (n.to_string(), PathBuf::from(p)),
            None if inputs.len() == 1 => (inputs[0].0.clone(), PathBuf::from(spec)),
            None => {
                let names: Vec<&str> = inputs.iter().map(|i| i.0.as_str()).collect();
                return Err(err(format!(
                    "--input {spec}: model `{}` has {} inputs; name each one: --input NAME=FILE ({})",
                    model.name,
                    inputs.len(),
                    names.join(", ")
                )));
            }
        };
        if !inputs.iter().any(|i| i.0 == name) {
            let names: Vec<&str> = inputs.iter().map(|i| i.0.as_str()).collect();
            let mut d = err(format!("--input {spec}: model `{}` has no input `{name}`", model.name))
                .note(format!("its inputs are: {}", names.join(", ")));
            if let Some(n) = crate::diag::nearest(&name, names.iter().copied()) {
                d = d.help(format!("did you mean `{n}`?"));
            }
            return Err(d);
        }
        if bound.iter().any(|b| b.0 == name) {
            return Err(err(format!("--input {spec}: input `{name}` is given twice")));
        }
        bound.push((name, path));
    }
    if let Some((missing, shape)) = inputs.iter().find(|i| !bound.iter().any(|b| &b.0 == &i.0)) {
        return Err(err(format!(
            "model `{}` needs input `{missing}` ({}): give it with --input {missing}=FILE",
            model.name,
            g.shape_str(shape)
        )));
    }
    // The output never replaces a file this run reads: checked before any work.
    let mut read: Vec<&Path> = vec![file];
    read.extend(o.load.as_deref());
    read.extend(bound.iter().map(|b| b.1.as_path()));
    if let Some(out) = &o.output {
        crate::runtime::files::check_output_path(out, &read)
            .map_err(|e| Diagnostic::new("E-io", format!("cannot write {}: {e}", out.display())))?;
    }
    if g.symbols.len() > 1 {
        return Err(err(format!(
            "model `{}` has several symbolic dimensions ({}); predict binds only the batch",
            model.name,
            g.symbols.join(", ")
        )));
    }

    // Load and check every input: the same number of samples, the declared size per sample.
    let mut loaded: Vec<Loaded> = vec![];
    for (name, shape) in &inputs {
        let path = &bound.iter().find(|b| &b.0 == name).expect("bound above").1;
        let array = match format_of(path, "--input")? {
            Format::Npy => data::read_npy(path)?,
            Format::Csv => read_csv(path)?,
        };
        let batched = matches!(shape.first(), Some(Dim::Sym(_)));
        let per: Option<Vec<usize>> = shape.iter().skip(usize::from(batched)).map(|d| d.known()).collect();
        let Some(per) = per else {
            return Err(err(format!(
                "model input `{name}` is {}: only its first axis may be symbolic",
                g.shape_str(shape)
            )));
        };
        let want: usize = per.iter().product();
        let (samples, have) = match array.shape.split_first() {
            Some((&n, rest)) if batched => (n, rest.iter().product::<usize>()),
            _ => (1, array.values.len()),
        };
        if have != want {
            return Err(err(format!(
                "{}: {} values per sample (shape {}), but model input `{name}` is {} = {want} values per sample",
                path.display(),
                have,
                fmt_dims(None, &array.shape),
                g.shape_str(shape)
            )));
        }
        check_ids(&g, name, path, want, &array.values)?;
        loaded.push(Loaded { name: name.clone(), file: path.clone(), values: array.values, samples });
    }
    let samples = loaded.first().map_or(1, |l| l.samples);
    if samples == 0 {
        return Err(err(format!("{}: the file holds no samples", loaded[0].file.display())));
    }
    if let Some(l) = loaded.iter().find(|l| l.samples != samples) {
        return Err(err(format!(
            "{}: {} samples for input `{}`, but {} has {samples} for `{}`",
            l.file.display(),
            l.samples,
            l.name,
            loaded[0].file.display(),
            loaded[0].name
        )));
    }

    // The output to write.
    let out_name = match (&o.output_name, g.outputs.as_slice()) {
        (Some(n), outs) => {
            if !outs.iter().any(|(o, _)| o == n) {
                let names: Vec<&str> = outs.iter().map(|o| o.0.as_str()).collect();
                return Err(err(format!(
                    "model `{}` has no output `{n}`; its outputs are: {}",
                    model.name,
                    names.join(", ")
                )));
            }
            n.clone()
        }
        (None, [only]) => only.0.clone(),
        (None, outs) => {
            let names: Vec<&str> = outs.iter().map(|o| o.0.as_str()).collect();
            return Err(err(format!(
                "model `{}` has {} outputs; choose one with --output NAME: {}",
                model.name,
                outs.len(),
                names.join(", ")
            )));
        }
    };
    g.outputs.retain(|(n, _)| n == &out_name);
    let out_shape = g.shape(g.outputs[0].1).clone();
    let out_batched = matches!(out_shape.first(), Some(Dim::Sym(_)));
    let out_per: Vec<usize> = out_shape.iter().skip(usize::from(out_batched)).map(|d| d.known().unwrap_or(1)).collect();
    if !out_batched && samples > 1 {
        return Err(err(format!(
            "output `{out_name}` is {}, not one row per sample; predict needs a batch axis first",
            g.shape_str(&out_shape)
        )));
    }

    // Weights.
    let params: Vec<Vec<f32>> = match &o.load {
        Some(path) => crate::runtime::weights::load_params(path, &g.params)?.into_iter().map(|w| w.data).collect(),
        None if g.params.is_empty() => vec![],
        None => {
            return Err(err(format!(
                "model `{}` has {} parameter tensors: give the trained weights with --load W.safetensors",
                model.name,
                g.params.len()
            )))
        }
    };

    // Forward, batch by batch (the code the Python module's `predict` runs too). Its compile
    // time covers the inference graph's optimisation and the JIT.
    let compile_started = Instant::now();
    let mut forward = crate::session::Forward::new(model, std::slice::from_ref(&out_name), o.interpreter)?;
    let compile_ms = compile_started.elapsed().as_secs_f64() * 1e3;
    let forward_started = Instant::now();
    let batch = o.batch.min(samples.max(1));
    let per_out: usize = out_per.iter().product();
    let mut result = vec![0f32; samples * per_out];
    let bar = (!o.quiet && !o.json && samples.div_ceil(batch) > 1 && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(samples as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} samples  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let inputs: Vec<&[f32]> = loaded.iter().map(|l| l.values.as_slice()).collect();
    let mut show = |done: usize| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    };
    forward.run(&inputs, samples, batch, &params, &mut [result.as_mut_slice()], &mut show).map_err(err)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let forward_seconds = forward_started.elapsed().as_secs_f64();

    let mut shape = vec![samples];
    shape.extend(&out_per);
    let text = match (&o.output, out_format) {
        (Some(path), Some(Format::Npy)) => {
            write_file(path, &data::npy_bytes(&shape, &result), &read)?;
            String::new()
        }
        (Some(path), _) => {
            write_file(path, csv_text(&out_name, per_out, &result).as_bytes(), &read)?;
            String::new()
        }
        (None, _) => csv_text(&out_name, per_out, &result),
    };
    if let Some(path) = &o.output {
        if o.json {
            let inputs: serde_json::Map<String, serde_json::Value> = loaded
                .iter()
                .map(|l| (l.name.clone(), serde_json::Value::String(l.file.display().to_string())))
                .collect();
            let summary = serde_json::json!({
                "file": file.display().to_string(),
                "model": model.name,
                "output": out_name,
                "shape": shape,
                "samples": samples,
                "batch": batch,
                "inputs": inputs,
                "written": path.display().to_string(),
                "engine": if o.interpreter { "interp" } else { "jit" },
                "seconds": started.elapsed().as_secs_f64(),
                "compile_ms": compile_ms,
                "forward_seconds": forward_seconds,
            });
            return Ok(format!("{summary}\n"));
        }
        if !o.quiet {
            eprintln!("wrote {} ({} of {out_name}, {samples} samples)", path.display(), fmt_dims(None, &shape));
        }
    }
    Ok(text)
}

/// CSV of the outputs: a header `NAME_0, NAME_1, …` (or `NAME` for one value), a row each.
fn csv_text(name: &str, per: usize, values: &[f32]) -> String {
    let mut s =
        if per == 1 { name.to_string() } else { (0..per).map(|i| format!("{name}_{i}")).collect::<Vec<_>>().join(",") };
    s.push('\n');
    for row in values.chunks(per.max(1)) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    s
}

/// Write an output file atomically (`runtime::files`), never over one of `inputs`.
fn write_file(path: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<(), Diagnostic> {
    crate::runtime::files::write_atomic(path, bytes, inputs)
        .map_err(|e| Diagnostic::new("E-io", format!("cannot write {}: {e}", path.display())))
}
