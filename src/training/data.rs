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

/// A field a train block reads from its data, as a caller hands it in from memory (the
/// Python module's `fit` and `loss_and_grads` keywords).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainField {
    pub name: String,
    /// The shape of one sample.
    pub shape: Vec<usize>,
    /// Whole numbers only: a model input declared `int`, class labels, row ids.
    pub integer: bool,
    /// The values lie in `0..bound` (class labels of a one-hot or of accuracy, row ids of a
    /// gather).
    pub bound: Option<usize>,
    /// An input of the model, rather than a field only the loss or a metric reads.
    pub model_input: bool,
    /// The train graph reads it; a field only a metric reads may be left out (the metric is
    /// then not computed).
    pub required: bool,
}

/// The fields of train block `t`: the train graph's inputs in order, then the fields only its
/// metrics read.
pub fn train_fields(t: &TrainDecl) -> Vec<TrainField> {
    let needs = metric_needs(t);
    let mut out: Vec<TrainField> = fed_inputs(&t.graph)
        .into_iter()
        .map(|i| {
            let need = needs.iter().find(|(n, _, _)| *n == i.name).and_then(|n| n.1);
            let bound = i.used.bound().or(need);
            TrainField {
                integer: i.integer || bound.is_some(),
                bound,
                model_input: t.graph.inputs.iter().any(|g| g.name == i.name && g.kind == InputKind::Data),
                required: true,
                name: i.name,
                shape: i.shape,
            }
        })
        .collect();
    // A metric's mask holds one value per position of its target.
    let masks = t.metrics.iter().filter_map(|m| {
        let size = needs.iter().find(|(n, _, _)| *n == m.target)?.2;
        Some((m.mask.clone()?, None, size))
    });
    let metric_only: Vec<_> = needs.iter().cloned().chain(masks).collect();
    for (name, classes, size) in metric_only {
        if !out.iter().any(|f| f.name == name) {
            // Accuracy's target holds one class per position of the output's other axes.
            out.push(TrainField {
                name,
                shape: vec![size],
                integer: classes.is_some(),
                bound: classes,
                model_input: false,
                required: false,
            });
        }
    }
    out
}

/// One array handed in from memory (the Python module's `fit`): the field it fills, its full
/// shape (samples first) and its row-major values.
#[derive(Clone, Debug)]
pub struct ArrayField {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A data set from arrays in memory, checked as a data block's files are checked by
/// `load_fields`: each array fills a field of `train_fields(t)` and must have exactly its
/// per-sample shape (a metric-only field: its number of values); an `int` model input must
/// hold whole numbers, class labels and ids must be in range. Every required field must be
/// given. `source` names the arrays in messages.
pub fn dataset_from_arrays(t: &TrainDecl, arrays: Vec<ArrayField>, source: &str) -> Result<Dataset, Diagnostic> {
    let wanted = train_fields(t);
    let fed = fed_inputs(&t.graph);
    let needs = metric_needs(t);
    let expected = || {
        wanted
            .iter()
            .filter(|f| f.required)
            .map(|f| format!("{} {}", f.name, fmt_dims(Some("N"), &f.shape)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut fields: Vec<data::Field> = vec![];
    for a in arrays {
        let Some(want) = wanted.iter().find(|f| f.name == a.name) else {
            let mut d = data::error(format!("{source}: train {} reads no field named `{}`", t.name, a.name))
                .note(format!("it reads: {}", expected()));
            if let Some(n) = crate::diag::nearest(&a.name, wanted.iter().map(|f| f.name.as_str())) {
                d = d.help(format!("did you mean `{n}`?"));
            }
            return Err(d);
        };
        let Some((&samples, per_sample)) = a.shape.split_first() else {
            return Err(data::error(format!(
                "{source}: `{}` is a single number; it needs one entry per sample",
                a.name
            )));
        };
        let fits = if want.required {
            per_sample == want.shape.as_slice()
        } else {
            per_sample.iter().product::<usize>() == want.shape.iter().product::<usize>()
        };
        if !fits {
            return Err(data::error(format!(
                "{source}: `{}` has shape {}, but train {} reads it as {}",
                a.name,
                fmt_dims(None, &a.shape),
                t.name,
                fmt_dims(Some("N"), &want.shape)
            ))
            .help(format!(
                "give an array of shape {} (samples first)",
                fmt_dims(Some(&samples.to_string()), &want.shape)
            )));
        }
        if fields.iter().any(|f| f.name() == a.name) {
            return Err(data::error(format!("{source}: `{}` is given twice", a.name)));
        }
        if a.values.len() != a.shape.iter().product::<usize>() {
            return Err(data::error(format!("{source}: `{}`: its values do not fill its shape", a.name)));
        }
        let what = format!("{source} `{}`", a.name);
        // As `load_fields` reads each kind of field.
        let field = match fed.iter().find(|i| i.name == a.name) {
            Some(i) if i.integer => {
                let mut field = data::Field::new(&a.name, FieldType::Float, want.shape.clone(), a.values, &what)?;
                field.make_int_input(&a.name, i.used.classes, i.used.rows)?;
                field
            }
            input => {
                let classes = input
                    .and_then(|i| i.used.classes)
                    .or_else(|| needs.iter().find(|(n, _, _)| *n == a.name).and_then(|n| n.1));
                let rows = input.and_then(|i| i.used.rows);
                let ty = if classes.or(rows).is_some() { FieldType::Int } else { FieldType::Float };
                let field = data::Field::new(&a.name, ty, want.shape.clone(), a.values, &what)?;
                rows.map_or(Ok(()), |n| field.check_ids(n))?;
                classes.map_or(Ok(()), |k| field.check_classes(k))?;
                field
            }
        };
        fields.push(field);
    }
    if let Some(missing) = wanted.iter().find(|f| f.required && !fields.iter().any(|a| a.name() == f.name)) {
        return Err(data::error(format!(
            "{source}: train {} reads the field `{}` ({}), which was not given",
            t.name,
            missing.name,
            fmt_dims(Some("N"), &missing.shape)
        ))
        .note(format!("it reads: {}", expected())));
    }
    Dataset::from_fields(fields)
}
