//! What a pass trains on: labelled images (every data source of the CLI:
//! pixels as bytes, targets built per batch for the loss) or tensors given
//! as they are (the Python API's numpy arrays: inputs and the targets the
//! loss takes, as Keras's `fit(x, y)`).
//!
//! ```text
//! Examples::Images(LabeledImages)  --source(loss, outputs)-->  LabeledSource (targets per batch)
//! Examples::Tensors(TensorExamples) ----------------------->  rows [start, end) of shared x, y
//!                                                             (Rows: a tensor, or memory lent
//!                                                             for 'a, a numpy array's buffer)
//! ```
//! Splits are views in both forms: `range` copies no pixel and no value;
//! a batch copies its rows out when it is made.

use crate::error::{Result, RunError};
use crate::targets::dataset;
use convnet_data::{LabeledImages, LabeledSource};
use convnet_nn::{Batch, DataSource, Loss};
use convnet_tensor::Tensor;
use std::sync::Arc;

/// Training or validation examples; `'a` bounds memory lent to them
/// (`'static` for everything the CLI reads).
#[derive(Clone, Debug)]
pub enum Examples<'a> {
    /// Labelled images; the targets follow the compiled loss.
    Images(LabeledImages),
    /// Inputs with their targets, used as given.
    Tensors(TensorExamples<'a>),
}

impl From<LabeledImages> for Examples<'_> {
    fn from(images: LabeledImages) -> Self {
        Examples::Images(images)
    }
}

impl<'a> From<TensorExamples<'a>> for Examples<'a> {
    fn from(t: TensorExamples<'a>) -> Self {
        Examples::Tensors(t)
    }
}

impl<'a> Examples<'a> {
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
    pub fn range(&self, start: usize, end: usize) -> Examples<'a> {
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
    pub fn source(&self, loss: Loss, outputs: usize) -> Result<ExampleSource<'a>> {
        match self {
            Examples::Images(i) => Ok(ExampleSource::Images(dataset(i, loss, outputs)?)),
            Examples::Tensors(t) => {
                t.check_targets(loss, outputs)?;
                Ok(ExampleSource::Tensors(t.clone()))
            }
        }
    }
}

/// Numbers `[N, ...]` that tensor examples read rows of: a tensor shared
/// between views, or row-major values lent for `'a` (the Python package
/// trains on a numpy array's buffer this way, without a copy).
#[derive(Clone, Debug)]
pub enum Rows<'a> {
    /// An owned tensor.
    Owned(Arc<Tensor>),
    /// Borrowed values and their shape.
    Lent {
        /// The values, `shape`'s product of them.
        data: &'a [f32],
        /// `[N, ...]`.
        shape: Arc<[usize]>,
    },
}

impl From<Tensor> for Rows<'_> {
    fn from(t: Tensor) -> Self {
        Rows::Owned(Arc::new(t))
    }
}

impl<'a> Rows<'a> {
    /// `data` as rows of `shape`; an error unless the sizes agree.
    pub fn lent(data: &'a [f32], shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(RunError::usage(format!(
                "{} values for the shape {shape:?}",
                data.len()
            )));
        }
        Ok(Rows::Lent {
            data,
            shape: shape.into(),
        })
    }

    /// `[N, ...]`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Rows::Owned(t) => t.shape(),
            Rows::Lent { shape, .. } => shape,
        }
    }

    /// All the values, row after row.
    pub fn data(&self) -> &[f32] {
        match self {
            Rows::Owned(t) => t.data(),
            Rows::Lent { data, .. } => data,
        }
    }

    /// Rows `rows` (in that order) as one tensor `[rows.len(), ...]`.
    fn gather(&self, rows: &[usize]) -> Tensor {
        let inner = &self.shape()[1..];
        let per: usize = inner.iter().product();
        let data = self.data();
        let mut out = Vec::with_capacity(rows.len() * per);
        for &r in rows {
            out.extend_from_slice(&data[r * per..(r + 1) * per]);
        }
        let mut shape = vec![rows.len()];
        shape.extend_from_slice(inner);
        Tensor::from_vec(&shape, out).expect("sizes agree")
    }
}

/// Rows `[start, end)` of inputs `x [N, ...]` and targets `y [N, ...]`
/// shared between the splits that view them.
#[derive(Clone, Debug)]
pub struct TensorExamples<'a> {
    x: Rows<'a>,
    y: Rows<'a>,
    start: usize,
    end: usize,
}

impl<'a> TensorExamples<'a> {
    /// Pairs `x` with `y` (tensors, or [`Rows`] lent); an error unless both
    /// have the same first dimension.
    pub fn new(x: impl Into<Rows<'a>>, y: impl Into<Rows<'a>>) -> Result<Self> {
        let (x, y) = (x.into(), y.into());
        let (xs, ys) = (x.shape(), y.shape());
        if xs.len() < 2 || ys.is_empty() || xs[0] != ys[0] {
            return Err(RunError::usage(format!(
                "inputs {xs:?} and targets {ys:?}: expected inputs [N, ...] and targets [N, ...] with the same N"
            )));
        }
        let end = xs[0];
        Ok(TensorExamples {
            x,
            y,
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
    pub fn range(&self, start: usize, end: usize) -> TensorExamples<'a> {
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
pub enum ExampleSource<'a> {
    /// Labelled images, targets built per batch.
    Images(LabeledSource),
    /// Tensor rows.
    Tensors(TensorExamples<'a>),
}

impl DataSource for ExampleSource<'_> {
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
                Ok((t.x.gather(&rows), t.y.gather(&rows)))
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

    fn tensors() -> TensorExamples<'static> {
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
    fn lent_rows_give_the_batches_of_a_tensor_of_the_same_values() {
        let values: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let labels = [0.0, 1.0, 2.0, 1.0];
        let lent = TensorExamples::new(
            Rows::lent(&values, &[4, 1, 1, 2]).unwrap(),
            Rows::lent(&labels, &[4]).unwrap(),
        )
        .unwrap();
        let loss = Loss::SparseCategoricalCrossentropy;
        let a = Examples::from(lent.range(1, 4)).source(loss, 3).unwrap();
        let b = Examples::from(tensors().range(1, 4))
            .source(loss, 3)
            .unwrap();
        for idx in [vec![2, 0], vec![1], vec![0, 1, 2]] {
            let ((ax, ay), (bx, by)) = (a.batch(&idx, 0).unwrap(), b.batch(&idx, 0).unwrap());
            assert_eq!(
                (ax.shape(), ax.data(), ay.data()),
                (bx.shape(), bx.data(), by.data())
            );
        }
        let (x, y) = a.batch(&[2, 0], 0).unwrap();
        assert_eq!(
            (x.data(), y.data()),
            (&[6.0, 7.0, 2.0, 3.0][..], &[1.0, 1.0][..])
        );
        assert!(Rows::lent(&values, &[3, 2]).is_err());
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
