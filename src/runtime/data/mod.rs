//! Data sets: input is data files (CSV, NPY, MNIST IDX) or a seeded generator (spiral,
//! synthetic); output is a `Dataset` of named fields — per-sample tensors of floats or integers,
//! all with the same number of samples — that can be split, checked against the model's
//! declared shapes, and served as minibatches into caller-owned buffers (`batches.rs`).
//!
//! A data block's fields (`x: npy("x.npy")`, `labels: csv("d.csv", columns: "label", type: int)`)
//! are loaded one by one with `load_field`; the older pair loaders (`load_csv`, `load_npy`,
//! `load_idx`, the generators) give the two fields `x` (features) and `labels`.
//!
//! Data files are user input: every problem with one is a `Diagnostic` naming the file and the
//! line (CSV) or byte offset / item (binary formats), never a panic. Declared sizes in binary
//! headers are checked against the bytes actually present before anything is allocated.
//! Integer fields are carried as whole numbers in f32 (exact up to 2^24), checked when loaded.

mod batches;
mod csv;
mod generate;
mod idx;
mod npy;

pub use batches::{Batch, Batches};
pub use csv::load_csv;
pub use generate::{spiral, synthetic};
pub use idx::load_idx;
pub use npy::{load_npy, npy_bytes, read_npy, Array};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
pub use crate::frontend::checked::{Columns, FieldType};

/// The diagnostic code of every data error.
pub const CODE: &str = "E-data";

/// The field names the pair loaders and generators give: features and class labels.
pub const FEATURES: &str = "x";
pub const LABELS: &str = "labels";

/// The largest integer a field may hold: every integer up to 2^24 is exact in f32.
pub const MAX_INT: f64 = 16_777_216.0;

pub(crate) fn error(message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(CODE, message)
}

/// The labels given to `Dataset::new`: one class index, or one target tensor, per sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Class indices for classification.
    Classes(Vec<u32>),
    /// Float regression targets of `shape` per sample, row-major.
    Targets { shape: Vec<usize>, values: Vec<f32> },
}

/// How the pair loaders read a data file. The CSV fields are ignored by the binary formats.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// CSV: the column holding the labels.
    pub label_column: String,
    /// CSV: the feature columns, in order; `None` means every column but the label.
    pub feature_columns: Option<Vec<String>>,
    /// Every feature is multiplied by this, e.g. 1/16 for the digits' 0..16 pixel counts.
    pub scale: f32,
    /// Each sample's shape, e.g. `[1, 8, 8]`; it must hold exactly the values of one row or item.
    /// `None` keeps the file's own: `[columns]` for CSV, the trailing dimensions for NPY/IDX.
    pub sample_shape: Option<Vec<usize>>,
    /// The model's class count: labels must then be whole numbers in `0..classes`.
    pub classes: Option<usize>,
    /// Read labels as float regression targets instead of class indices.
    pub targets: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            label_column: "label".to_string(),
            feature_columns: None,
            scale: 1.0,
            sample_shape: None,
            classes: None,
            targets: false,
        }
    }
}

/// Where a field's samples came from, so later errors (validation, a split half) can still
/// name the file and the original line or item.
#[derive(Clone, Debug, PartialEq)]
struct Origin {
    source: String,
    /// For text files, the 1-based line of each sample (blank lines make gaps).
    lines: Option<Vec<usize>>,
    /// Sample 0's index in the source; a split's second half starts past the first.
    first_item: usize,
}

impl Origin {
    fn new(source: &str, lines: Option<Vec<usize>>) -> Origin {
        Origin { source: source.to_string(), lines, first_item: 0 }
    }

    /// "line 7" for text files, "item 5" otherwise.
    fn locate(&self, i: usize) -> String {
        match self.lines.as_ref().and_then(|lines| lines.get(i)) {
            Some(line) => format!("line {line}"),
            None => format!("item {}", self.first_item + i),
        }
    }

    /// The origins of the first `n` samples and of the rest.
    fn split(mut self, n: usize) -> (Origin, Origin) {
        let rest_lines = self.lines.as_mut().map(|lines| lines.split_off(n.min(lines.len())));
        let rest = Origin { lines: rest_lines, first_item: self.first_item + n, ..self.clone() };
        (self, rest)
    }
}

/// One named field: `shape` per sample, row-major f32 values sample after sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    name: String,
    ty: FieldType,
    shape: Vec<usize>,
    values: Vec<f32>,
    origin: Origin,
}

impl Field {
    /// A field from values in memory; `source` names it in messages. Integer fields are
    /// checked to hold whole numbers.
    pub fn new(
        name: &str,
        ty: FieldType,
        shape: Vec<usize>,
        values: Vec<f32>,
        source: &str,
    ) -> Result<Field, Diagnostic> {
        Field::from_parts(name, ty, shape, values, Origin::new(source, None))
    }

    fn from_parts(
        name: &str,
        ty: FieldType,
        shape: Vec<usize>,
        values: Vec<f32>,
        origin: Origin,
    ) -> Result<Field, Diagnostic> {
        let size: usize = shape.iter().product();
        if size == 0 || !values.len().is_multiple_of(size) {
            return Err(error(format!(
                "{}: field `{name}`: {} values do not divide into samples of shape {}",
                origin.source,
                values.len(),
                fmt_dims(None, &shape)
            )));
        }
        let field = Field { name: name.to_string(), ty, shape, values, origin };
        if ty == FieldType::Int {
            field.check_integers("declare the field `float`, or round the values")?;
        }
        Ok(field)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ty(&self) -> FieldType {
        self.ty
    }

    /// The per-sample shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Values per sample.
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The file (or generator) the values came from.
    pub fn source(&self) -> &str {
        &self.origin.source
    }

    pub fn len(&self) -> usize {
        self.values.len() / self.size().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values of sample `i`. Panics if `i >= len()`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let size = self.size();
        &self.values[i * size..(i + 1) * size]
    }

    /// "line 7 of digits.csv" style position of sample `i`, and of element `j` within it.
    fn locate(&self, i: usize) -> String {
        self.origin.locate(i)
    }

    /// Every value a whole number, exact in f32; `help` says what to do about one that is not.
    fn check_integers(&self, help: &str) -> Result<(), Diagnostic> {
        let size = self.size().max(1);
        for (k, &v) in self.values.iter().enumerate() {
            let v = v as f64;
            if v.fract() != 0.0 || !v.is_finite() || v.abs() > MAX_INT {
                let why = if v.abs() > MAX_INT && v.is_finite() {
                    "above 2^24, where float32 is no longer exact"
                } else {
                    "not a whole number"
                };
                return Err(error(format!(
                    "{}: field `{}` is int, but its value at {} is {v}, {why}",
                    self.origin.source,
                    self.name,
                    self.locate(k / size)
                ))
                .help(help.to_string()));
            }
        }
        Ok(())
    }

    /// Values must be class indices `0..classes` (the labels of a classifier).
    pub fn check_classes(&self, classes: usize) -> Result<(), Diagnostic> {
        let bad = |c: f32| c < 0.0 || c.fract() != 0.0 || c as usize >= classes;
        if let Some(k) = self.values.iter().position(|&c| bad(c)) {
            let v = self.values[k];
            let why = if v < 0.0 || v.fract() != 0.0 {
                "is not a class index (a whole number from 0)".to_string()
            } else {
                format!("is out of range for {classes} classes")
            };
            let what = if self.name == LABELS { String::new() } else { format!(" (field `{}`)", self.name) };
            return Err(error(format!(
                "{}: label {v} at {} {why}{what}",
                self.origin.source,
                self.locate(k / self.size().max(1))
            ))
            .help(format!("class labels must be whole numbers 0..{}", classes.saturating_sub(1))));
        }
        Ok(())
    }

    /// Values must be row ids of an axis of `rows` (`E[tokens]`): whole numbers `0..rows`.
    pub fn check_ids(&self, rows: usize) -> Result<(), Diagnostic> {
        if let Some(k) = self.values.iter().position(|&v| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < rows)) {
            return Err(error(format!(
                "{}: value {} at {} of field `{}` is not a valid id: it indexes an axis of {rows}",
                self.origin.source,
                self.values[k],
                self.locate(k / self.size().max(1)),
                self.name
            ))
            .help(format!("ids must be whole numbers 0..{}", rows.saturating_sub(1))));
        }
        Ok(())
    }

    /// Read this field as the values of model input `input`, declared `int`: whole numbers,
    /// below the class count of each one-hot of them and the axis each gather indexes with
    /// them (`Graph::index_use`). Training (either kind of data block) and `netc predict`
    /// check such inputs here.
    pub fn make_int_input(
        &mut self,
        input: &str,
        classes: Option<usize>,
        rows: Option<usize>,
    ) -> Result<(), Diagnostic> {
        self.check_integers(&format!("model input `{input}` is declared int: its values must be whole numbers"))?;
        self.ty = FieldType::Int;
        rows.map_or(Ok(()), |n| self.check_ids(n))?;
        classes.map_or(Ok(()), |k| self.check_classes(k))
    }

    /// Give every sample a new shape with the same number of values, e.g. `[64]` to `[1, 8, 8]`.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<(), Diagnostic> {
        check_sample_shape(&self.origin, &self.shape, shape)?;
        self.shape = shape.to_vec();
        Ok(())
    }

    fn split_at(self, n: usize) -> (Field, Field) {
        let Field { name, ty, shape, mut values, origin } = self;
        let rest = values.split_off(n * shape.iter().product::<usize>());
        let (origin, rest_origin) = origin.split(n);
        let second = Field { name: name.clone(), ty, shape: shape.clone(), values: rest, origin: rest_origin };
        (Field { name, ty, shape, values, origin }, second)
    }
}

/// A set of samples: named fields with the same number of samples. The fields are private so
/// that the sizes always agree (batching relies on it).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    len: usize,
    fields: Vec<Field>,
    num_classes: Option<usize>,
}

impl Dataset {
    /// A data set of features `x` and `labels` from values in memory. `source` names it in
    /// messages. Fails if the features and labels do not hold the same number of samples, or
    /// a label is not below `num_classes`.
    pub fn new(
        source: &str,
        sample_shape: Vec<usize>,
        features: Vec<f32>,
        labels: Labels,
        num_classes: Option<usize>,
    ) -> Result<Dataset, Diagnostic> {
        Dataset::pair(Origin::new(source, None), Origin::new(source, None), sample_shape, features, labels, num_classes)
    }

    fn pair(
        x_origin: Origin,
        y_origin: Origin,
        sample_shape: Vec<usize>,
        features: Vec<f32>,
        labels: Labels,
        num_classes: Option<usize>,
    ) -> Result<Dataset, Diagnostic> {
        let labels = match labels {
            Labels::Classes(c) => {
                let values = c.iter().map(|&c| c as f32).collect();
                if let Some(i) = c.iter().position(|&c| c as f64 > MAX_INT) {
                    return Err(error(format!(
                        "{}: label {} at {} is too large for a class index",
                        y_origin.source,
                        c[i],
                        y_origin.locate(i)
                    )));
                }
                Field { name: LABELS.into(), ty: FieldType::Int, shape: vec![], values, origin: y_origin }
            }
            Labels::Targets { shape, values } => Field::from_parts(LABELS, FieldType::Float, shape, values, y_origin)?,
        };
        let len = labels.len();
        let sample_size: usize = sample_shape.iter().product();
        if len.checked_mul(sample_size) != Some(features.len()) {
            return Err(error(format!(
                "{}: {} feature values do not make {len} samples of shape {} ({} labels)",
                x_origin.source,
                features.len(),
                fmt_dims(None, &sample_shape),
                len
            )));
        }
        let x = Field {
            name: FEATURES.into(),
            ty: FieldType::Float,
            shape: sample_shape,
            values: features,
            origin: x_origin,
        };
        let d = Dataset { len, fields: vec![x, labels], num_classes };
        if let Some(k) = num_classes {
            d.labels_field().filter(|f| f.ty == FieldType::Int).map_or(Ok(()), |f| f.check_classes(k))?;
        }
        Ok(d)
    }

    /// A data set of these fields, which must all hold the same number of samples and have
    /// distinct names.
    pub fn from_fields(fields: Vec<Field>) -> Result<Dataset, Diagnostic> {
        let Some(first) = fields.first() else {
            return Err(error("a data set needs at least one field"));
        };
        let len = first.len();
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(error(format!("{}: two fields are named `{}`", f.source(), f.name)));
            }
            if f.len() != len {
                return Err(error(format!(
                    "{}: field `{}` has {} samples, but field `{}` ({}) has {len}",
                    f.source(),
                    f.name,
                    f.len(),
                    first.name,
                    first.source()
                ))
                .help("every field of a data block holds one entry per sample, in the same order"));
            }
        }
        Ok(Dataset { len, fields, num_classes: None })
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn field_mut(&mut self, name: &str) -> Option<&mut Field> {
        self.fields.iter_mut().find(|f| f.name == name)
    }

    /// Rename a field (e.g. a pair loader's `x` to the model input it feeds).
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(f) = self.field_mut(from) {
            f.name = to.to_string();
        }
    }

    fn features_field(&self) -> &Field {
        &self.fields[0]
    }

    fn labels_field(&self) -> Option<&Field> {
        self.field(LABELS)
    }

    /// The file (or generator) the first field (the features) came from.
    pub fn source(&self) -> &str {
        self.features_field().source()
    }

    /// The file the labels came from; the same as `source` for CSV and generators.
    pub fn label_source(&self) -> &str {
        self.labels_field().map_or(self.source(), |f| f.source())
    }

    /// The features' per-sample shape.
    pub fn sample_shape(&self) -> &[usize] {
        self.features_field().shape()
    }

    /// Values per sample of the features.
    pub fn sample_size(&self) -> usize {
        self.features_field().size()
    }

    /// All features, sample after sample.
    pub fn features(&self) -> &[f32] {
        self.features_field().values()
    }

    /// The features of sample `i`. Panics if `i >= len()`.
    pub fn sample(&self, i: usize) -> &[f32] {
        self.features_field().sample(i)
    }

    /// The `labels` field: class indices when it is an integer field, else targets.
    pub fn labels(&self) -> Option<Labels> {
        let f = self.labels_field()?;
        Some(match f.ty {
            FieldType::Int => Labels::Classes(f.values.iter().map(|&v| v as u32).collect()),
            FieldType::Float => Labels::Targets { shape: f.shape.clone(), values: f.values.clone() },
        })
    }

    /// The class count, when the file's options or the generator declared it.
    pub fn num_classes(&self) -> Option<usize> {
        self.num_classes
    }

    /// How many samples each class has (classes `0..num_classes`, or up to the largest label
    /// seen); `None` without integer labels.
    pub fn class_counts(&self) -> Option<Vec<usize>> {
        let f = self.labels_field().filter(|f| f.ty == FieldType::Int)?;
        let seen = f.values.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        let mut counts = vec![0; self.num_classes.unwrap_or(0).max(seen)];
        for &c in &f.values {
            counts[c as usize] += 1;
        }
        Some(counts)
    }

    /// Give every sample of the features a new shape with the same number of values.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<(), Diagnostic> {
        self.fields[0].reshape(shape)
    }

    /// Split into the first `n` samples (train) and the rest (test), keeping file order, as the
    /// digits split does (first 1500 train, last 297 test).
    pub fn split_at(self, n: usize) -> Result<(Dataset, Dataset), Diagnostic> {
        if n > self.len {
            return Err(error(format!(
                "{}: cannot take {n} training samples from {} samples",
                self.source(),
                self.len
            )));
        }
        let Dataset { len, fields, num_classes } = self;
        let (first, rest): (Vec<Field>, Vec<Field>) = fields.into_iter().map(|f| f.split_at(n)).unzip();
        Ok((Dataset { len: n, fields: first, num_classes }, Dataset { len: len - n, fields: rest, num_classes }))
    }

    /// Split off the first `fraction` of the samples (rounded to the nearest count) for training.
    pub fn split_fraction(self, fraction: f64) -> Result<(Dataset, Dataset), Diagnostic> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(error(format!(
                "{}: the training fraction must be between 0 and 1, not {fraction}",
                self.source()
            )));
        }
        let n = ((self.len as f64 * fraction).round() as usize).min(self.len);
        self.split_at(n)
    }

    /// Minibatches of `batch_size` samples, in file order until `Batches::shuffle` is called.
    pub fn batches(&self, batch_size: usize, drop_last: bool) -> Result<Batches<'_>, Diagnostic> {
        if batch_size == 0 {
            return Err(error(format!("{}: the batch size must be at least 1", self.source())));
        }
        Ok(Batches::new(self, batch_size, drop_last))
    }

    /// Copy the samples `indices` into `x` (the features) and `y` (the labels), packed from the
    /// start of each buffer. `T` is f32 for the JIT and f64 for the interpreter.
    ///
    /// # Panics
    /// If an index is out of range or a buffer is shorter than `indices.len()` samples: both are
    /// bugs in the caller, not problems with the data.
    pub fn gather<T: From<f32>>(&self, indices: &[usize], x: &mut [T], y: &mut [T]) {
        gather_field(self.features_field(), indices, x);
        if let Some(labels) = self.labels_field() {
            gather_field(labels, indices, y);
        }
    }

    /// Check the features and labels against what a model declares: the features must fill
    /// the model input's per-sample shape, the labels its label input, and class indices must
    /// be below the model's class count. Different shapes with equal sizes pass: data is
    /// row-major.
    pub fn validate(&self, model: &ModelShape) -> Result<(), Diagnostic> {
        let x = self.features_field();
        let per = if x.origin.lines.is_some() { "row" } else { "sample" };
        let want: usize = model.sample_shape.iter().product();
        if want != x.size() {
            return Err(error(format!(
                "{}: {} features per {per}, but model input {} is {} = {want} values",
                x.source(),
                x.size(),
                model.input,
                fmt_dims(Some("B"), model.sample_shape)
            )));
        }
        let labels = self.labels_field();
        if let (Some((name, shape)), Some(y)) = (model.label, labels) {
            let want: usize = shape.iter().product();
            if want != y.size() {
                let have = match y.ty {
                    FieldType::Int => "1 class index".to_string(),
                    FieldType::Float => format!("{} target values", y.size()),
                };
                return Err(error(format!(
                    "{}: {have} per {per}, but model label {name} is {} = {want} values",
                    y.source(),
                    fmt_dims(Some("B"), shape)
                )));
            }
        }
        if let (Some(k), Some(y)) = (model.classes, labels) {
            if y.ty == FieldType::Float {
                return Err(error(format!(
                    "{}: the labels are float targets, but the model expects class indices 0..{k}",
                    y.source()
                )));
            }
            y.check_classes(k)?;
        }
        Ok(())
    }
}

/// Copy the samples `indices` of `field` into `buf`, packed from the start.
pub fn gather_field<T: From<f32>>(field: &Field, indices: &[usize], buf: &mut [T]) {
    let size = field.size();
    for (slot, &i) in indices.iter().enumerate() {
        for (dst, &src) in buf[slot * size..(slot + 1) * size].iter_mut().zip(field.sample(i)) {
            *dst = T::from(src);
        }
    }
}

/// What a model declares about one sample, for `Dataset::validate`. Shapes leave out the
/// leading batch dimension: `x: [B, 1, 8, 8]` has `sample_shape` `[1, 8, 8]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelShape<'a> {
    /// The model input fed with the features, e.g. `x`.
    pub input: &'a str,
    pub sample_shape: &'a [usize],
    /// The label input and its per-sample shape (`[]` for `y: [B]`), if the model has one.
    pub label: Option<(&'a str, &'a [usize])>,
    /// The class count, when the labels are class indices.
    pub classes: Option<usize>,
}

/// `declared` must hold exactly the values of `found`.
fn check_sample_shape(origin: &Origin, found: &[usize], declared: &[usize]) -> Result<(), Diagnostic> {
    let (have, want) = (found.iter().product::<usize>(), declared.iter().product::<usize>());
    if have != want {
        return Err(error(format!(
            "{}: samples of shape {} ({have} values) do not fit the declared shape {} ({want} values)",
            origin.source,
            fmt_dims(None, found),
            fmt_dims(None, declared)
        )));
    }
    Ok(())
}

/// `[1, 8, 8]`, or `[B, 1, 8, 8]` with a batch name.
pub fn fmt_dims(batch: Option<&str>, dims: &[usize]) -> String {
    let mut s = String::from("[");
    let mut first = true;
    if let Some(b) = batch {
        s.push_str(b);
        first = false;
    }
    for d in dims {
        if !first {
            s.push_str(", ");
        }
        first = false;
        let _ = write!(s, "{d}");
    }
    s.push(']');
    s
}

/// A whole number in 0..=2^24 as a class index; the error text says what is wrong.
fn class_index(value: f64) -> Result<u32, String> {
    if value.fract() != 0.0 || value < 0.0 || !value.is_finite() {
        return Err(format!("label {value} is not a class index (a whole number from 0)"));
    }
    if value > MAX_INT {
        return Err(format!("label {value} is too large for a class index"));
    }
    Ok(value as u32)
}

/// Finish a pair loader: check the declared shape and the label range, scale the features.
fn assemble(
    x_origin: Origin,
    y_origin: Origin,
    file_shape: Vec<usize>,
    mut features: Vec<f32>,
    labels: Labels,
    opts: &LoadOptions,
) -> Result<Dataset, Diagnostic> {
    let sample_shape = match &opts.sample_shape {
        Some(declared) => {
            check_sample_shape(&x_origin, &file_shape, declared)?;
            declared.clone()
        }
        None => file_shape,
    };
    scale_values(&x_origin.source, &mut features, opts.scale)?;
    Dataset::pair(x_origin, y_origin, sample_shape, features, labels, opts.classes)
}

fn scale_values(source: &str, values: &mut [f32], scale: f32) -> Result<(), Diagnostic> {
    if !scale.is_finite() {
        return Err(error(format!("{source}: the scale factor must be a finite number, not {scale}")));
    }
    if scale != 1.0 {
        for v in values {
            *v *= scale;
        }
    }
    Ok(())
}

/// Reserve room for `n` values, failing cleanly (instead of aborting) when `n` is absurd.
fn reserve<T>(n: usize, what: &str) -> Result<Vec<T>, Diagnostic> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| error(format!("{what}: {n} values do not fit in memory")))?;
    Ok(v)
}

/// Read a whole data file, with the file named in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    use crate::runtime::files;
    files::read_input(path, files::max_data_bytes())
        .map_err(|e| error(format!("{}: cannot read the file: {e}", path.display())))
}

/// How to read one field of a data block.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub ty: FieldType,
    pub path: PathBuf,
    /// CSV: which columns; `None` for NPY.
    pub columns: Option<Columns>,
    /// CSV with `Columns::Rest`: the columns other fields take from the same file.
    pub exclude: Vec<String>,
    pub scale: f32,
    /// The per-sample shape to check the file against and reshape to.
    pub shape: Option<Vec<usize>>,
    /// Who wants that shape, for the message: "the model input `x` is", "it is declared".
    pub shape_from: String,
    /// For integer fields read as class indices: values must be in `0..classes`.
    pub classes: Option<usize>,
    /// For integer fields read as row ids (`E[tokens]`): values must be in `0..ids`.
    pub ids: Option<usize>,
}

/// Load one field: an NPY array `[samples, ...]`, or columns of a CSV file (one sample per
/// row). Errors name the file, the field and the line or item.
pub fn load_field(spec: &FieldSpec) -> Result<Field, Diagnostic> {
    let mut field = match &spec.columns {
        None => npy::load_field(spec)?,
        Some(columns) => csv::load_field(spec, columns)?,
    };
    if let Some(shape) = &spec.shape {
        if field.size() != shape.iter().product::<usize>() {
            let per = if field.origin.lines.is_some() { "row" } else { "sample" };
            return Err(error(format!(
                "{}: field `{}` has {} values per {per} ({}), but {} {} = {} values",
                field.source(),
                spec.name,
                field.size(),
                fmt_dims(Some("samples"), &field.shape),
                spec.shape_from,
                fmt_dims(Some("B"), shape),
                shape.iter().product::<usize>()
            )));
        }
        field.shape = shape.clone();
    }
    if let Some(k) = spec.classes {
        field.check_classes(k)?;
    }
    if let Some(rows) = spec.ids {
        field.check_ids(rows)?;
    }
    Ok(field)
}
