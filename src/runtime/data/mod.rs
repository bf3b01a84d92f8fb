//! Data sets: input is a data file (CSV, NPY, MNIST IDX) or a seeded generator (spiral,
//! synthetic); output is a `Dataset` of f32 features and labels that can be split, checked
//! against the model's declared shapes, and served as minibatches into caller-owned buffers.
//!
//! Data files are user input: every problem with one is a `Diagnostic` naming the file and the
//! line (CSV) or byte offset / item (binary formats), never a panic. Declared sizes in binary
//! headers are checked against the bytes actually present before anything is allocated.

mod csv;
mod idx;
mod npy;

pub use csv::load_csv;
pub use idx::load_idx;
pub use npy::load_npy;

use std::fmt::Write as _;
use std::path::Path;

use crate::diag::Diagnostic;
use crate::runtime::rng::Rng;

/// The diagnostic code of every data error.
pub const CODE: &str = "E-data";

pub(crate) fn error(message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(CODE, message)
}

/// The labels of a data set: one class index, or one target tensor, per sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Class indices for classification. The graph carries them as whole numbers in float
    /// tensors; they are stored exactly here.
    Classes(Vec<u32>),
    /// Float regression targets of `shape` per sample, row-major.
    Targets { shape: Vec<usize>, values: Vec<f32> },
}

impl Labels {
    /// How many values one sample's label occupies in a label buffer.
    pub fn size(&self) -> usize {
        match self {
            Labels::Classes(_) => 1,
            Labels::Targets { shape, .. } => shape.iter().product(),
        }
    }
}

/// How to read a data file. The CSV fields are ignored by the binary formats.
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

/// Where a data set's samples came from, so later errors (validation, a split half) can still
/// name the file and the original line or item.
#[derive(Clone, Debug, PartialEq)]
struct Origin {
    source: String,
    label_source: String,
    /// For text files, the 1-based line of each sample (blank lines make gaps).
    lines: Option<Vec<usize>>,
    /// Sample 0's index in the source; a split's second half starts past the first.
    first_item: usize,
}

impl Origin {
    fn new(source: &str, label_source: &str, lines: Option<Vec<usize>>) -> Origin {
        Origin { source: source.to_string(), label_source: label_source.to_string(), lines, first_item: 0 }
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

/// A set of samples: features as f32, row-major, `sample_shape` per sample; labels alongside.
/// The fields are private so that the sizes always agree (batching relies on it).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    origin: Origin,
    len: usize,
    sample_shape: Vec<usize>,
    features: Vec<f32>,
    labels: Labels,
    num_classes: Option<usize>,
}

impl Dataset {
    /// A data set from values in memory. `source` names it in messages. Fails if the features
    /// or labels do not hold the same number of samples, or a label is not below `num_classes`.
    pub fn new(
        source: &str,
        sample_shape: Vec<usize>,
        features: Vec<f32>,
        labels: Labels,
        num_classes: Option<usize>,
    ) -> Result<Dataset, Diagnostic> {
        Dataset::from_parts(Origin::new(source, source, None), sample_shape, features, labels, num_classes)
    }

    fn from_parts(
        origin: Origin,
        sample_shape: Vec<usize>,
        features: Vec<f32>,
        labels: Labels,
        num_classes: Option<usize>,
    ) -> Result<Dataset, Diagnostic> {
        let src = &origin.source;
        let len = match &labels {
            Labels::Classes(c) => c.len(),
            Labels::Targets { shape, values } => {
                let size: usize = shape.iter().product();
                if size == 0 || !values.len().is_multiple_of(size) {
                    return Err(error(format!(
                        "{}: {} target values do not divide into samples of shape {}",
                        origin.label_source,
                        values.len(),
                        fmt_dims(None, shape)
                    )));
                }
                values.len() / size
            }
        };
        let sample_size: usize = sample_shape.iter().product();
        if len.checked_mul(sample_size) != Some(features.len()) {
            return Err(error(format!(
                "{src}: {} feature values do not make {len} samples of shape {} ({} labels)",
                features.len(),
                fmt_dims(None, &sample_shape),
                len
            )));
        }
        if let Some(k) = num_classes {
            check_classes(&origin, &labels, k)?;
        }
        Ok(Dataset { origin, len, sample_shape, features, labels, num_classes })
    }

    /// The number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file (or generator) the features came from, as named in messages.
    pub fn source(&self) -> &str {
        &self.origin.source
    }

    /// The file the labels came from; the same as `source` for CSV and generators.
    pub fn label_source(&self) -> &str {
        &self.origin.label_source
    }

    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Values per sample: the product of `sample_shape`.
    pub fn sample_size(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// All features, sample after sample.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The features of sample `i`. Panics if `i >= len()`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let size = self.sample_size();
        &self.features[i * size..(i + 1) * size]
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The class count, when the file's options or the generator declared it.
    pub fn num_classes(&self) -> Option<usize> {
        self.num_classes
    }

    /// How many samples each class has (classes `0..num_classes`, or up to the largest label
    /// seen); `None` for regression targets.
    pub fn class_counts(&self) -> Option<Vec<usize>> {
        let Labels::Classes(classes) = &self.labels else { return None };
        let seen = classes.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        let mut counts = vec![0; self.num_classes.unwrap_or(0).max(seen)];
        for &c in classes {
            counts[c as usize] += 1;
        }
        Some(counts)
    }

    /// Give every sample a new shape with the same number of values, e.g. `[64]` to `[1, 8, 8]`.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<(), Diagnostic> {
        check_sample_shape(&self.origin, &self.sample_shape, shape)?;
        self.sample_shape = shape.to_vec();
        Ok(())
    }

    /// Split into the first `n` samples (train) and the rest (test), keeping file order, as the
    /// digits split does (first 1500 train, last 297 test).
    pub fn split_at(self, n: usize) -> Result<(Dataset, Dataset), Diagnostic> {
        if n > self.len {
            return Err(error(format!(
                "{}: cannot take {n} training samples from {} samples",
                self.origin.source, self.len
            )));
        }
        let Dataset { origin, len, sample_shape, mut features, labels, num_classes } = self;
        let rest = features.split_off(n * sample_shape.iter().product::<usize>());
        let (first_labels, rest_labels) = match labels {
            Labels::Classes(mut c) => {
                let rest = c.split_off(n);
                (Labels::Classes(c), Labels::Classes(rest))
            }
            Labels::Targets { shape, mut values } => {
                let rest = values.split_off(n * shape.iter().product::<usize>());
                (Labels::Targets { shape: shape.clone(), values }, Labels::Targets { shape, values: rest })
            }
        };
        let (origin, rest_origin) = origin.split(n);
        let test = Dataset {
            origin: rest_origin,
            len: len - n,
            sample_shape: sample_shape.clone(),
            features: rest,
            labels: rest_labels,
            num_classes,
        };
        let train = Dataset { origin, len: n, sample_shape, features, labels: first_labels, num_classes };
        Ok((train, test))
    }

    /// Split off the first `fraction` of the samples (rounded to the nearest count) for training.
    pub fn split_fraction(self, fraction: f64) -> Result<(Dataset, Dataset), Diagnostic> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(error(format!(
                "{}: the training fraction must be between 0 and 1, not {fraction}",
                self.origin.source
            )));
        }
        let n = ((self.len as f64 * fraction).round() as usize).min(self.len);
        self.split_at(n)
    }

    /// Minibatches of `batch_size` samples, in file order until `Batches::shuffle` is called.
    pub fn batches(&self, batch_size: usize, drop_last: bool) -> Result<Batches<'_>, Diagnostic> {
        if batch_size == 0 {
            return Err(error(format!("{}: the batch size must be at least 1", self.origin.source)));
        }
        Ok(Batches { data: self, order: (0..self.len).collect(), batch_size, drop_last, next: 0 })
    }

    /// Copy the samples `indices` into `x` (features) and `y` (labels: class indices as whole
    /// numbers, or targets), packed from the start of each buffer. `T` is f32 for the JIT and
    /// f64 for the interpreter.
    ///
    /// # Panics
    /// If an index is out of range or a buffer is shorter than `indices.len()` samples: both are
    /// bugs in the caller, not problems with the data.
    pub fn gather<T: From<f32>>(&self, indices: &[usize], x: &mut [T], y: &mut [T]) {
        let size = self.sample_size();
        for (slot, &i) in indices.iter().enumerate() {
            for (dst, &src) in x[slot * size..(slot + 1) * size].iter_mut().zip(self.sample(i)) {
                *dst = T::from(src);
            }
        }
        match &self.labels {
            Labels::Classes(c) => {
                for (dst, &i) in y[..indices.len()].iter_mut().zip(indices) {
                    // Exact: class counts stay far below 2^24.
                    *dst = T::from(c[i] as f32);
                }
            }
            Labels::Targets { shape, values } => {
                let size: usize = shape.iter().product();
                for (slot, &i) in indices.iter().enumerate() {
                    for (dst, &src) in
                        y[slot * size..(slot + 1) * size].iter_mut().zip(&values[i * size..(i + 1) * size])
                    {
                        *dst = T::from(src);
                    }
                }
            }
        }
    }

    /// Check this data set against what the model declares: the features must fill the model
    /// input's per-sample shape, the labels its label input, and class indices must be below
    /// the model's class count. Different shapes with equal sizes pass: data is row-major.
    pub fn validate(&self, model: &ModelShape) -> Result<(), Diagnostic> {
        let per = if self.origin.lines.is_some() { "row" } else { "sample" };
        let want: usize = model.sample_shape.iter().product();
        if want != self.sample_size() {
            return Err(error(format!(
                "{}: {} features per {per}, but model input {} is {} = {want} values",
                self.origin.source,
                self.sample_size(),
                model.input,
                fmt_dims(Some("B"), model.sample_shape)
            )));
        }
        if let Some((name, shape)) = model.label {
            let want: usize = shape.iter().product();
            if want != self.labels.size() {
                let have = match &self.labels {
                    Labels::Classes(_) => "1 class index".to_string(),
                    Labels::Targets { .. } => format!("{} target values", self.labels.size()),
                };
                return Err(error(format!(
                    "{}: {have} per {per}, but model label {name} is {} = {want} values",
                    self.origin.label_source,
                    fmt_dims(Some("B"), shape)
                )));
            }
        }
        if let Some(k) = model.classes {
            if matches!(self.labels, Labels::Targets { .. }) {
                return Err(error(format!(
                    "{}: the labels are float targets, but the model expects class indices 0..{k}",
                    self.origin.label_source
                )));
            }
            check_classes(&self.origin, &self.labels, k)?;
        }
        Ok(())
    }
}

impl Dataset {
    /// Check the features for a model input declared `int`: every value a whole number,
    /// exact in f32 (|v| <= 2^24), and below `bound` when the values index an axis of that
    /// size (`Graph::index_bound`).
    pub fn check_integers(&self, input: &str, bound: Option<usize>) -> Result<(), Diagnostic> {
        let per = self.sample_size().max(1);
        for (i, &v) in self.features().iter().enumerate() {
            let whole = v.fract() == 0.0 && v.abs() <= (1 << 24) as f32;
            let in_range = bound.is_none_or(|b| v >= 0.0 && (v as f64) < b as f64);
            if whole && in_range {
                continue;
            }
            let at = self.origin.locate(i / per);
            let expected = match bound {
                Some(b) => format!("whole numbers 0..{}", b.saturating_sub(1)),
                None => "whole numbers (at most 2^24 in size)".to_string(),
            };
            return Err(error(format!(
                "{}: value {v} at {at} is not a valid id for model input `{input}`, declared int",
                self.origin.source
            ))
            .help(format!("its values index an axis of the model, so they must be {expected}")));
        }
        Ok(())
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

fn check_classes(origin: &Origin, labels: &Labels, classes: usize) -> Result<(), Diagnostic> {
    if let Labels::Classes(c) = labels {
        if let Some(i) = c.iter().position(|&c| c as usize >= classes) {
            return Err(error(format!(
                "{}: label {} at {} is out of range for {classes} classes",
                origin.label_source,
                c[i],
                origin.locate(i)
            ))
            .help(format!("class labels must be whole numbers 0..{}", classes.saturating_sub(1))));
        }
    }
    Ok(())
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
fn fmt_dims(batch: Option<&str>, dims: &[usize]) -> String {
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

/// A whole number in 0..=u32::MAX as a class index; the error text says what is wrong.
fn class_index(value: f64) -> Result<u32, String> {
    if value.fract() != 0.0 || value < 0.0 || !value.is_finite() {
        return Err(format!("label {value} is not a class index (a whole number from 0)"));
    }
    if value > u32::MAX as f64 {
        return Err(format!("label {value} is too large for a class index"));
    }
    Ok(value as u32)
}

/// Finish a file loader: check the declared shape and the label range, scale the features.
fn assemble(
    origin: Origin,
    file_shape: Vec<usize>,
    mut features: Vec<f32>,
    labels: Labels,
    opts: &LoadOptions,
) -> Result<Dataset, Diagnostic> {
    let sample_shape = match &opts.sample_shape {
        Some(declared) => {
            check_sample_shape(&origin, &file_shape, declared)?;
            declared.clone()
        }
        None => file_shape,
    };
    if !opts.scale.is_finite() {
        return Err(error(format!("{}: the scale factor must be a finite number, not {}", origin.source, opts.scale)));
    }
    if opts.scale != 1.0 {
        for v in &mut features {
            *v *= opts.scale;
        }
    }
    Dataset::from_parts(origin, sample_shape, features, labels, opts.classes)
}

/// Reserve room for `n` values, failing cleanly (instead of aborting) when `n` is absurd.
fn reserve<T>(n: usize, what: &str) -> Result<Vec<T>, Diagnostic> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| error(format!("{what}: {n} values do not fit in memory")))?;
    Ok(v)
}

/// Read a whole data file, with the file named in the error.
fn read_file(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    std::fs::read(path).map_err(|e| error(format!("{}: cannot read the file: {e}", path.display())))
}

/// The classic CS231n spiral: `classes` arms of `points_per_class` 2-D points each. For class
/// j, r = linspace(0, 1, N) and t = linspace(4j, 4(j+1), N) + 0.2 * gaussian noise; the point is
/// (r sin t, r cos t) with label j. Points are in class order; the same seed gives the same data.
pub fn spiral(points_per_class: usize, classes: usize, seed: u64) -> Result<Dataset, Diagnostic> {
    const SOURCE: &str = "spiral data";
    let n = points_per_class
        .checked_mul(classes)
        .filter(|n| n.checked_mul(2).is_some())
        .ok_or_else(|| error(format!("{SOURCE}: {points_per_class} points for {classes} classes is too many")))?;
    let mut rng = Rng::new(seed);
    let mut features = reserve(2 * n, SOURCE)?;
    let mut labels = reserve(n, SOURCE)?;
    let linspace = |start: f64, end: f64, i: usize| {
        if points_per_class < 2 {
            start
        } else {
            start + (end - start) * i as f64 / (points_per_class - 1) as f64
        }
    };
    for j in 0..classes {
        for i in 0..points_per_class {
            let r = linspace(0.0, 1.0, i);
            let t = linspace(4.0 * j as f64, 4.0 * (j + 1) as f64, i) + 0.2 * rng.normal();
            features.push((r * t.sin()) as f32);
            features.push((r * t.cos()) as f32);
            labels.push(j as u32);
        }
    }
    Dataset::new(SOURCE, vec![2], features, Labels::Classes(labels), Some(classes))
}

/// `samples` standard-normal inputs of `input_shape` with uniform labels in `0..classes`: no
/// signal to learn, just the right shapes for benchmarks and smoke tests. Seeded.
pub fn synthetic(samples: usize, input_shape: &[usize], classes: usize, seed: u64) -> Result<Dataset, Diagnostic> {
    const SOURCE: &str = "synthetic data";
    if classes == 0 {
        return Err(error(format!("{SOURCE}: needs at least one class")));
    }
    let n = input_shape
        .iter()
        .try_fold(samples, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| error(format!("{SOURCE}: {samples} samples of {input_shape:?} is too many values")))?;
    let mut rng = Rng::new(seed);
    let mut features = reserve(n, SOURCE)?;
    features.extend((0..n).map(|_| rng.normal() as f32));
    let mut labels = reserve(samples, SOURCE)?;
    labels.extend((0..samples).map(|_| rng.below(classes as u64) as u32));
    Dataset::new(SOURCE, input_shape.to_vec(), features, Labels::Classes(labels), Some(classes))
}

/// An epoch's walk over a data set in minibatches. Not an `Iterator`: each batch is copied into
/// buffers the caller owns and reuses, so training allocates nothing per batch:
///
/// ```
/// # use netc::runtime::{data, rng::Rng};
/// let data = data::spiral(100, 3, 0).unwrap();
/// let mut batches = data.batches(32, false).unwrap();
/// let (mut x, mut y) = (vec![0f32; batches.x_len()], vec![0f32; batches.y_len()]);
/// let mut rng = Rng::new(42);
/// for _epoch in 0..2 {
///     batches.shuffle(&mut rng);
///     while let Some(n) = batches.next_into(&mut x, &mut y) {
///         // run a train step on the first n samples of x and y
///         assert!(n == 32 || n == 300 % 32);
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    data: &'a Dataset,
    /// The sample order of the current epoch.
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    /// Position in `order` of the next batch's first sample.
    next: usize,
}

impl Batches<'_> {
    /// Start a new epoch in a fresh random order. The order depends only on the state of `rng`,
    /// so a seeded run visits the same batches.
    pub fn shuffle(&mut self, rng: &mut Rng) {
        for (i, slot) in self.order.iter_mut().enumerate() {
            *slot = i;
        }
        rng.shuffle(&mut self.order);
        self.next = 0;
    }

    /// Start a new epoch in file order.
    pub fn restart(&mut self) {
        for (i, slot) in self.order.iter_mut().enumerate() {
            *slot = i;
        }
        self.next = 0;
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches in one epoch, counting the last partial one unless it is dropped.
    pub fn per_epoch(&self) -> usize {
        let full = self.order.len() / self.batch_size;
        if self.drop_last || self.order.len().is_multiple_of(self.batch_size) {
            full
        } else {
            full + 1
        }
    }

    /// Length of a feature buffer that holds a full batch.
    pub fn x_len(&self) -> usize {
        self.batch_size * self.data.sample_size()
    }

    /// Length of a label buffer that holds a full batch.
    pub fn y_len(&self) -> usize {
        self.batch_size * self.data.labels.size()
    }

    /// The sample indices of the next batch, or `None` at the end of the epoch.
    pub fn next_indices(&mut self) -> Option<&[usize]> {
        let start = self.next;
        let left = self.order.len() - start;
        let n = left.min(self.batch_size);
        if n == 0 || (self.drop_last && n < self.batch_size) {
            return None;
        }
        self.next += n;
        Some(&self.order[start..start + n])
    }

    /// Copy the next batch into `x` and `y` (at least `x_len()` and `y_len()` long) and return
    /// how many samples it has: `batch_size`, or fewer for the last batch unless `drop_last`.
    /// `None` at the end of the epoch.
    pub fn next_into<T: From<f32>>(&mut self, x: &mut [T], y: &mut [T]) -> Option<usize> {
        let data = self.data;
        let indices = self.next_indices()?;
        data.gather(indices, x, y);
        Some(indices.len())
    }
}
