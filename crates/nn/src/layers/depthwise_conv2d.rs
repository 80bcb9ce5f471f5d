//! DepthwiseConv2D: each input channel convolved with its own
//! `depth_multiplier` filters (Keras's layer; PyTorch's `Conv2d` with
//! `groups = C`), the building block of MobileNet and EfficientNet.
//!
//! ```text
//! x [N, H, W, C] -> y [N, OH, OW, C*M],  depthwise_kernel [KH, KW, C, M], bias [C*M]
//! y[.., c*M + m] = act(sum_{ky,kx} x[.., c] * k[ky, kx, c, m] + bias[c*M + m])
//! ```
//!
//! Output sizes come from [`convnet_tensor::shape`]; the kernels are in
//! [`convnet_tensor::depthwise`]. Parameters: `KH*KW*C*M + C*M`, as in Keras.

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind, Role, TokenContext, Window};
use crate::layer::{batched, Layer, Mode, Param};
use crate::layers::pooling::image_shape;
use crate::notation::{parse_kernel, parse_usize, split_padding, split_stride};
use crate::spec::{checked_count, checked_sum};
use crate::{Initializer, LayerSpec, Result, Rng};
use convnet_tensor::activation::{Activation, SavedOutput};
use convnet_tensor::depthwise::{
    depthwise_backward_input, depthwise_backward_weight, depthwise_forward, DepthwiseGeometry,
};
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

/// Configuration of a DepthwiseConv2D layer (Keras's arguments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthwiseConv2dConfig {
    /// Kernel `[height, width]`.
    pub kernel_size: [usize; 2],
    /// Stride `[vertical, horizontal]`.
    #[serde(default = "one_one")]
    pub strides: [usize; 2],
    /// Dilation `[vertical, horizontal]`.
    #[serde(default = "one_one")]
    pub dilation_rate: [usize; 2],
    /// `valid` or `same`.
    #[serde(default)]
    pub padding: Padding,
    /// Output channels per input channel.
    #[serde(default = "one")]
    pub depth_multiplier: usize,
    /// Activation applied after the bias.
    #[serde(default)]
    pub activation: Activation,
    /// Whether the layer has a bias.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Kernel initializer (Keras's fans of a `[KH, KW, C, M]` kernel).
    #[serde(default)]
    pub depthwise_initializer: Initializer,
    /// Bias initializer.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
}

impl DepthwiseConv2dConfig {
    /// A square `kernel x kernel` window, multiplier 1, stride 1, `valid`,
    /// linear, with bias: Keras's defaults.
    pub fn new(kernel: usize) -> Self {
        DepthwiseConv2dConfig {
            kernel_size: [kernel, kernel],
            strides: [1, 1],
            dilation_rate: [1, 1],
            padding: Padding::Valid,
            depth_multiplier: 1,
            activation: Activation::Linear,
            use_bias: true,
            depthwise_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
        }
    }
    /// A rectangular kernel.
    pub fn with_kernel(mut self, h: usize, w: usize) -> Self {
        self.kernel_size = [h, w];
        self
    }
    /// The same stride on both axes.
    pub fn with_stride(mut self, s: usize) -> Self {
        self.strides = [s, s];
        self
    }
    /// The same dilation on both axes.
    pub fn with_dilation(mut self, d: usize) -> Self {
        self.dilation_rate = [d, d];
        self
    }
    /// Padding mode.
    pub fn with_padding(mut self, p: Padding) -> Self {
        self.padding = p;
        self
    }
    /// Output channels per input channel.
    pub fn with_depth_multiplier(mut self, m: usize) -> Self {
        self.depth_multiplier = m;
        self
    }
    /// Activation after the bias.
    pub fn with_activation(mut self, a: Activation) -> Self {
        self.activation = a;
        self
    }
    /// With or without bias.
    pub fn with_bias(mut self, b: bool) -> Self {
        self.use_bias = b;
        self
    }

    /// The geometry for an input `[H, W, C]` and batch `n`.
    pub fn geometry(&self, input: &[usize], n: usize) -> Result<DepthwiseGeometry> {
        let [h, w, c] = image_shape("DepthwiseConv2D", input)?;
        if self.depth_multiplier == 0 {
            return Err(config_err(
                "DepthwiseConv2D",
                "depth_multiplier must be at least 1, found 0",
            ));
        }
        Ok(DepthwiseGeometry::new(
            [n, h, w, c],
            self.depth_multiplier,
            (self.kernel_size[0], self.kernel_size[1]),
            (self.strides[0], self.strides[1]),
            (self.dilation_rate[0], self.dilation_rate[1]),
            self.padding,
        )?)
    }

    /// Builds the layer with initialized parameters.
    pub fn build(&self, input: &[usize], rng: &mut Rng) -> Result<DepthwiseConv2d> {
        let g = self.geometry(input, 1)?.conv;
        let (k, m) = (g.kh * g.kw, self.depth_multiplier);
        let mut kernel = Tensor::zeros(&[g.kh, g.kw, g.c, m]);
        self.depthwise_initializer
            .fill(kernel.data_mut(), k * g.c, k * m, rng);
        let bias = self.use_bias.then(|| {
            let mut b = Tensor::zeros(&[g.f]);
            self.bias_initializer
                .fill(b.data_mut(), k * g.c, k * m, rng);
            Param::new("bias", b)
        });
        Ok(DepthwiseConv2d {
            config: self.clone(),
            input_shape: input.to_vec(),
            output_shape: vec![g.oh, g.ow, g.f],
            kernel: Param::new("depthwise_kernel", kernel),
            bias,
            x: None,
            saved: None,
        })
    }
}

/// A built DepthwiseConv2D layer.
pub struct DepthwiseConv2d {
    config: DepthwiseConv2dConfig,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    kernel: Param,
    bias: Option<Param>,
    /// Input of the last training forward.
    x: Option<Tensor>,
    /// What the activation's backward needs from the last training output.
    saved: Option<SavedOutput>,
}

impl DepthwiseConv2d {
    fn geometry(&self, n: usize) -> DepthwiseGeometry {
        self.config
            .geometry(&self.input_shape, n)
            .expect("validated at build")
    }

    /// Turns `dy` into the pre-activation gradient `dz` (in place) and adds
    /// the kernel and bias gradients; returns the cached input and `dz`.
    fn weight_gradients(&mut self, dy: Tensor) -> (Tensor, Tensor) {
        let x = self
            .x
            .take()
            .expect("DepthwiseConv2D backward before a training forward");
        let g = self.geometry(x.batch());
        let mut dz = dy;
        if let Some(saved) = &self.saved {
            self.config
                .activation
                .backward_saved(saved, dz.data_mut(), g.conv.f);
        }
        let bias_grad = self.bias.as_mut().map(|b| b.grad.data_mut());
        depthwise_backward_weight(
            &g,
            x.data(),
            dz.data(),
            self.kernel.grad.data_mut(),
            bias_grad,
        );
        (x, dz)
    }
}

impl Layer for DepthwiseConv2d {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, x: Tensor, mode: Mode, _rng: &mut Rng) -> Tensor {
        let n = x.batch();
        let g = self.geometry(n);
        let mut y = Tensor::for_overwrite(&batched(n, &self.output_shape));
        let b = self.bias.as_ref().map(|b| b.value.data());
        depthwise_forward(&g, x.data(), self.kernel.value.data(), b, y.data_mut());
        let act = self.config.activation;
        if mode.keeps_state() {
            act.forward_saving(y.data_mut(), g.conv.f, &mut self.saved);
            self.x = Some(x);
        } else {
            act.forward(y.data_mut(), g.conv.f);
        }
        y
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let (x, dz) = self.weight_gradients(dy);
        let g = self.geometry(x.batch());
        // The input's buffer receives dx (which the kernel overwrites).
        let mut dx = x;
        depthwise_backward_input(&g, dz.data(), self.kernel.value.data(), dx.data_mut());
        dx
    }

    fn backward_params(&mut self, dy: Tensor) {
        self.weight_gradients(dy);
    }

    fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.kernel).chain(&self.bias).collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        std::iter::once(&mut self.kernel)
            .chain(self.bias.as_mut())
            .collect()
    }
}

impl LayerKind for DepthwiseConv2dConfig {
    fn name(&self) -> &'static str {
        "DepthwiseConv2D"
    }
    /// `[OH, OW, C*M]` for an input `[H, W, C]`.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input, 1)?.conv;
        Ok(vec![g.oh, g.ow, g.f])
    }
    /// `KH*KW*C*M` weights, plus `C*M` biases.
    fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let [_, _, ch] = image_shape("DepthwiseConv2D", input)?;
        let [kh, kw] = self.kernel_size;
        let k = checked_count(&[kh, kw, ch, self.depth_multiplier])?;
        let b = if self.use_bias {
            checked_count(&[ch, self.depth_multiplier])?
        } else {
            0
        };
        Ok((checked_sum(k, b)?, 0))
    }
    fn build(&self, inputs: &[&[usize]], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| DepthwiseConv2dConfig::build(self, x, rng))
    }
    fn role(&self) -> Role {
        Role::Filters
    }
    fn window(&self) -> Option<Window> {
        Some(Window {
            kernel: self.kernel_size,
            strides: self.strides,
            dilation: self.dilation_rate,
            padding: self.padding,
            ceil_mode: false,
        })
    }
    fn activation(&self) -> Option<Activation> {
        Some(self.activation)
    }
    fn with_activation(&self, activation: Activation) -> Option<LayerSpec> {
        Some(LayerSpec::DepthwiseConv2D(
            self.clone().with_activation(activation),
        ))
    }
    fn explain_maps(&self) -> Option<(&'static str, &'static str)> {
        Some(match self.activation {
            Activation::Linear => ("depthwise_maps", "linear (no activation)"),
            _ => ("depthwise_maps", "after activation"),
        })
    }
    /// `OH*OW*C*M` outputs, each a sum over a `KH x KW` window of one channel.
    fn multiply_adds(&self, _input: &[usize], output: &[usize]) -> u128 {
        let window = (self.kernel_size[0] * self.kernel_size[1]) as u128;
        output.iter().map(|&d| d as u128).product::<u128>() * window
    }
    /// `[M]DWk[xm][Ss](v|s)`; `None` for settings it cannot say (unequal or
    /// dilated strides, no bias, explicit padding).
    fn notation(&self) -> Option<String> {
        let [kh, kw] = self.kernel_size;
        let (s, m) = (self.strides, self.depth_multiplier);
        if s[0] != s[1] || self.dilation_rate != [1, 1] || !self.use_bias {
            return None;
        }
        let mut t = if m == 1 { String::new() } else { m.to_string() };
        t.push_str(&format!("DW{kh}"));
        if kw != kh {
            t.push_str(&format!("x{kw}"));
        }
        if s[0] != 1 {
            t.push_str(&format!("S{}", s[0]));
        }
        match self.padding {
            Padding::Valid => t.push('v'),
            Padding::Same => t.push('s'),
            Padding::Explicit(_) => return None,
        }
        Some(t)
    }
    /// `[M]DWk[xm][Ss][v|s]`: any token with `DW`.
    fn parse_token(
        token: &str,
        ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        let (multiplier, rest) = token.split_once("DW")?;
        Some(
            parse_depthwise(multiplier, rest, ctx.conv_padding, ctx.activation)
                .map(LayerSpec::DepthwiseConv2D)
                .ok_or_else(|| {
                    format!(
                        "'{token}': a depthwise conv is [M]DWk[xm][Ss][v|s], e.g. DW3, DW3S2, 2DW5v"
                    )
                }),
        )
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}

/// Parses the parts of a depthwise token around `DW`: the multiplier before
/// it (empty: 1), `k[xm][Ss][v|s]` after it.
fn parse_depthwise(
    multiplier: &str,
    rest: &str,
    default: Padding,
    activation: Activation,
) -> Option<DepthwiseConv2dConfig> {
    let m = match multiplier {
        "" => 1,
        m => parse_usize(m).filter(|&m| m > 0)?,
    };
    let (rest, padding) = split_padding(rest, default);
    let (kernel, stride) = split_stride(rest)?;
    let (kh, kw) = parse_kernel(kernel)?;
    Some(
        DepthwiseConv2dConfig::new(kh)
            .with_kernel(kh, kw)
            .with_stride(stride.unwrap_or(1))
            .with_padding(padding)
            .with_depth_multiplier(m)
            .with_activation(activation),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shapes_and_parameters_are_keras_s() {
        // Keras: DepthwiseConv2D(3, depth_multiplier=2, padding="same") on
        // 10x12x4 -> (10, 12, 8), 3*3*4*2 + 8 = 80 parameters.
        let c = DepthwiseConv2dConfig::new(3)
            .with_depth_multiplier(2)
            .with_padding(Padding::Same);
        assert_eq!(
            LayerKind::output_shape(&c, &[10, 12, 4]).unwrap(),
            [10, 12, 8]
        );
        assert_eq!(c.param_counts(&[10, 12, 4]).unwrap(), (80, 0));
        let s2 = DepthwiseConv2dConfig::new(3).with_stride(2);
        assert_eq!(LayerKind::output_shape(&s2, &[9, 9, 5]).unwrap(), [4, 4, 5]);
        let mut rng = Rng::seed_from_u64(1);
        let layer = c.build(&[10, 12, 4], &mut rng).unwrap();
        let shapes: Vec<_> = layer
            .params()
            .iter()
            .map(|p| p.value.shape().to_vec())
            .collect();
        assert_eq!(shapes, [vec![3, 3, 4, 2], vec![8]]);
        let e = LayerKind::output_shape(&c.clone().with_depth_multiplier(0), &[4, 4, 1]);
        assert!(e.unwrap_err().to_string().contains("depth_multiplier"));
    }

    #[test]
    fn notation_round_trips() {
        let ctx = TokenContext {
            conv_padding: Padding::Same,
            pool_padding: Padding::Valid,
            activation: Activation::Relu,
            output: false,
        };
        for token in ["DW3s", "2DW5x3S2v", "DW1s"] {
            let spec = DepthwiseConv2dConfig::parse_token(token, &ctx)
                .unwrap()
                .unwrap();
            assert_eq!(spec.layer_kind().notation().unwrap(), token);
        }
        let LayerSpec::DepthwiseConv2D(c) = DepthwiseConv2dConfig::parse_token("3DW3S2", &ctx)
            .unwrap()
            .unwrap()
        else {
            panic!("not a depthwise conv");
        };
        assert_eq!(
            (c.depth_multiplier, c.strides, c.padding, c.activation),
            (3, [2, 2], Padding::Same, Activation::Relu)
        );
        for bad in ["DW", "0DW3", "DWx", "DW3S", "xDW3"] {
            let e = DepthwiseConv2dConfig::parse_token(bad, &ctx).unwrap();
            assert!(e.unwrap_err().contains("[M]DWk"), "{bad}");
        }
        assert!(DepthwiseConv2dConfig::parse_token("32C3", &ctx).is_none());
    }
}
