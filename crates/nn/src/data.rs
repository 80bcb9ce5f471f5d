//! `DataSource`: where `fit` and `evaluate` get their batches from.
//!
//! In-memory tensors implement it directly ([`TensorData`]); the data crate
//! adds image folders and an augmenting, prefetching loader. A source hands
//! out batches for an explicit list of sample indices and a seed, so the
//! trainer alone decides the order and all randomness flows from its RNG.

use crate::error::config_err;
use crate::Result;
use convnet_tensor::Tensor;

/// A batch: inputs `[B, ...]` and targets `[B, ...]`.
pub type Batch = (Tensor, Tensor);

/// A finite, indexable set of `(input, target)` samples.
pub trait DataSource: Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Per-sample input shape.
    fn input_shape(&self) -> Vec<usize>;
    /// The samples at `indices`; `seed` drives any random augmentation.
    fn batch(&self, indices: &[usize], seed: u64) -> Result<Batch>;
    /// All batches of one epoch, in `order`, `batch_size` at a time. The
    /// default builds them one by one on demand; loaders may prefetch.
    fn batches<'a>(
        &'a self,
        order: Vec<usize>,
        batch_size: usize,
        seed: u64,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'a> {
        let bs = batch_size.max(1);
        let chunks: Vec<Vec<usize>> = order.chunks(bs).map(|c| c.to_vec()).collect();
        Box::new(
            chunks
                .into_iter()
                .enumerate()
                .map(move |(i, idx)| self.batch(&idx, seed.wrapping_add(i as u64))),
        )
    }
}

/// Inputs and targets held in memory.
#[derive(Clone, Debug)]
pub struct TensorData {
    x: Tensor,
    y: Tensor,
}

impl TensorData {
    /// Pairs inputs `[N, ...]` with targets `[N, ...]`.
    pub fn new(x: Tensor, y: Tensor) -> Result<Self> {
        if x.batch() != y.batch() || x.shape().is_empty() || y.shape().is_empty() {
            return Err(config_err(
                "data",
                format!(
                    "inputs {:?} and targets {:?} must have the same number of samples",
                    x.shape(),
                    y.shape()
                ),
            ));
        }
        Ok(TensorData { x, y })
    }
    /// The inputs.
    pub fn x(&self) -> &Tensor {
        &self.x
    }
    /// The targets.
    pub fn y(&self) -> &Tensor {
        &self.y
    }
}

impl DataSource for TensorData {
    fn len(&self) -> usize {
        self.x.batch()
    }
    fn input_shape(&self) -> Vec<usize> {
        self.x.shape()[1..].to_vec()
    }
    fn batch(&self, indices: &[usize], _seed: u64) -> Result<Batch> {
        Ok((self.x.gather_batch(indices), self.y.gather_batch(indices)))
    }
}

/// A view of some samples of another source (e.g. a validation split).
pub struct Subset<'a> {
    inner: &'a dyn DataSource,
    indices: Vec<usize>,
}

impl<'a> Subset<'a> {
    /// The samples `indices` of `inner`.
    pub fn new(inner: &'a dyn DataSource, indices: Vec<usize>) -> Self {
        Subset { inner, indices }
    }
}

impl DataSource for Subset<'_> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        self.inner.input_shape()
    }
    fn batch(&self, indices: &[usize], seed: u64) -> Result<Batch> {
        let mapped: Vec<usize> = indices.iter().map(|&i| self.indices[i]).collect();
        self.inner.batch(&mapped, seed)
    }
    fn batches<'b>(
        &'b self,
        order: Vec<usize>,
        batch_size: usize,
        seed: u64,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'b> {
        let mapped: Vec<usize> = order.iter().map(|&i| self.indices[i]).collect();
        self.inner.batches(mapped, batch_size, seed)
    }
}
