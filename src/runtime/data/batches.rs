//! Minibatches: an epoch's walk over a data set, copying each batch of every field into
//! buffers the caller owns and reuses, so training allocates nothing per batch.

use super::{gather_field, Dataset};
use crate::runtime::rng::Rng;

/// One minibatch: `n` samples of each field, by name, packed from the start of each buffer
/// (a buffer holds a full batch; only its first `n` samples are this batch's).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub n: usize,
    pub fields: Vec<(String, Vec<f32>)>,
}

impl Batch {
    /// Buffers for every field of `data`, each long enough for `batch_size` samples.
    pub fn for_data(data: &Dataset, batch_size: usize) -> Batch {
        let fields = data.fields().iter().map(|f| (f.name().to_string(), vec![0.0; batch_size * f.size()])).collect();
        Batch { n: 0, fields }
    }

    /// The buffer of the field `name`.
    pub fn field(&self, name: &str) -> Option<&[f32]> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Copy the samples `indices` of every field of `data` into the buffers.
    pub fn fill(&mut self, data: &Dataset, indices: &[usize]) {
        for ((_, buf), field) in self.fields.iter_mut().zip(data.fields()) {
            gather_field(field, indices, buf);
        }
        self.n = indices.len();
    }
}

/// An epoch's walk over a data set in minibatches. Not an `Iterator`: each batch is copied into
/// buffers the caller owns and reuses:
///
/// ```
/// # use netc::runtime::{data, rng::Rng};
/// let data = data::spiral(100, 3, 0).unwrap();
/// let mut batches = data.batches(32, false).unwrap();
/// let mut batch = data::Batch::for_data(&data, 32);
/// let mut rng = Rng::new(42);
/// for _epoch in 0..2 {
///     batches.shuffle(&mut rng);
///     while batches.next_batch(&mut batch) {
///         // run a train step on the first batch.n samples of each field
///         assert!(batch.n == 32 || batch.n == 300 % 32);
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

impl<'a> Batches<'a> {
    pub(super) fn new(data: &'a Dataset, batch_size: usize, drop_last: bool) -> Batches<'a> {
        Batches { data, order: (0..data.len()).collect(), batch_size, drop_last, next: 0 }
    }

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
        self.batch_size * self.data.field(super::LABELS).map_or(1, |f| f.size())
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

    /// Copy the next batch of every field into `batch` (made by `Batch::for_data` with this
    /// batch size); false at the end of the epoch.
    pub fn next_batch(&mut self, batch: &mut Batch) -> bool {
        self.next_share(batch, 0, 1).is_some()
    }

    /// Copy rank `rank`'s share of the next batch into `batch`: of a batch of b samples, the
    /// ones at positions [rank·b/ranks, (rank+1)·b/ranks), when `ranks` processes split each
    /// batch (data parallelism). Returns b; `None` at the end of the epoch.
    pub fn next_share(&mut self, batch: &mut Batch, rank: usize, ranks: usize) -> Option<usize> {
        let data = self.data;
        let indices = self.next_indices()?;
        let b = indices.len();
        batch.fill(data, &indices[rank * b / ranks..(rank + 1) * b / ranks]);
        Some(b)
    }

    /// Copy the next batch's features and labels into `x` and `y` (at least `x_len()` and
    /// `y_len()` long) and return how many samples it has: `batch_size`, or fewer for the last
    /// batch unless `drop_last`. `None` at the end of the epoch.
    pub fn next_into<T: From<f32>>(&mut self, x: &mut [T], y: &mut [T]) -> Option<usize> {
        let data = self.data;
        let indices = self.next_indices()?;
        data.gather(indices, x, y);
        Some(indices.len())
    }
}
