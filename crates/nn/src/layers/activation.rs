//! A standalone activation layer (Keras's `Activation`, `ReLU`, `Softmax`, ...).
//!
//! Softmax acts over the last axis. The math is in
//! [`convnet_tensor::activation`]; the layer keeps its output for backward.

use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Rng};
use convnet_tensor::activation::Activation;
use convnet_tensor::Tensor;

/// A built activation layer.
pub struct ActivationLayer {
    activation: Activation,
    shape: Vec<usize>,
    y: Option<Tensor>,
}

impl ActivationLayer {
    /// Builds the layer for any input shape.
    pub fn build(activation: Activation, input: &[usize]) -> ActivationLayer {
        ActivationLayer {
            activation,
            shape: input.to_vec(),
            y: None,
        }
    }
}

impl Layer for ActivationLayer {
    fn spec(&self) -> LayerSpec {
        LayerSpec::Activation {
            activation: self.activation,
        }
    }
    fn input_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&mut self, x: Tensor, mode: Mode, _rng: &mut Rng) -> Tensor {
        let mut y = x;
        let row = *self.shape.last().unwrap_or(&1);
        self.activation.forward(y.data_mut(), row);
        if mode == Mode::Train {
            self.y = Some(y.clone());
        }
        y
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        let y = self
            .y
            .as_ref()
            .expect("Activation backward before a training forward");
        let mut dx = dy;
        let row = *self.shape.last().unwrap_or(&1);
        self.activation.backward(y.data(), dx.data_mut(), row);
        dx
    }
}
