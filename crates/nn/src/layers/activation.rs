//! A standalone activation layer (Keras's `Activation`, `ReLU`, `Softmax`, ...).
//!
//! Softmax acts over the last axis. The math is in
//! [`convnet_tensor::activation`]; the layer keeps what backward needs from
//! its output (a bit mask for ReLU, else a copy).

use crate::kind::{same_shape, settings_error_of, single, LayerKind, Role};
use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::activation::{Activation, SavedOutput};
use convnet_tensor::Tensor;
use ref_cast::RefCast;
use serde::Deserialize;

/// A built activation layer.
pub struct ActivationLayer {
    activation: Activation,
    shape: Vec<usize>,
    saved: Option<SavedOutput>,
}

impl ActivationLayer {
    /// Builds the layer for any input shape.
    pub fn build(activation: Activation, input: &[usize]) -> ActivationLayer {
        ActivationLayer {
            activation,
            shape: input.to_vec(),
            saved: None,
        }
    }
}

impl Layer for ActivationLayer {
    fn input_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&mut self, x: Tensor, mode: Mode, _rng: &mut Rng) -> Tensor {
        let mut y = x;
        let row = *self.shape.last().unwrap_or(&1);
        if mode.keeps_state() {
            self.activation
                .forward_saving(y.data_mut(), row, &mut self.saved);
        } else {
            self.activation.forward(y.data_mut(), row);
        }
        y
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        let mut dx = dy;
        if self.activation == Activation::Linear {
            return dx;
        }
        let saved = self
            .saved
            .as_ref()
            .expect("Activation backward before a training forward");
        let row = *self.shape.last().unwrap_or(&1);
        self.activation.backward_saved(saved, dx.data_mut(), row);
        dx
    }
}

/// The kind of a standalone activation: its one setting.
#[derive(Deserialize, RefCast)]
#[repr(transparent)]
pub struct ActivationSpec {
    /// The function.
    pub activation: Activation,
}

impl LayerKind for ActivationSpec {
    fn name(&self) -> &'static str {
        "Activation"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        same_shape("Activation", input)
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| {
            Ok(ActivationLayer::build(self.activation, x))
        })
    }
    fn role(&self) -> Role {
        Role::Activation(self.activation)
    }
    fn activation(&self) -> Option<Activation> {
        Some(self.activation)
    }
    fn with_activation(&self, activation: Activation) -> Option<LayerSpec> {
        Some(LayerSpec::Activation { activation })
    }
    fn explain_maps(&self) -> Option<(&'static str, &'static str)> {
        Some(("activation_maps", "after activation"))
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}
