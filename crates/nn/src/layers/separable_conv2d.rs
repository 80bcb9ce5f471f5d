//! SeparableConv2D (Keras's layer; Xception's and MobileNet's factorized
//! convolution): a depthwise convolution without bias or activation, then a
//! 1x1 convolution that mixes the channels, with the bias and activation.
//!
//! ```text
//! x [N, H, W, C] -> m [N, OH, OW, C*M] -> y [N, OH, OW, F]
//! m = depthwise(x; depthwise_kernel [KH, KW, C, M])
//! y = act(m . pointwise_kernel [1, 1, C*M, F] + bias [F])
//! backward: dm = pointwise's backward of dy, dx = depthwise's backward of dm
//! ```
//!
//! Parameters `KH*KW*C*M + C*M*F + F`, named as Keras names them. It runs
//! as the two layers it is made of (each with its own kernels); the ONNX
//! export writes it as those two `Conv`s.

use crate::kind::{settings_error_of, single, LayerKind, Role, TokenContext, Window};
use crate::layer::{Layer, Mode, Param};
use crate::layers::conv2d::{parse_conv, Conv2d};
use crate::layers::depthwise_conv2d::DepthwiseConv2d;
use crate::layers::pooling::image_shape;
use crate::spec::{checked_count, checked_sum};
use crate::{Conv2dConfig, DepthwiseConv2dConfig, Initializer, LayerSpec, Result, Rng};
use convnet_tensor::activation::Activation;
use convnet_tensor::{Padding, Tensor};
use serde::{Deserialize, Serialize};

fn one() -> usize {
    1
}
fn one_one() -> [usize; 2] {
    [1, 1]
}
fn yes() -> bool {
    true
}
fn zeros() -> Initializer {
    Initializer::Zeros
}

/// Configuration of a SeparableConv2D layer (Keras's arguments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeparableConv2dConfig {
    /// Output channels of the pointwise convolution.
    pub filters: usize,
    /// Depthwise kernel `[height, width]`.
    pub kernel_size: [usize; 2],
    /// Stride of the depthwise convolution `[vertical, horizontal]`.
    #[serde(default = "one_one")]
    pub strides: [usize; 2],
    /// Dilation of the depthwise convolution.
    #[serde(default = "one_one")]
    pub dilation_rate: [usize; 2],
    /// `valid` or `same` (the depthwise convolution's).
    #[serde(default)]
    pub padding: Padding,
    /// Depthwise outputs per input channel.
    #[serde(default = "one")]
    pub depth_multiplier: usize,
    /// Activation after the pointwise convolution's bias.
    #[serde(default)]
    pub activation: Activation,
    /// Whether the pointwise convolution has a bias.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Depthwise kernel initializer.
    #[serde(default)]
    pub depthwise_initializer: Initializer,
    /// Pointwise kernel initializer.
    #[serde(default)]
    pub pointwise_initializer: Initializer,
    /// Bias initializer.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl SeparableConv2dConfig {
    /// `filters` outputs, a square `kernel x kernel` depthwise window,
    /// multiplier 1, stride 1, `valid`, linear, with bias: Keras's defaults.
    pub fn new(filters: usize, kernel: usize) -> Self {
        SeparableConv2dConfig {
            filters,
            kernel_size: [kernel, kernel],
            strides: [1, 1],
            dilation_rate: [1, 1],
            padding: Padding::Valid,
            depth_multiplier: 1,
            activation: Activation::Linear,
            use_bias: true,
            depthwise_initializer: Initializer::GlorotUniform,
            pointwise_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
        }
    }
    /// The same stride on both axes.
    pub fn with_stride(mut self, s: usize) -> Self {
        self.strides = [s, s];
        self
    }
    /// Padding mode.
    pub fn with_padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    /// Depthwise outputs per input channel.
    pub fn with_depth_multiplier(mut self, m: usize) -> Self {
        self.depth_multiplier = m;
        self
    }
    /// Activation after the bias.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }

    /// Its depthwise part: no bias, no activation.
    pub fn depthwise(&self) -> DepthwiseConv2dConfig {
        DepthwiseConv2dConfig {
            kernel_size: self.kernel_size,
            strides: self.strides,
            dilation_rate: self.dilation_rate,
            padding: self.padding,
            depth_multiplier: self.depth_multiplier,
            activation: Activation::Linear,
            use_bias: false,
            depthwise_initializer: self.depthwise_initializer,
            bias_initializer: Initializer::Zeros,
        }
    }

    /// Its pointwise part: a 1x1 convolution with the bias and activation.
    pub fn pointwise(&self) -> Conv2dConfig {
        Conv2dConfig::new(self.filters, 1)
            .with_activation(self.activation)
            .with_bias(self.use_bias)
            .with_kernel_initializer(self.pointwise_initializer)
            .with_bias_initializer(self.bias_initializer)
    }

    /// The shape between the two parts, `[OH, OW, C*M]`.
    fn middle(&self, input: &[usize]) -> Result<Vec<usize>> {
        LayerKind::output_shape(&self.depthwise(), input)
    }

    /// Builds the layer: depthwise kernel first, then the pointwise kernel
    /// and bias, drawn from `rng` in that order.
    pub fn build(&self, input: &[usize], rng: &mut Rng) -> Result<SeparableConv2d> {
        let depthwise = self.depthwise().build(input, rng)?;
        let mut pointwise = self.pointwise().build(&self.middle(input)?, rng)?;
        pointwise.params_mut()[0].name = "pointwise_kernel";
        Ok(SeparableConv2d {
            depthwise,
            pointwise,
        })
    }
}

/// A built SeparableConv2D layer: its two convolutions.
pub struct SeparableConv2d {
    depthwise: DepthwiseConv2d,
    pointwise: Conv2d,
}

impl Layer for SeparableConv2d {
    fn input_shape(&self) -> &[usize] {
        self.depthwise.input_shape()
    }
    fn output_shape(&self) -> &[usize] {
        self.pointwise.output_shape()
    }
    fn forward(&mut self, x: Tensor, mode: Mode, rng: &mut Rng) -> Tensor {
        let m = self.depthwise.forward(x, mode, rng);
        self.pointwise.forward(m, mode, rng)
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        let dm = self.pointwise.backward(dy);
        self.depthwise.backward(dm)
    }
    fn backward_params(&mut self, dy: Tensor) {
        let dm = self.pointwise.backward(dy);
        self.depthwise.backward_params(dm);
    }
    /// The pointwise part's products (the depthwise part stays fp32).
    fn set_precision(&mut self, precision: convnet_tensor::Precision) {
        self.pointwise.set_precision(precision);
    }
    /// `depthwise_kernel`, `pointwise_kernel`, `bias` (Keras's order).
    fn params(&self) -> Vec<&Param> {
        let mut p = self.depthwise.params();
        p.extend(self.pointwise.params());
        p
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut p = self.depthwise.params_mut();
        p.extend(self.pointwise.params_mut());
        p
    }
}

impl LayerKind for SeparableConv2dConfig {
    fn name(&self) -> &'static str {
        "SeparableConv2D"
    }
    /// `[OH, OW, F]` for an input `[H, W, C]`.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.pointwise().output_shape(&self.middle(input)?)
    }
    /// `KH*KW*C*M + C*M*F` weights, plus `F` biases.
    fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let [_, _, ch] = image_shape("SeparableConv2D", input)?;
        let (d, _) = self.depthwise().param_counts(input)?;
        let p = checked_count(&[ch, self.depth_multiplier, self.filters])?;
        let b = if self.use_bias { self.filters } else { 0 };
        Ok((checked_sum(checked_sum(d, p)?, b)?, 0))
    }
    fn build(&self, inputs: &[&[usize]], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| SeparableConv2dConfig::build(self, x, rng))
    }
    fn role(&self) -> Role {
        Role::Filters
    }
    fn window(&self) -> Option<Window> {
        self.depthwise().window()
    }
    fn activation(&self) -> Option<Activation> {
        Some(self.activation)
    }
    fn with_activation(&self, activation: Activation) -> Option<LayerSpec> {
        Some(LayerSpec::SeparableConv2D(
            self.clone().with_activation(activation),
        ))
    }
    fn explain_maps(&self) -> Option<(&'static str, &'static str)> {
        Some(match self.activation {
            Activation::Linear => ("separable_maps", "linear (no activation)"),
            _ => ("separable_maps", "after activation"),
        })
    }
    /// The depthwise window sums, then `C*M` products per output value.
    fn multiply_adds(&self, input: &[usize], output: &[usize]) -> u128 {
        let Ok(middle) = self.middle(input) else {
            return 0;
        };
        self.depthwise().multiply_adds(input, &middle)
            + self.pointwise().multiply_adds(&middle, output)
    }
    /// Between the two: the depthwise output `[OH, OW, C*M]`.
    fn scratch_elements(&self, input: &[usize], _output: &[usize]) -> u128 {
        self.middle(input)
            .map(|m| m.iter().map(|&d| d as u128).product())
            .unwrap_or(0)
    }
    /// `NSCk[xm][Ss](v|s)` (the conv token with `SC` for `C`); `None` for
    /// settings it cannot say (a multiplier, dilation, no bias, ...).
    fn notation(&self) -> Option<String> {
        if self.depth_multiplier != 1 {
            return None;
        }
        let mut conv = self.pointwise();
        conv.kernel_size = self.kernel_size;
        conv.strides = self.strides;
        conv.dilation_rate = self.dilation_rate;
        conv.padding = self.padding;
        let t = LayerKind::notation(&conv)?;
        Some(t.replacen('C', "SC", 1))
    }
    /// `NSCk[xm][Ss][v|s]`: any token with `SC`.
    fn parse_token(
        token: &str,
        ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        if !token.contains("SC") {
            return None;
        }
        let conv = parse_conv(
            &token.replacen("SC", "C", 1),
            ctx.conv_padding,
            ctx.activation,
        );
        Some(
            conv.map(|c| {
                let mut s = SeparableConv2dConfig::new(c.filters, c.kernel_size[0]);
                s.kernel_size = c.kernel_size;
                s.strides = c.strides;
                s.padding = c.padding;
                s.activation = c.activation;
                LayerSpec::SeparableConv2D(s)
            })
            .ok_or_else(|| {
                format!(
                    "'{token}': a separable conv is NSCk[xm][Ss][v|s], e.g. 64SC3, 128SC3S2, 32SC5v"
                )
            }),
        )
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shapes_parameters_and_names_are_keras_s() {
        // Keras 3: SeparableConv2D(16, 3, depth_multiplier=2, padding="same")
        // on 10x12x4 -> (10, 12, 16); 3*3*4*2 + 4*2*16 + 16 = 216 parameters.
        let c = SeparableConv2dConfig::new(16, 3)
            .with_depth_multiplier(2)
            .with_padding(Padding::Same);
        assert_eq!(
            LayerKind::output_shape(&c, &[10, 12, 4]).unwrap(),
            [10, 12, 16]
        );
        assert_eq!(c.param_counts(&[10, 12, 4]).unwrap(), (216, 0));
        let layer = c.build(&[10, 12, 4], &mut Rng::seed_from_u64(1)).unwrap();
        let named: Vec<_> = layer
            .params()
            .iter()
            .map(|p| (p.name, p.value.shape().to_vec()))
            .collect();
        assert_eq!(
            named,
            [
                ("depthwise_kernel", vec![3, 3, 4, 2]),
                ("pointwise_kernel", vec![1, 1, 8, 16]),
                ("bias", vec![16]),
            ]
        );
        let s2 = SeparableConv2dConfig::new(5, 3).with_stride(2);
        assert_eq!(LayerKind::output_shape(&s2, &[9, 9, 3]).unwrap(), [4, 4, 5]);
    }

    #[test]
    fn notation_round_trips() {
        let ctx = TokenContext {
            conv_padding: Padding::Same,
            pool_padding: Padding::Valid,
            activation: Activation::Relu,
            output: false,
        };
        for token in ["64SC3s", "32SC5x3S2v"] {
            let spec = SeparableConv2dConfig::parse_token(token, &ctx)
                .unwrap()
                .unwrap();
            assert_eq!(spec.layer_kind().notation().unwrap(), token);
        }
        for bad in ["SC3", "64SC", "xSC3", "64SC3S"] {
            let e = SeparableConv2dConfig::parse_token(bad, &ctx).unwrap();
            assert!(e.unwrap_err().contains("NSCk"), "{bad}");
        }
        assert!(SeparableConv2dConfig::parse_token("32C3", &ctx).is_none());
    }
}
