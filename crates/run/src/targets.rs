//! Targets: labelled images as a training source in the form a loss expects.
//!
//! ```text
//! outputs == 1             -> Binary   (label 0/1 as one float)
//! sparse loss (K outputs)  -> Sparse   (the class index; must be < K)
//! otherwise   (K outputs)  -> OneHot(K)
//! ```

use crate::error::Result;
use convnet_data::{LabeledImages, LabeledSource, Targets};
use convnet_nn::{Loss, Model};

/// `split` as a training source whose targets have the form `loss`
/// expects for a model with `outputs` outputs; an error names a label the
/// model cannot output. Nothing is copied: batches are converted on demand.
pub fn dataset(split: &LabeledImages, loss: Loss, outputs: usize) -> Result<LabeledSource> {
    let t = if outputs == 1 {
        Targets::Binary
    } else if loss.is_sparse() {
        // Sparse targets still must name one of the outputs.
        LabeledSource::new(split.clone(), Targets::OneHot(outputs))?;
        Targets::Sparse
    } else {
        Targets::OneHot(outputs)
    };
    Ok(LabeledSource::new(split.clone(), t)?)
}

/// The number of outputs of `model` (its output shape's product).
pub fn outputs_of(model: &Model) -> usize {
    model.output_shape().iter().product()
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_tensor::Tensor;

    #[test]
    fn targets_follow_the_loss_and_refuse_labels_the_model_cannot_output() {
        let x = Tensor::zeros(&[3, 2, 2, 1]);
        let y = Tensor::from_vec(&[3], vec![0.0, 2.0, 1.0]).unwrap();
        let split = LabeledImages::from_tensor(&x, &y).unwrap();
        let sparse = dataset(&split, Loss::SparseCategoricalCrossentropy, 3).unwrap();
        assert_eq!(sparse.targets(), Targets::Sparse);
        let dense = dataset(&split, Loss::CategoricalCrossentropy, 3).unwrap();
        assert_eq!(dense.targets(), Targets::OneHot(3));
        assert!(dataset(&split, Loss::SparseCategoricalCrossentropy, 2).is_err());
        assert!(dataset(&split, Loss::CategoricalCrossentropy, 2).is_err());
    }
}
