//! Flatten: `[N, H, W, C] -> [N, H*W*C]`.
//!
//! Since tensors are NHWC, the flattened order is Keras's (channels last),
//! so Dense kernels trained in Keras after a Flatten line up unchanged.

use crate::kind::{single, LayerKind, TokenContext};
use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Result, Rng};
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

/// Flatten's kind (no settings).
pub struct FlattenSpec;

impl LayerKind for FlattenSpec {
    fn name(&self) -> &'static str {
        "Flatten"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![convnet_tensor::shape::checked_product(
            input, "Flatten",
        )?])
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| Ok(Flatten::build(x)))
    }
    fn notation(&self) -> Option<String> {
        Some("F".into())
    }
    fn parse_token(
        token: &str,
        _ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        (token == "F").then_some(Ok(LayerSpec::Flatten))
    }
    fn settings_error(_fields: &serde_json::Value) -> Option<String> {
        None
    }
}
