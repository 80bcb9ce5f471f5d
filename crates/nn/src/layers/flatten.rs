//! Flatten: `[N, H, W, C] -> [N, H*W*C]`.
//!
//! Since tensors are NHWC, the flattened order is Keras's (channels last),
//! so Dense kernels trained in Keras after a Flatten line up unchanged.

use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Rng};
use convnet_tensor::Tensor;

/// A built Flatten layer.
pub struct Flatten {
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
}

impl Flatten {
    /// Builds the layer for any input shape.
    pub fn build(input: &[usize]) -> Flatten {
        Flatten {
            input_shape: input.to_vec(),
            output_shape: vec![input.iter().product()],
        }
    }
}

impl Layer for Flatten {
    fn spec(&self) -> LayerSpec {
        LayerSpec::Flatten
    }
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    fn forward(&mut self, x: Tensor, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let n = x.batch();
        x.reshape(&[n, self.output_shape[0]]).expect("same length")
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        let mut shape = vec![dy.batch()];
        shape.extend_from_slice(&self.input_shape);
        dy.reshape(&shape).expect("same length")
    }
}
