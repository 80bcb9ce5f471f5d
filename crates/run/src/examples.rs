//! What a pass trains on: labelled images (every data source of the CLI:
//! pixels as bytes, targets built per batch for the loss) or tensors given
//! as they are (the Python API's numpy arrays: inputs and the targets the
//! loss takes, as Keras's `fit(x, y)`).
//!
//! ```text
//! Examples::Images(LabeledImages)  --source(loss, outputs)-->  LabeledSource (targets per batch)
//! Examples::Tensors(TensorExamples) ----------------------->  rows [start, end) of shared x, y
//! ```
//! Splits are views in both forms: `range` copies no pixel and no value.

use crate::error::{Result, RunError};
use crate::targets::dataset;
use convnet_data::{LabeledImages, LabeledSource};
use convnet_nn::{Batch, DataSource, Loss};
use convnet_tensor::Tensor;
use std::sync::Arc;

/// Training or validation examples.
#[derive(Clone, Debug)]
pub enum Examples {
    /// Labelled images; the targets follow the compiled loss.
    Images(LabeledImages),
    /// Inputs with their targets, used as given.
    Tensors(TensorExamples),
}

impl From<LabeledImages> for Examples {
    fn from(images: LabeledImages) -> Self {
        Examples::Images(images)
    }
}

impl From<TensorExamples> for Examples {
    fn from(t: TensorExamples) -> Self {
        Examples::Tensors(t)
    }
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Examples::Images(i) => i.len(),
            Examples::Tensors(t) => t.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Examples `start..end` (a view).
    pub fn range(&self, start: usize, end: usize) -> Examples {
        match self {
            Examples::Images(i) => Examples::Images(i.range(start, end)),
            Examples::Tensors(t) => Examples::Tensors(t.range(start, end)),
        }
    }

    /// The labelled images, when these are images.
    pub fn images(&self) -> Option<&LabeledImages> {
        match self {
            Examples::Images(i) => Some(i),
            Examples::Tensors(_) => None,
        }
    }

    /// A source of batches whose targets have the form `loss` expects for
    /// a model with `outputs` outputs; an error names a label or a target
    /// shape the model cannot take.
    pub fn source(&self, loss: Loss, outputs: usize) -> Result<ExampleSource> {
        match self {
            Examples::Images(i) => Ok(ExampleSource::Images(dataset(i, loss, outputs)?)),
            Examples::Tensors(t) => {
                t.check_targets(loss, outputs)?;
                Ok(ExampleSource::Tensors(t.clone()))
            }
        }
    }
}

/// Rows `[start, end)` of inputs `x [N, ...]` and targets `y [N, ...]`
/// shared between the splits that view them.
#[derive(Clone, Debug)]
pub struct TensorExamples {
    x: Arc<Tensor>,
    y: Arc<Tensor>,
    start: usize,
    end: usize,
}

impl TensorExamples {
    /// Pairs `x` with `y`; an error unless both have the same first dimension.
    pub fn new(x: Tensor, y: Tensor) -> Result<Self> {
        if x.shape().len() < 2 || y.shape().is_empty() || x.batch() != y.batch() {
            return Err(RunError::usage(format!(
                "inputs {:?} and targets {:?}: expected inputs [N, ...] and targets [N, ...] with the same N",
                x.shape(),
                y.shape()
            )));
        }
        let end = x.batch();
        Ok(TensorExamples {
            x: Arc::new(x),
            y: Arc::new(y),
            start: 0,
            end,
        })
    }

    /// Number of rows in view.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when no row is in view.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `start..end` of this view.
    pub fn range(&self, start: usize, end: usize) -> TensorExamples {
        assert!(
            start <= end && end <= self.len(),
            "range {start}..{end} of {}",
            self.len()
        );
        TensorExamples {
            x: self.x.clone(),
            y: self.y.clone(),
            start: self.start + start,
            end: self.start + end,
        }
    }

    /// Targets per row: one value (a class index, or a 0/1 label for one
    /// output) for sparse losses and single outputs, else `outputs` values.
    fn check_targets(&self, loss: Loss, outputs: usize) -> Result<()> {
        let per_row: usize = self.y.shape()[1..].iter().product();
        let want = if outputs == 1 || loss.is_sparse() {
            1
        } else {
            outputs
        };
        if per_row != want {
            return Err(RunError::usage(format!(
                "targets of shape {:?} for a model with {outputs} outputs and loss {}: expected {} value(s) per sample",
                self.y.shape(),
                loss.name(),
                want
            )));
        }
        if loss.is_sparse() {
            let rows = &self.y.data()[self.start..self.end];
            if let Some(bad) = rows
                .iter()
                .find(|&&l| l < 0.0 || l.fract() != 0.0 || l as usize >= outputs)
            {
                return Err(RunError::usage(format!(
                    "target {bad} for a sparse loss: expected class indices 0..{outputs}"
                )));
            }
        }
        Ok(())
    }
}

/// The batches of [`Examples`], as `fit` reads them.
#[derive(Clone, Debug)]
pub enum ExampleSource {
    /// Labelled images, targets built per batch.
    Images(LabeledSource),
    /// Tensor rows.
    Tensors(TensorExamples),
}

impl DataSource for ExampleSource {
    fn len(&self) -> usize {
        match self {
            ExampleSource::Images(s) => s.len(),
            ExampleSource::Tensors(t) => t.len(),
        }
    }

    fn input_shape(&self) -> Vec<usize> {
        match self {
            ExampleSource::Images(s) => s.input_shape(),
            ExampleSource::Tensors(t) => t.x.shape()[1..].to_vec(),
        }
    }

    fn batch(&self, indices: &[usize], seed: u64) -> convnet_nn::Result<Batch> {
        match self {
            ExampleSource::Images(s) => s.batch(indices, seed),
            ExampleSource::Tensors(t) => {
                let rows: Vec<usize> = indices.iter().map(|&i| t.start + i).collect();
                Ok((t.x.gather_batch(&rows), t.y.gather_batch(&rows)))
            }
        }
    }

    fn batches<'a>(
        &'a self,
        order: Vec<usize>,
        batch_size: usize,
        seed: u64,
    ) -> Box<dyn Iterator<Item = convnet_nn::Result<Batch>> + 'a> {
        match self {
            // The images' loader prefetches and decodes in parallel.
            ExampleSource::Images(s) => s.batches(order, batch_size, seed),
            ExampleSource::Tensors(_) => {
                let chunks: Vec<Vec<usize>> = order
                    .chunks(batch_size.max(1))
                    .map(<[usize]>::to_vec)
                    .collect();
                Box::new(
                    chunks
                        .into_iter()
                        .enumerate()
                        .map(move |(i, idx)| self.batch(&idx, seed.wrapping_add(i as u64))),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> TensorExamples {
        let x = Tensor::from_vec(&[4, 1, 1, 2], (0..8).map(|v| v as f32).collect()).unwrap();
        let y = Tensor::from_vec(&[4], vec![0.0, 1.0, 2.0, 1.0]).unwrap();
        TensorExamples::new(x, y).unwrap()
    }

    #[test]
    fn tensor_ranges_are_views_whose_batches_read_their_own_rows() {
        let t = tensors().range(1, 4).range(1, 3);
        assert_eq!(t.len(), 2);
        let src = Examples::from(t)
            .source(Loss::SparseCategoricalCrossentropy, 3)
            .unwrap();
        let (x, y) = src.batch(&[1, 0], 0).unwrap();
        assert_eq!(x.data(), &[6.0, 7.0, 4.0, 5.0]);
        assert_eq!(y.data(), &[1.0, 2.0]);
        assert_eq!(src.input_shape(), vec![1, 1, 2]);
    }

    #[test]
    fn tensor_targets_must_fit_the_loss_and_the_outputs() {
        let e = Examples::from(tensors());
        assert!(e.source(Loss::SparseCategoricalCrossentropy, 3).is_ok());
        let err = e
            .source(Loss::SparseCategoricalCrossentropy, 2)
            .unwrap_err();
        assert!(err.to_string().contains("class indices 0..2"), "{err}");
        let err = e.source(Loss::CategoricalCrossentropy, 3).unwrap_err();
        assert!(err.to_string().contains("expected 3 value(s)"), "{err}");
        let x = Tensor::zeros(&[3, 2]);
        assert!(TensorExamples::new(x, Tensor::zeros(&[4])).is_err());
    }
}
