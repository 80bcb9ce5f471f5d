//! The layer contract: shapes, forward, backward and parameters.

use crate::Rng;
use convnet_tensor::conv::Tail;
use convnet_tensor::{Precision, Tensor};

/// Whether a forward pass is part of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: batch norm uses batch statistics and updates its moving
    /// statistics; dropout drops; layers keep what backward needs.
    Train,
    /// Inference: batch norm uses moving statistics; dropout is the identity.
    Eval,
    /// Inference's arithmetic, keeping what backward needs: for gradients of
    /// a prediction with respect to the input or a layer's output (saliency
    /// maps, Grad-CAM). Nothing is updated.
    Inspect,
}

impl Mode {
    /// Whether layers keep what their backward needs (Train, Inspect).
    pub fn keeps_state(self) -> bool {
        self != Mode::Eval
    }

    /// Whether the pass trains: batch statistics, dropout (Train only).
    pub fn trains(self) -> bool {
        self == Mode::Train
    }
}

/// A parameter tensor with its gradient.
#[derive(Clone, Debug)]
pub struct Param {
    /// Name within the layer (`kernel`, `bias`, `gamma`, `moving_mean`, ...).
    pub name: &'static str,
    /// The value.
    pub value: Tensor,
    /// The accumulated gradient (same shape as `value`).
    pub grad: Tensor,
    /// False for state that the optimizer must not touch (moving statistics).
    pub trainable: bool,
}

impl Param {
    /// A trainable parameter with a zero gradient.
    pub fn new(name: &'static str, value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param {
            name,
            value,
            grad,
            trainable: true,
        }
    }

    /// A non-trainable state tensor.
    pub fn state(name: &'static str, value: Tensor) -> Self {
        Param {
            trainable: false,
            ..Param::new(name, value)
        }
    }
}

/// A built layer: its input shape is known and its parameters exist.
///
/// Shapes exclude the batch axis: `[H, W, C]` for images, `[F]` for vectors.
/// `forward` takes its input by value (so a layer that needs it for the
/// backward pass keeps it without a copy) and, in [`Mode::Train`], keeps
/// what `backward` needs; `backward` takes the gradient of the loss with
/// respect to the layer's output (by value, so it can be reused in place),
/// *adds* the parameter gradients into each [`Param::grad`], and returns
/// the gradient with respect to the input.
pub trait Layer: Send {
    /// Per-sample input shape.
    fn input_shape(&self) -> &[usize];
    /// Per-sample output shape.
    fn output_shape(&self) -> &[usize];
    /// Forward pass over a batch `[N, ...input_shape]`.
    fn forward(&mut self, x: Tensor, mode: Mode, rng: &mut Rng) -> Tensor;
    /// Backward pass; valid after a [`Mode::Train`] forward.
    fn backward(&mut self, dy: Tensor) -> Tensor;
    /// Backward pass when the input gradient is not needed (the first
    /// layer of a model): accumulates the parameter gradients only.
    fn backward_params(&mut self, dy: Tensor) {
        let _ = self.backward(dy);
    }
    /// Inference only: when this layer is a per-channel affine map
    /// `y = x * scale + shift` (batch norm with its moving statistics), the
    /// map, so that [`Model`](crate::Model) can fuse it into the layer before.
    fn eval_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        None
    }
    /// Inference forward followed by `y * scale + shift` per channel and
    /// then `tail` (a ReLU, or a residual sum and ReLU: the nodes after the
    /// batch norm) in the same pass, for layers that can (Conv2D); others
    /// hand `x` back.
    fn forward_eval_affine(
        &mut self,
        x: Tensor,
        scale: &[f32],
        shift: &[f32],
        tail: Tail<'_>,
    ) -> std::result::Result<Tensor, Tensor> {
        let _ = (scale, shift, tail);
        Err(x)
    }
    /// Training forward followed by a ReLU in the same pass, for layers that
    /// can (BatchNormalization); others hand `x` back. The next
    /// [`Layer::backward`] then takes the gradient w.r.t. the ReLU's output.
    fn forward_train_relu(
        &mut self,
        x: Tensor,
        rng: &mut Rng,
    ) -> std::result::Result<Tensor, Tensor> {
        let _ = rng;
        Err(x)
    }
    /// Training forward followed by `+ shortcut` and a ReLU in the same pass
    /// (a batch norm before a residual addition), for layers that can; others
    /// hand `x` back. In the backward, the model applies
    /// [`Layer::mask_fused_relu`] and the sum's gradient, then this layer's
    /// [`Layer::backward`].
    fn forward_train_add_relu(
        &mut self,
        x: Tensor,
        shortcut: &Tensor,
        rng: &mut Rng,
    ) -> std::result::Result<Tensor, Tensor> {
        let _ = (shortcut, rng);
        Err(x)
    }
    /// The ReLU's backward after [`Layer::forward_train_add_relu`]: zeroes
    /// `dy` where the ReLU's output was not positive (the mask the layer
    /// kept), giving the sum's gradient.
    fn mask_fused_relu(&mut self, dy: &mut Tensor) {
        let _ = dy;
        panic!("mask_fused_relu is only valid after a forward_train_add_relu that succeeded")
    }
    /// Forward over the outputs of several nodes, in the order of the node's
    /// `inputs` (merges: Add, Concatenate); every other layer takes one.
    fn forward_inputs(&mut self, xs: Vec<Tensor>, mode: Mode, rng: &mut Rng) -> Tensor {
        let [x]: [Tensor; 1] = xs.try_into().expect("a single-input layer takes one input");
        self.forward(x, mode, rng)
    }
    /// Backward of [`Layer::forward_inputs`]: one input gradient per input.
    fn backward_inputs(&mut self, dy: Tensor) -> Vec<Tensor> {
        vec![self.backward(dy)]
    }
    /// Training statistics over the whole batch of a data-parallel job
    /// (synchronized batch norm) through `ranks`, or per process (`None`);
    /// layers without batch statistics ignore it.
    fn set_sync(&mut self, ranks: Option<std::sync::Arc<dyn crate::Collective>>) {
        let _ = ranks;
    }
    /// The arithmetic of the layer's products ([`Precision`]): layers with
    /// bf16 kernels (Conv2D) keep it, the others compute in fp32 whatever
    /// it is. Set through [`Model::set_precision`](crate::Model::set_precision).
    fn set_precision(&mut self, precision: Precision) {
        let _ = precision;
    }
    /// Updates of a running statistic since the layer was built, for layers
    /// whose update depends on it (batch norm's bias-corrected moving
    /// averages); `None` for the others and once the statistic is loaded.
    fn update_count(&self) -> Option<u64> {
        None
    }
    /// Restores [`Layer::update_count`] (from a checkpoint), or marks the
    /// statistic as loaded (`None`).
    fn set_update_count(&mut self, count: Option<u64>) {
        let _ = count;
    }
    /// Parameters and state, in a fixed order.
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    /// Mutable parameters and state, in the same order as [`Layer::params`].
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
}

/// `[N] + shape`.
pub(crate) fn batched(n: usize, shape: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(shape.len() + 1);
    s.push(n);
    s.extend_from_slice(shape);
    s
}
