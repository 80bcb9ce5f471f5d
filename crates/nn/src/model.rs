//! `Sequential` (the description of a model) and `Model` (its built,
//! trainable form).
//!
//! ```text
//! Sequential::new(&[28, 28, 1])              input shape without the batch axis, NHWC
//!     .conv2d(Conv2dConfig::new(32, 5).with_padding(Padding::Same).with_activation(Activation::Relu))
//!     .max_pool(PoolConfig::new(2))
//!     .flatten()
//!     .dense(DenseConfig::new(10).with_activation(Activation::Softmax))
//!     .build(seed)?                         -> Model
//! ```
//!
//! The model's final activation (softmax or sigmoid) is split off into a
//! "head" when the model is built: training feeds the logits to the fused
//! form of the loss, `predict` applies the head. Every other layer runs as
//! configured.

use crate::error::config_err;
use crate::layer::{Layer, Mode, Param};
use crate::optim::Optimizer;
use crate::spec::checked_sum;
use crate::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, DropoutConfig, LayerSpec, Loss,
    NnError, PoolConfig, Result, Rng,
};
use convnet_tensor::Tensor;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// A stack of layers and the input shape it expects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sequential {
    /// Per-sample input shape: `[H, W, C]` or `[F]`.
    pub input_shape: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
}

impl Sequential {
    /// An empty stack for inputs of `input_shape` (no batch axis).
    pub fn new(input_shape: &[usize]) -> Self {
        Sequential {
            input_shape: input_shape.to_vec(),
            layers: Vec::new(),
        }
    }
    /// Appends any layer (Keras's `model.add`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: LayerSpec) -> Self {
        self.layers.push(layer);
        self
    }
    /// Appends a Conv2D layer.
    pub fn conv2d(self, c: Conv2dConfig) -> Self {
        self.add(LayerSpec::Conv2D(c))
    }
    /// Appends a Dense layer.
    pub fn dense(self, d: DenseConfig) -> Self {
        self.add(LayerSpec::Dense(d))
    }
    /// Appends a MaxPooling2D layer.
    pub fn max_pool(self, p: PoolConfig) -> Self {
        self.add(LayerSpec::MaxPooling2D(p))
    }
    /// Appends an AveragePooling2D layer.
    pub fn avg_pool(self, p: PoolConfig) -> Self {
        self.add(LayerSpec::AveragePooling2D(p))
    }
    /// Appends a BatchNormalization layer with Keras's defaults.
    pub fn batch_norm(self) -> Self {
        self.add(LayerSpec::BatchNormalization(BatchNormConfig::new()))
    }
    /// Appends a Dropout layer.
    pub fn dropout(self, rate: f32) -> Self {
        self.add(LayerSpec::Dropout(DropoutConfig::new(rate)))
    }
    /// Appends a Flatten layer.
    pub fn flatten(self) -> Self {
        self.add(LayerSpec::Flatten)
    }
    /// Appends a standalone activation.
    pub fn activation(self, activation: Activation) -> Self {
        self.add(LayerSpec::Activation { activation })
    }

    /// The per-sample output shape of every layer, checking each one; the
    /// error names the first layer that cannot take its input.
    pub fn output_shapes(&self) -> Result<Vec<Vec<usize>>> {
        convnet_tensor::shape::checked_product(&self.input_shape, "input shape")?;
        if self.input_shape.is_empty() || self.input_shape.contains(&0) {
            return Err(config_err(
                "input shape",
                format!(
                    "must be non-empty with no zero sizes, found {:?}",
                    self.input_shape
                ),
            ));
        }
        let mut shape = self.input_shape.clone();
        let mut out = Vec::with_capacity(self.layers.len());
        // Parameter counts are checked too, so that every model that passes
        // has a summary (found by the notation fuzzer: a stack of huge
        // Dense layers whose total overflowed).
        let mut params = 0usize;
        for (i, l) in self.layers.iter().enumerate() {
            let at = |e: NnError| NnError::Shape {
                index: i,
                layer: l.kind().into(),
                msg: format!("input {shape:?}: {e}"),
            };
            let next = l.output_shape(&shape).map_err(at)?;
            let (t, nt) = l.param_counts(&shape).map_err(at)?;
            params = checked_sum(params, t)
                .and_then(|p| checked_sum(p, nt))
                .map_err(at)?;
            shape = next;
            out.push(shape.clone());
        }
        Ok(out)
    }

    /// The final output shape.
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        Ok(self
            .output_shapes()?
            .pop()
            .unwrap_or_else(|| self.input_shape.clone()))
    }

    /// Bytes a training step with batches of `batch` samples needs, roughly:
    /// parameters four times (values, gradients, two optimizer slots) plus,
    /// per sample, every layer's output kept for backward three times
    /// (output, cached copy, gradient) and the largest im2col buffer.
    pub fn training_bytes(&self, batch: usize) -> Result<u128> {
        let shapes = self.output_shapes()?;
        let mut params = 0u128;
        let mut acts = self
            .input_shape
            .iter()
            .map(|&d| d as u128)
            .product::<u128>();
        let mut input = self.input_shape.clone();
        let mut cols = 0u128;
        for (l, out) in self.layers.iter().zip(&shapes) {
            let (t, nt) = l.param_counts(&input)?;
            params += (t + nt) as u128;
            let n_out = out.iter().map(|&d| d as u128).product::<u128>();
            acts += n_out;
            if let LayerSpec::Conv2D(c) = l {
                let patch = c.kernel_size[0] as u128 * c.kernel_size[1] as u128 * input[2] as u128;
                cols = cols.max(n_out / c.filters as u128 * patch);
            }
            input = out.clone();
        }
        let per_sample = acts.saturating_mul(3).saturating_add(cols);
        Ok(params
            .saturating_mul(16)
            .saturating_add((batch as u128).saturating_mul(per_sample).saturating_mul(4)))
    }

    /// Fails before allocating when a training step would need more memory
    /// than `available` bytes, saying how much it needs.
    pub fn check_memory(&self, batch: usize, available: u128) -> Result<()> {
        let need = self.training_bytes(batch)?;
        if need > available {
            let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
            return Err(config_err(
                "memory",
                format!(
                    "training this model with batch size {batch} needs about {:.2} GiB but only {:.2} GiB is available; \
                     use a smaller --batch-size or a smaller model",
                    gib(need),
                    gib(available)
                ),
            ));
        }
        Ok(())
    }

    /// Builds the model, drawing initial weights from `seed`.
    pub fn build(&self, seed: u64) -> Result<Model> {
        let shapes = self.output_shapes()?;
        let mut rng = Rng::seed_from_u64(seed);
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(self.layers.len());
        let mut head = Activation::Linear;
        let mut input = self.input_shape.clone();
        for (i, spec) in self.layers.iter().enumerate() {
            let mut spec = spec.clone();
            if i + 1 == self.layers.len() {
                head = split_activation(&mut spec);
            }
            let layer = spec.build(&input, &mut rng).map_err(|e| NnError::Shape {
                index: i,
                layer: spec.kind().into(),
                msg: e.to_string(),
            })?;
            layers.push(layer);
            input = shapes[i].clone();
        }
        Ok(Model {
            spec: self.clone(),
            layers,
            head,
            rng: Rng::seed_from_u64(seed.wrapping_add(1)),
            training: None,
        })
    }
}

/// Moves a softmax or sigmoid out of the final layer, returning it.
fn split_activation(spec: &mut LayerSpec) -> Activation {
    let slot = match spec {
        LayerSpec::Conv2D(c) => &mut c.activation,
        LayerSpec::Dense(d) => &mut d.activation,
        LayerSpec::Activation { activation } => activation,
        _ => return Activation::Linear,
    };
    match *slot {
        a @ (Activation::Softmax | Activation::Sigmoid) => {
            *slot = Activation::Linear;
            a
        }
        _ => Activation::Linear,
    }
}

/// A built model: layers with parameters, the output head, and the RNG
/// used for dropout and shuffling.
pub struct Model {
    spec: Sequential,
    pub(crate) layers: Vec<Box<dyn Layer>>,
    head: Activation,
    pub(crate) rng: Rng,
    pub(crate) training: Option<Training>,
}

/// What `compile` sets: the loss, the optimizer and its state.
pub(crate) struct Training {
    pub(crate) loss: Loss,
    pub(crate) optimizer: Optimizer,
    /// L2 penalty `l2 * sum(w^2)` on every kernel (Keras's kernel_regularizer).
    pub(crate) l2: f32,
    /// Multiplier on the scheduled rate (ReduceLROnPlateau lowers it).
    pub(crate) lr_factor: f32,
}

impl Model {
    /// The description the model was built from.
    pub fn spec(&self) -> &Sequential {
        &self.spec
    }

    /// The final activation that `predict` applies (softmax, sigmoid or linear).
    pub fn head(&self) -> Activation {
        self.head
    }

    /// The built layers.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The built layers, mutable.
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// Per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.spec.input_shape
    }

    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.layers
            .last()
            .map_or(&self.spec.input_shape, |l| l.output_shape())
    }

    /// Checks that `x` is a batch of this model's inputs.
    pub fn check_input(&self, x: &Tensor, what: &str) -> Result<()> {
        if x.shape().len() != self.spec.input_shape.len() + 1
            || x.shape()[1..] != self.spec.input_shape[..]
        {
            return Err(config_err(
                what,
                format!(
                    "expected a batch of shape [N, {}], found {:?}",
                    self.spec
                        .input_shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    x.shape()
                ),
            ));
        }
        Ok(())
    }

    /// Runs the layers; the head is applied only when `with_head`.
    ///
    /// In inference, a batch norm right after a Conv2D is applied inside the
    /// convolution's pass (same arithmetic, one memory pass fewer).
    pub fn forward(&mut self, x: &Tensor, mode: Mode, with_head: bool) -> Tensor {
        // Large buffers the last step freed are reused by this one; older
        // ones are given back (see convnet_tensor::recycle).
        convnet_tensor::recycle::new_step();
        let mut h = x.clone();
        let mut i = 0;
        while i < self.layers.len() {
            if mode == Mode::Eval && i + 1 < self.layers.len() {
                if let Some((scale, shift)) = self.layers[i + 1].eval_affine() {
                    match self.layers[i].forward_eval_affine(h, &scale, &shift) {
                        Ok(y) => {
                            h = y;
                            i += 2;
                            continue;
                        }
                        Err(x) => h = x,
                    }
                }
            }
            h = self.layers[i].forward(h, mode, &mut self.rng);
            i += 1;
        }
        if with_head {
            let row = h.sample_len().max(1);
            self.head.forward(h.data_mut(), row);
        }
        h
    }

    /// Every layer's output for a batch, in inference mode (the head is
    /// applied to the last one), for looking inside the net.
    pub fn trace(&mut self, x: &Tensor) -> Vec<Tensor> {
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        for layer in &mut self.layers {
            h = layer.forward(h, Mode::Eval, &mut self.rng);
            outs.push(h.clone());
        }
        if let Some(last) = outs.last_mut() {
            let row = last.sample_len().max(1);
            self.head.forward(last.data_mut(), row);
        }
        outs
    }

    /// Backpropagates the gradient of the loss w.r.t. the logits through
    /// every layer, accumulating parameter gradients.
    pub fn backward(&mut self, dlogits: Tensor) {
        let mut g = dlogits;
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            if i == 0 {
                // Nobody needs the gradient w.r.t. the model's input.
                layer.backward_params(std::mem::take(&mut g));
            } else {
                g = layer.backward(g);
            }
        }
    }

    /// Probabilities (or outputs) for a batch, in inference mode, `batch`
    /// samples at a time.
    pub fn predict(&mut self, x: &Tensor, batch: usize) -> Result<Tensor> {
        self.check_input(x, "predict")?;
        let n = x.batch();
        let per = self.output_shape().iter().product::<usize>();
        let mut out = Vec::with_capacity(n * per);
        let mut start = 0;
        while start < n {
            let end = (start + batch.max(1)).min(n);
            let y = self.forward(&x.slice_batch(start, end), Mode::Eval, true);
            out.extend_from_slice(y.data());
            start = end;
        }
        let mut shape = vec![n];
        shape.extend_from_slice(self.output_shape());
        Ok(Tensor::from_vec(&shape, out)?)
    }

    /// Every parameter with its qualified name `layer{i}.{name}`.
    pub fn named_params(&self) -> Vec<(String, &Param)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            for p in l.params() {
                out.push((format!("layer{i}.{}", p.name), p));
            }
        }
        out
    }

    /// Mutable parameters in the same order as [`Model::named_params`].
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// `(trainable, non_trainable)` parameter counts.
    pub fn param_counts(&self) -> (usize, usize) {
        let mut t = (0, 0);
        for (_, p) in self.named_params() {
            if p.trainable {
                t.0 += p.value.len();
            } else {
                t.1 += p.value.len();
            }
        }
        t
    }

    /// Zeroes every gradient.
    pub fn zero_grad(&mut self) {
        for p in self.params_mut() {
            p.grad.data_mut().fill(0.0);
        }
    }

    /// The RNG used for dropout and shuffling (saved in checkpoints).
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// Replaces the RNG (when resuming from a checkpoint).
    pub fn set_rng(&mut self, rng: Rng) {
        self.rng = rng;
    }
}
