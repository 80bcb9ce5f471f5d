//! Dense: a fully connected layer with a fused activation.
//!
//! ```text
//! x [N, ..., IN] -> y [N, ..., UNITS],  kernel [IN, UNITS], bias [UNITS]
//! y = act(x kernel + bias)             (over the last axis, like Keras)
//! backward:  dkernel += x^T dz,  dbias += sum_rows dz,  dx = dz kernel^T
//! ```
//!
//! Parameters: `IN*UNITS + UNITS`, as in Keras.

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind, Role, TokenContext};
use crate::layer::{Layer, Mode, Param};
use crate::notation::parse_usize;
use crate::spec::{checked_count, checked_sum};
use crate::{Initializer, LayerSpec, Result, Rng};
use convnet_tensor::activation::{Activation, SavedOutput};
use convnet_tensor::gemm::{matmul, MatRef, Threads};
use convnet_tensor::Tensor;
use serde::{Deserialize, Serialize};

fn yes() -> bool {
    true
}
fn zeros() -> Initializer {
    Initializer::Zeros
}

/// Configuration of a Dense layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseConfig {
    /// Output units.
    pub units: usize,
    /// Activation after the bias.
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
}

impl DenseConfig {
    /// `units` outputs, linear, with bias, glorot_uniform.
    pub fn new(units: usize) -> Self {
        DenseConfig {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
        }
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

    /// Output shape: the input with its last axis replaced by `units`.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.is_empty() || self.units == 0 {
            return Err(config_err(
                "Dense",
                format!(
                    "needs units >= 1 (found {}) and a non-empty input shape (found {input:?})",
                    self.units
                ),
            ));
        }
        let mut out = input.to_vec();
        *out.last_mut().unwrap() = self.units;
        convnet_tensor::shape::checked_product(&out, "Dense")?;
        convnet_tensor::shape::checked_product(&[*input.last().unwrap(), self.units], "Dense")?;
        Ok(out)
    }

    /// Builds the layer with initialized parameters.
    pub fn build(&self, input: &[usize], rng: &mut Rng) -> Result<Dense> {
        let output_shape = self.output_shape(input)?;
        let fan_in = *input.last().unwrap();
        let mut kernel = Tensor::zeros(&[fan_in, self.units]);
        self.kernel_initializer
            .fill(kernel.data_mut(), fan_in, self.units, rng);
        let bias = self.use_bias.then(|| {
            let mut b = Tensor::zeros(&[self.units]);
            self.bias_initializer
                .fill(b.data_mut(), fan_in, self.units, rng);
            Param::new("bias", b)
        });
        Ok(Dense {
            config: self.clone(),
            input_shape: input.to_vec(),
            output_shape,
            kernel: Param::new("kernel", kernel),
            bias,
            x: None,
            saved: None,
        })
    }
}

/// A built Dense layer.
pub struct Dense {
    config: DenseConfig,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    kernel: Param,
    bias: Option<Param>,
    x: Option<Tensor>,
    /// What the activation's backward needs from the last training
    /// forward's output (a ReLU bit mask, or a copy of the output).
    saved: Option<SavedOutput>,
}

impl Dense {
    fn fan_in(&self) -> usize {
        *self.input_shape.last().unwrap()
    }
}

impl Dense {
    /// `dz = act'(y) * dy` in place, `dkernel += x^T dz`, `dbias += sum dz`.
    fn weight_gradients(&mut self, dy: Tensor) -> (Tensor, Tensor) {
        let x = self
            .x
            .take()
            .expect("Dense backward before a training forward");
        let (fi, u) = (self.fan_in(), self.config.units);
        let rows = x.len() / fi;
        let mut dz = dy;
        if self.config.activation != Activation::Linear {
            let saved = self.saved.as_ref().expect("kept by the training forward");
            self.config
                .activation
                .backward_saved(saved, dz.data_mut(), u);
        }
        matmul(
            self.kernel.grad.data_mut(),
            MatRef::row_major(x.data(), rows, fi).t(),
            MatRef::row_major(dz.data(), rows, u),
            true,
            Threads::Pool,
        );
        if let Some(b) = &mut self.bias {
            let g = b.grad.data_mut();
            for row in dz.data().chunks_exact(u) {
                g.iter_mut().zip(row).for_each(|(g, d)| *g += d);
            }
        }
        (x, dz)
    }
}

impl Layer for Dense {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }

    fn forward(&mut self, x: Tensor, mode: Mode, _rng: &mut Rng) -> Tensor {
        let (fi, u) = (self.fan_in(), self.config.units);
        let rows = x.len() / fi;
        let mut shape = x.shape().to_vec();
        *shape.last_mut().unwrap() = u;
        let mut y = Tensor::for_overwrite(&shape);
        matmul(
            y.data_mut(),
            MatRef::row_major(x.data(), rows, fi),
            MatRef::row_major(self.kernel.value.data(), fi, u),
            false,
            Threads::Pool,
        );
        if let Some(b) = &self.bias {
            for row in y.data_mut().chunks_exact_mut(u) {
                row.iter_mut()
                    .zip(b.value.data())
                    .for_each(|(v, b)| *v += b);
            }
        }
        let act = self.config.activation;
        if mode.keeps_state() {
            self.x = Some(x);
            act.forward_saving(y.data_mut(), u, &mut self.saved);
        } else {
            act.forward(y.data_mut(), u);
        }
        y
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let (x, dz) = self.weight_gradients(dy);
        let (fi, u) = (self.fan_in(), self.config.units);
        let rows = x.len() / fi;
        // dx overwrites the no longer needed input (the product does not read it).
        let mut dx = x;
        matmul(
            dx.data_mut(),
            MatRef::row_major(dz.data(), rows, u),
            MatRef::row_major(self.kernel.value.data(), fi, u).t(),
            false,
            Threads::Pool,
        );
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

impl LayerKind for DenseConfig {
    fn name(&self) -> &'static str {
        "Dense"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        DenseConfig::output_shape(self, input)
    }
    /// `IN*UNITS` weights, plus `UNITS` biases.
    fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let last = input.last().copied().unwrap_or(0);
        let k = checked_count(&[last, self.units])?;
        let b = if self.use_bias { self.units } else { 0 };
        Ok((checked_sum(k, b)?, 0))
    }
    fn build(&self, inputs: &[&[usize]], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| DenseConfig::build(self, x, rng))
    }
    fn role(&self) -> Role {
        Role::Product
    }
    fn activation(&self) -> Option<Activation> {
        Some(self.activation)
    }
    fn with_activation(&self, activation: Activation) -> Option<LayerSpec> {
        Some(LayerSpec::Dense(self.clone().with_activation(activation)))
    }
    /// Every input value times every unit.
    fn multiply_adds(&self, input: &[usize], _output: &[usize]) -> u128 {
        input.iter().map(|&d| d as u128).product::<u128>() * self.units as u128
    }
    /// `N`: the number of units.
    fn notation(&self) -> Option<String> {
        Some(self.units.to_string())
    }
    /// A number `N`: hidden layers take the parser's activation, the
    /// output softmax (sigmoid for one unit).
    fn parse_token(
        token: &str,
        ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        let units = parse_usize(token)?;
        let activation = match (ctx.output, units) {
            (true, 1) => Activation::Sigmoid,
            (true, _) => Activation::Softmax,
            _ => ctx.activation,
        };
        Some(Ok(LayerSpec::Dense(
            DenseConfig::new(units).with_activation(activation),
        )))
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}
