//! A train block's data: the data block's fields loaded, checked against the train graph's
//! inputs (shape, and class range where a field is one-hot encoded or scored by accuracy),
//! reshaped to them, and split into training and test sets.

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::frontend::checked::{
    Columns, DataDecl, FieldDecl, FieldFile, FieldType, MetricKind, Source, Split, TrainDecl,
};
use crate::ir::graph::{Graph, IndexUse, InputKind};
use crate::runtime::data::{self, fmt_dims, Dataset, FieldSpec, LoadOptions, ModelShape};

/// The training and test sets of a data block, checked against the model.
pub struct Data {
    pub train: Dataset,
    pub test: Option<Dataset>,
    /// Shuffle the training samples each epoch (the data block's `shuffle`, default true).
    pub shuffle: bool,
}

/// Per-sample shape of the model's (single) data input, and the labels' class count: that of
/// the one-hot encodings of the labels input itself (`classes_of_inputs`). A one-hot of
/// anything else (say, inside the model) says nothing about the labels.
pub fn model_signature(g: &Graph) -> Result<(String, Vec<usize>, Option<usize>), String> {
    let data_inputs: Vec<_> = g.inputs.iter().filter(|i| i.kind == InputKind::Data).collect();
    let [x] = data_inputs.as_slice() else {
        return Err(format!("training feeds one input from the data, but the model has {}", data_inputs.len()));
    };
    let sample: Option<Vec<usize>> = x.shape[1..].iter().map(|d| d.known()).collect();
    let sample = sample.ok_or("only the first (batch) dimension of the model input may be symbolic")?;
    let labels: Vec<&str> = g.inputs.iter().filter(|i| i.kind == InputKind::Label).map(|i| i.name.as_str()).collect();
    let classes = classes_of_inputs(g).into_iter().find(|(n, _)| labels.contains(&n.as_str())).map(|(_, c)| c);
    Ok((x.name.clone(), sample, classes))
}

/// The class count of each input that is one-hot encoded (the labels of `cross_entropy`,
/// `svm`, `one_hot`), following its values through layout ops (`Graph::index_use`).
pub fn classes_of_inputs(g: &Graph) -> Vec<(String, usize)> {
    (0..g.inputs.len()).filter_map(|i| Some((g.inputs[i].name.clone(), g.index_use(i).classes?))).collect()
}

/// A train-graph input that data feeds (a model input or a field the loss reads).
struct FedInput {
    name: String,
    /// The per-sample shape.
    shape: Vec<usize>,
    /// A model input declared `int`.
    integer: bool,
    /// What its values index (`Graph::index_use`).
    used: IndexUse,
}

fn fed_inputs(g: &Graph) -> Vec<FedInput> {
    g.inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.kind, InputKind::Data | InputKind::Label))
        .map(|(index, i)| FedInput {
            name: i.name.clone(),
            shape: i.shape.iter().skip(1).map(|d| d.known().unwrap_or(1)).collect(),
            integer: i.kind == InputKind::Data && i.integer,
            used: g.index_use(index),
        })
        .collect()
}

/// What each metric needs of its fields: accuracy's target holds classes `0..C` of its
/// output's last axis; mse's and mae's target holds as many values as the output per sample.
fn metric_needs(t: &TrainDecl) -> Vec<(String, Option<usize>, usize)> {
    let g = &t.graph;
    t.metrics
        .iter()
        .filter_map(|m| {
            let id = g.outputs.iter().find(|(n, _)| n == &m.output)?.1;
            let per: Vec<usize> = g.shape(id).iter().skip(1).map(|d| d.known().unwrap_or(1)).collect();
            Some(match m.kind {
                MetricKind::Accuracy => {
                    let classes = per.last().copied().unwrap_or(1);
                    (m.target.clone(), Some(classes), per.iter().product::<usize>() / classes.max(1))
                }
                MetricKind::Mse | MetricKind::Mae => (m.target.clone(), None, per.iter().product()),
            })
        })
        .collect()
}

/// One source's data set; `ids`: the features feed an int input indexing an axis of that size.
fn load_source(
    s: &Source,
    base: &Path,
    sample: &[usize],
    classes: Option<usize>,
    ids: Option<usize>,
) -> Result<Dataset, Diagnostic> {
    let path = |p: &str| -> PathBuf { base.join(p) };
    let opts = |label: &str, scale: f64| LoadOptions {
        label_column: label.to_string(),
        scale: scale as f32,
        sample_shape: Some(sample.to_vec()),
        classes,
        ..LoadOptions::default()
    };
    match s {
        Source::Spiral { points, classes, seed } => data::spiral(*points, *classes, *seed),
        Source::Synthetic { samples, classes, seed } => data::synthetic(*samples, sample, *classes, ids, *seed),
        Source::Csv { path: p, label, scale } => data::load_csv(&path(p), &opts(label, *scale)),
        Source::Npy { features, labels, scale } => {
            data::load_npy(&path(features), &path(labels), &opts("label", *scale))
        }
        Source::Idx { images, labels, scale } => data::load_idx(&path(images), &path(labels), &opts("label", *scale)),
    }
}

/// The files a source reads (none for generators).
fn source_files(s: &Source) -> Vec<&str> {
    match s {
        Source::Spiral { .. } | Source::Synthetic { .. } => vec![],
        Source::Csv { path, .. } => vec![path],
        Source::Npy { features, labels, .. } => vec![features, labels],
        Source::Idx { images, labels, .. } => vec![images, labels],
    }
}

/// Every file the data block `d` may read (its source, test and `otherwise` sources, and its
/// fields' files and test files), resolved against `base`: the outputs of a run must not
/// name one.
pub fn input_files(d: &DataDecl, base: &Path) -> Vec<PathBuf> {
    let sources = [d.source.as_ref(), d.test.as_ref(), d.otherwise.as_ref()].into_iter().flatten();
    let fields = d.fields.iter().flat_map(|f| std::iter::once(&f.file).chain(&f.test)).map(FieldFile::path);
    sources.flat_map(source_files).chain(fields).map(|f| base.join(f)).collect()
}

/// Load and split the data block `d` for the train block `t`. Paths are relative to `base`.
/// When a source's files are missing and the block names an `otherwise` source, that source
/// is used instead (and `on_fallback` is told which file was missing).
pub fn load_data(
    t: &TrainDecl,
    d: &DataDecl,
    base: &Path,
    on_fallback: &mut dyn FnMut(&Path),
) -> Result<Data, Diagnostic> {
    match &d.source {
        Some(source) => load_source_data(t, d, source, base, on_fallback),
        None => load_fields(t, d, base),
    }
}

/// A `source`: features for the model's one input, and `labels`.
fn load_source_data(
    t: &TrainDecl,
    d: &DataDecl,
    source: &Source,
    base: &Path,
    on_fallback: &mut dyn FnMut(&Path),
) -> Result<Data, Diagnostic> {
    let (input, sample, classes) = model_signature(&t.graph).map_err(|e| Diagnostic::new("E-run", e))?;
    if let Some(fallback) = &d.otherwise {
        let files = source_files(source).into_iter().chain(d.test.iter().flat_map(source_files));
        if let Some(missing) = files.map(|f| base.join(f)).find(|p| !p.exists()) {
            on_fallback(&missing);
            let d = DataDecl { source: Some(fallback.clone()), test: None, otherwise: None, ..d.clone() };
            return load_source_data(t, &d, fallback, base, on_fallback);
        }
    }
    let shape = ModelShape { input: &input, sample_shape: &sample, label: Some(("labels", &[])), classes };
    // The features of a model input declared `int` are whole numbers below what they index.
    let fed = fed_inputs(&t.graph).into_iter().find(|i| i.name == input).filter(|i| i.integer);
    let load = |s: &Source| -> Result<Dataset, Diagnostic> {
        // Synthetic ids for an int input: below what it indexes (0 or 1 if it indexes nothing).
        let ids = fed.as_ref().map(|f| f.used.bound().unwrap_or(2));
        let mut all = load_source(s, base, &sample, classes, ids)?;
        all.validate(&shape)?;
        all.reshape(&sample)?;
        all.rename(data::FEATURES, &input);
        if let (Some(fed), Some(x)) = (&fed, all.field_mut(&input)) {
            x.make_int_input(&input, fed.used.classes, fed.used.rows)?;
        }
        Ok(all)
    };
    let all = load(source)?;
    let (train, mut test) = split(all, d)?;
    if let Some(s) = &d.test {
        test = Some(load(s)?);
    }
    Ok(Data { train, test, shuffle: d.shuffle })
}

/// The data block's `split` of `all` into training and test sets. A split that keeps every
/// sample for training leaves no test set (not an empty one, whose loss would print as 0); one
/// that keeps none is an error.
fn split(all: Dataset, d: &DataDecl) -> Result<(Dataset, Option<Dataset>), Diagnostic> {
    let (train, test) = match &d.split {
        None => (all, None),
        Some(Split::Count(n)) => {
            let (a, b) = all.split_at(*n)?;
            (a, Some(b))
        }
        Some(Split::Fraction(f)) => {
            let (a, b) = all.split_fraction(*f)?;
            (a, Some(b))
        }
    };
    if train.is_empty() {
        return Err(data::error(format!("data `{}`: the split leaves no samples to train on", d.name)));
    }
    Ok((train, test.filter(|t| !t.is_empty())))
}

/// Named fields: each loaded from its file, checked against the graph input of its name (or
/// the metric that reads it), and reshaped to that input's per-sample shape.
fn load_fields(t: &TrainDecl, d: &DataDecl, base: &Path) -> Result<Data, Diagnostic> {
    let inputs = fed_inputs(&t.graph);
    let needs = metric_needs(t);
    let spec = |f: &FieldDecl, file: &FieldFile| -> FieldSpec {
        let input = inputs.iter().find(|i| i.name == f.name);
        let need = needs.iter().find(|(n, _, _)| n == &f.name);
        let class_count = input.and_then(|i| i.used.classes).or_else(|| need.and_then(|n| n.1));
        let (columns, exclude) = match file {
            FieldFile::Npy { .. } => (None, vec![]),
            FieldFile::Csv { path, columns } => {
                // `Columns::Rest`: every column the other fields of this file do not name.
                let mut taken = vec![];
                for other in d.fields.iter().filter(|o| o.name != f.name) {
                    if let FieldFile::Csv { path: p, columns: Columns::Names(names) } = &other.file {
                        if p == path {
                            taken.extend(names.iter().cloned());
                        }
                    }
                }
                (Some(columns.clone()), taken)
            }
        };
        let (shape, shape_from) = match (input, &f.shape) {
            (Some(i), _) => (Some(i.shape.clone()), format!("the train graph's input `{}` is", i.name)),
            (None, Some(s)) => (Some(s.clone()), "it is declared".to_string()),
            (None, None) => (None, String::new()),
        };
        // The field of an int input is read as float and checked by `make_int_input`.
        let int_input = input.is_some_and(|i| i.integer);
        FieldSpec {
            name: f.name.clone(),
            ty: if int_input { FieldType::Float } else { f.ty_for(false) },
            path: base.join(file.path()),
            columns,
            exclude,
            scale: f.scale as f32,
            shape,
            shape_from,
            classes: if int_input { None } else { class_count },
            ids: if int_input { None } else { input.and_then(|i| i.used.rows) },
        }
    };
    let load_set = |test: bool| -> Result<Dataset, Diagnostic> {
        let mut fields = vec![];
        for f in &d.fields {
            let file = if test { f.test.as_ref().unwrap_or(&f.file) } else { &f.file };
            let mut field = data::load_field(&spec(f, file))?;
            if let Some(fed) = inputs.iter().find(|i| i.name == f.name && i.integer) {
                field.make_int_input(&f.name, fed.used.classes, fed.used.rows)?;
            }
            if let Some((_, _, size)) = needs.iter().find(|(n, c, _)| n == &f.name && c.is_none()) {
                if field.size() != *size {
                    return Err(data::error(format!(
                        "{}: field `{}` has {} values per sample ({}), but the metric compares it with an output of {size}",
                        field.source(),
                        f.name,
                        field.size(),
                        fmt_dims(Some("samples"), field.shape())
                    )));
                }
            }
            fields.push(field);
        }
        Dataset::from_fields(fields)
    };
    let all = load_set(false)?;
    let (train, mut test) = split(all, d)?;
    if d.fields.iter().any(|f| f.test.is_some()) {
        test = Some(load_set(true)?);
    }
    Ok(Data { train, test, shuffle: d.shuffle })
}
