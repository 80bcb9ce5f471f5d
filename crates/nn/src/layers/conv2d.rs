//! Conv2D: 2-D convolution with bias and a fused activation.
//!
//! ```text
//! x [N, H, W, C] -> y [N, OH, OW, F],  kernel [KH, KW, C/G, F] (HWIO), bias [F]
//! y = act(conv(x, kernel) + bias)
//! ```
//!
//! With `groups` G > 1 (Keras's `groups`, PyTorch's and ONNX's `group`),
//! input channel group g (`C/G` channels) feeds only filters group g
//! (`F/G` filters): G independent convolutions side by side
//! (`conv2d_groups.rs`). Output sizes come from [`convnet_tensor::shape`];
//! the kernels are in [`convnet_tensor::conv`]. Parameters:
//! `KH*KW*(C/G)*F + F`, as in Keras.

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind, Role, TokenContext, Window};
use crate::layer::{batched, Layer, Mode, Param};
use crate::layers::pooling::image_shape;
use crate::notation::{parse_kernel, parse_usize, split_padding, split_stride};
use crate::spec::{checked_count, checked_sum};
use crate::{Initializer, LayerSpec, Result, Rng};
use convnet_tensor::activation::{Activation, SavedOutput};
use convnet_tensor::conv::{
    conv2d_backward_input, conv2d_backward_weight, conv2d_backward_weight_relu,
    conv2d_forward_inference, conv2d_forward_saving, Tail,
};
use convnet_tensor::{bf16, bf16_conv, bf16_grad, Conv2dGeometry, Padding, Precision, Tensor};
use serde::{Deserialize, Serialize};

fn one_one() -> [usize; 2] {
    [1, 1]
}
fn yes() -> bool {
    true
}

/// Configuration of a Conv2D layer (Keras's arguments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2dConfig {
    /// Number of filters (output channels).
    pub filters: usize,
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
    /// Activation applied after the bias.
    #[serde(default)]
    pub activation: Activation,
    /// Whether the layer has a bias.
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Kernel initializer.
    #[serde(default)]
    pub kernel_initializer: Initializer,
    /// Bias initializer.
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    /// Channel groups (Keras's `groups`): 1 is a plain convolution.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub groups: usize,
}

fn one() -> usize {
    1
}
fn is_one(g: &usize) -> bool {
    *g == 1
}

fn zeros() -> Initializer {
    Initializer::Zeros
}

impl Conv2dConfig {
    /// `filters` square `kernel x kernel` filters, stride 1, `valid`, linear.
    pub fn new(filters: usize, kernel: usize) -> Self {
        Conv2dConfig {
            filters,
            kernel_size: [kernel, kernel],
            strides: [1, 1],
            dilation_rate: [1, 1],
            padding: Padding::Valid,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            groups: 1,
        }
    }
    /// `groups` channel groups, each convolved with its own filters.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
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
    /// Kernel initializer.
    pub fn with_kernel_initializer(mut self, i: Initializer) -> Self {
        self.kernel_initializer = i;
        self
    }
    /// Bias initializer.
    pub fn with_bias_initializer(mut self, i: Initializer) -> Self {
        self.bias_initializer = i;
        self
    }

    /// The geometry of one group's convolution (the whole one when
    /// `groups` is 1) for an input `[H, W, C]` and batch `n`.
    pub fn geometry(&self, input: &[usize], n: usize) -> Result<Conv2dGeometry> {
        let [h, w, c] = match input {
            [h, w, c] => [*h, *w, *c],
            _ => {
                return Err(config_err(
                    "Conv2D",
                    format!("expects an image input [H, W, C], found {input:?}"),
                ))
            }
        };
        let g = self.groups;
        if g == 0 || !c.is_multiple_of(g) || !self.filters.is_multiple_of(g) {
            return Err(config_err(
                "Conv2D",
                format!(
                    "groups {g} must divide the input's {c} channels and the {} filters",
                    self.filters
                ),
            ));
        }
        Ok(Conv2dGeometry::new(
            [n, h, w, c / g],
            self.filters / g,
            (self.kernel_size[0], self.kernel_size[1]),
            (self.strides[0], self.strides[1]),
            (self.dilation_rate[0], self.dilation_rate[1]),
            self.padding,
        )?)
    }

    /// Output shape `[OH, OW, F]` for an input `[H, W, C]`.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input, 1)?;
        Ok(vec![g.oh, g.ow, self.filters])
    }

    /// Builds the layer with initialized parameters.
    pub fn build(&self, input: &[usize], rng: &mut Rng) -> Result<Conv2d> {
        let g = self.geometry(input, 1)?;
        let (k, f) = (g.kh * g.kw, self.filters);
        let mut kernel = Tensor::zeros(&[g.kh, g.kw, g.c, f]);
        self.kernel_initializer
            .fill(kernel.data_mut(), k * g.c, k * f, rng);
        let bias = self.use_bias.then(|| {
            let mut b = Tensor::zeros(&[f]);
            self.bias_initializer.fill(b.data_mut(), k * g.c, f, rng);
            Param::new("bias", b)
        });
        Ok(Conv2d {
            config: self.clone(),
            input_shape: input.to_vec(),
            output_shape: vec![g.oh, g.ow, f],
            kernel: Param::new("kernel", kernel),
            bias,
            x: None,
            saved: None,
            precision: Precision::Fp32,
        })
    }
}

/// A built Conv2D layer.
pub struct Conv2d {
    config: Conv2dConfig,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    kernel: Param,
    bias: Option<Param>,
    /// Input of the last training forward.
    x: Option<Tensor>,
    /// What the activation's backward needs from the last training
    /// forward's output (a ReLU bit mask, or a copy of the output).
    saved: Option<SavedOutput>,
    /// The arithmetic of the products ([`Layer::set_precision`]).
    precision: Precision,
}

impl Conv2d {
    /// `act(conv(x) + b)`, then the per-filter `affine` map if any. In
    /// training (`save`) the activation's backward state comes out of the
    /// convolution's own pass (a ReLU mask packed as the output is stored,
    /// where it can) into `self.saved`.
    fn convolve(
        &mut self,
        x: &Tensor,
        affine: Option<(&[f32], &[f32])>,
        tail: Tail<'_>,
        save: bool,
    ) -> Tensor {
        let n = x.batch();
        let g = self
            .config
            .geometry(&self.input_shape, n)
            .expect("validated at build");
        let mut y = Tensor::for_overwrite(&batched(n, &self.output_shape));
        let (w, b) = (
            self.kernel.value.data(),
            self.bias.as_ref().map(|b| b.value.data()),
        );
        let act = self.config.activation;
        if self.config.groups > 1 {
            let groups = self.config.groups;
            super::conv2d_groups::forward(&g, groups, x.data(), w, b, y.data_mut());
            if save {
                act.forward_saving(y.data_mut(), self.config.filters, &mut self.saved);
            } else {
                act.forward(y.data_mut(), self.config.filters);
            }
            return y;
        }
        if save && self.precision.is_bf16() && bf16_conv::handles(&g) {
            // bf16 operands, fp32 sums; the activation in its own pass.
            let packed = bf16_conv::pack_weights(&g, w);
            bf16_conv::conv2d_forward_bf16(bf16::path(), &g, x.data(), &packed, b, y.data_mut());
            act.forward_saving(y.data_mut(), g.f, &mut self.saved);
        } else if save {
            conv2d_forward_saving(&g, x.data(), w, b, act, y.data_mut(), &mut self.saved);
        } else {
            let p = self.precision;
            conv2d_forward_inference(&g, x.data(), w, b, act, affine, tail, p, y.data_mut());
        }
        y
    }

    /// Turns `dy` into the pre-activation gradient `dz` (in place) and adds
    /// the kernel and bias gradients; returns the cached input and `dz`.
    fn weight_gradients(&mut self, dy: Tensor) -> (Tensor, Tensor) {
        let x = self
            .x
            .take()
            .expect("Conv2D backward before a training forward");
        let g = self
            .config
            .geometry(&self.input_shape, x.batch())
            .expect("validated at build");
        let mut dz = dy;
        let kernel_grad = self.kernel.grad.data_mut();
        let bias_grad = self.bias.as_mut().map(|b| b.grad.data_mut());
        if self.config.groups > 1 {
            let act = self.config.activation;
            if act != Activation::Linear {
                let saved = self.saved.as_ref().expect("kept by the training forward");
                act.backward_saved(saved, dz.data_mut(), self.config.filters);
            }
            let groups = self.config.groups;
            super::conv2d_groups::backward_weight(
                &g,
                groups,
                x.data(),
                dz.data(),
                kernel_grad,
                bias_grad,
            );
            return (x, dz);
        }
        if self.precision.is_bf16() && bf16_grad::handles_weight(&g) {
            let act = self.config.activation;
            if act != Activation::Linear {
                let saved = self.saved.as_ref().expect("kept by the training forward");
                act.backward_saved(saved, dz.data_mut(), g.f);
            }
            let (xd, dzd) = (x.data(), dz.data());
            bf16_grad::conv2d_backward_weight_bf16(
                bf16::path(),
                &g,
                xd,
                dzd,
                kernel_grad,
                bias_grad,
            );
            return (x, dz);
        }
        match (self.config.activation, &self.saved) {
            (Activation::Linear, _) => {
                conv2d_backward_weight(&g, x.data(), dz.data(), kernel_grad, bias_grad)
            }
            // The ReLU's mask is applied chunk by chunk inside the pass.
            (Activation::Relu, Some(SavedOutput::ReluMask(mask))) => conv2d_backward_weight_relu(
                &g,
                x.data(),
                dz.data_mut(),
                mask,
                kernel_grad,
                bias_grad,
            ),
            (act, saved) => {
                let saved = saved.as_ref().expect("kept by the training forward");
                act.backward_saved(saved, dz.data_mut(), g.f);
                conv2d_backward_weight(&g, x.data(), dz.data(), kernel_grad, bias_grad)
            }
        }
        (x, dz)
    }
}

impl Layer for Conv2d {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, x: Tensor, mode: Mode, _rng: &mut Rng) -> Tensor {
        let train = mode.keeps_state();
        let y = self.convolve(&x, None, Tail::None, train);
        if train {
            self.x = Some(x);
        }
        y
    }

    fn forward_eval_affine(
        &mut self,
        x: Tensor,
        scale: &[f32],
        shift: &[f32],
        tail: Tail<'_>,
    ) -> std::result::Result<Tensor, Tensor> {
        let out = x.batch() * self.output_shape.iter().product::<usize>();
        if scale.len() != self.config.filters
            || tail.shortcut().is_some_and(|s| s.len() != out)
            || self.config.groups > 1
        {
            return Err(x);
        }
        Ok(self.convolve(&x, Some((scale, shift)), tail, false))
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let (x, dz) = self.weight_gradients(dy);
        let g = self
            .config
            .geometry(&self.input_shape, x.batch())
            .expect("validated at build");
        // The input is not needed any more: its buffer receives dx (which
        // the kernel overwrites), so no gradient buffer is allocated.
        let mut dx = x;
        if self.config.groups > 1 {
            let groups = self.config.groups;
            let w = self.kernel.value.data();
            super::conv2d_groups::backward_input(&g, groups, dz.data(), w, dx.data_mut());
        } else if self.precision.is_bf16() && bf16_grad::handles_input(&g) {
            let w = self.kernel.value.data();
            bf16_grad::conv2d_backward_input_bf16(bf16::path(), &g, dz.data(), w, dx.data_mut());
        } else if self.precision.is_bf16() && bf16_grad::handles_strided_input(&g) {
            let (w, path) = (self.kernel.value.data(), bf16::path());
            bf16_grad::conv2d_backward_input_strided_bf16(path, &g, dz.data(), w, dx.data_mut());
        } else {
            conv2d_backward_input(&g, dz.data(), self.kernel.value.data(), dx.data_mut());
        }
        dx
    }

    fn backward_params(&mut self, dy: Tensor) {
        self.weight_gradients(dy);
    }

    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
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

impl LayerKind for Conv2dConfig {
    fn name(&self) -> &'static str {
        "Conv2D"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Conv2dConfig::output_shape(self, input)
    }
    /// `KH*KW*(C/G)*F` weights, plus `F` biases.
    fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let [_, _, ch] = image_shape("Conv2D", input)?;
        let [kh, kw] = self.kernel_size;
        let k = checked_count(&[kh, kw, ch / self.groups.max(1), self.filters])?;
        let b = if self.use_bias { self.filters } else { 0 };
        Ok((checked_sum(k, b)?, 0))
    }
    fn build(&self, inputs: &[&[usize]], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| Conv2dConfig::build(self, x, rng))
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
        Some(LayerSpec::Conv2D(self.clone().with_activation(activation)))
    }
    fn explain_maps(&self) -> Option<(&'static str, &'static str)> {
        Some(match self.activation {
            Activation::Linear => ("conv_maps", "linear (no activation)"),
            _ => ("conv_maps", "after activation"),
        })
    }
    /// `OH*OW*F` outputs, each a sum over a `KH x KW x C/G` patch.
    fn multiply_adds(&self, input: &[usize], output: &[usize]) -> u128 {
        let c = input.get(2).copied().unwrap_or(0) / self.groups.max(1);
        let patch = self.kernel_size[0] * self.kernel_size[1] * c;
        output.iter().map(|&d| d as u128).product::<u128>() * patch as u128
    }
    /// The patch matrix `[OH*OW, KH*KW*C]`.
    fn scratch_elements(&self, input: &[usize], output: &[usize]) -> u128 {
        let n_out = output.iter().map(|&d| d as u128).product::<u128>();
        let patch = self.kernel_size[0] as u128
            * self.kernel_size[1] as u128
            * input.get(2).copied().unwrap_or(0) as u128;
        n_out / self.filters.max(1) as u128 * patch
    }
    /// `NCk[xm][Ss](v|s)`; `None` for settings it cannot say (unequal or
    /// dilated strides, no bias, explicit padding).
    fn notation(&self) -> Option<String> {
        let mut t = format!("{}C{}", self.filters, self.kernel_size[0]);
        if self.kernel_size[1] != self.kernel_size[0] {
            t.push_str(&format!("x{}", self.kernel_size[1]));
        }
        if self.strides[0] != self.strides[1]
            || self.dilation_rate != [1, 1]
            || !self.use_bias
            || self.groups != 1
        {
            return None;
        }
        if self.strides[0] != 1 {
            t.push_str(&format!("S{}", self.strides[0]));
        }
        match self.padding {
            Padding::Valid => t.push('v'),
            Padding::Same => t.push('s'),
            Padding::Explicit(_) => return None,
        }
        Some(t)
    }
    /// `NCk[xm][Ss][v|s]`: any token with a `C`.
    fn parse_token(
        token: &str,
        ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        if !token.contains('C') {
            return None;
        }
        Some(
            parse_conv(token, ctx.conv_padding, ctx.activation)
                .map(LayerSpec::Conv2D)
                .ok_or_else(|| {
                    format!("'{token}': a conv is NCk[xm][Ss][v|s], e.g. 32C5, 32C5S2, 32C3v")
                }),
        )
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}

/// Parses a conv token `NCk[xm][Ss][v|s]`: `N` filters of `k x m`, stride
/// `s`, `valid` or `same` (else `default`), with `activation`.
pub(crate) fn parse_conv(
    t: &str,
    default: Padding,
    activation: Activation,
) -> Option<Conv2dConfig> {
    let (filters, rest) = t.split_once('C')?;
    let filters = parse_usize(filters)?;
    let (rest, padding) = split_padding(rest, default);
    let (kernel, stride) = split_stride(rest)?;
    let (kh, kw) = parse_kernel(kernel)?;
    Some(
        Conv2dConfig::new(filters, kh)
            .with_kernel(kh, kw)
            .with_stride(stride.unwrap_or(1))
            .with_padding(padding)
            .with_activation(activation),
    )
}
