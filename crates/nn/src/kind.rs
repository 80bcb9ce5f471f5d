//! `LayerKind`: what a kind of layer says about itself, so that the rest of
//! the code asks the layer instead of matching on its name.
//!
//! Every variant of [`LayerSpec`](crate::LayerSpec) is registered with the
//! type that implements this trait for it (see `spec.rs`, one line per
//! kind); the model file, the summary, the notation, the explorer, surgery
//! and the executor's fusion all go through these methods.
//!
//! ```text
//! LayerSpec::Conv2D(c)  --layer_kind()-->  &dyn LayerKind (c: Conv2dConfig)
//!   name()            "Conv2D"                     the `type` in model files
//!   output_shape_of   [[28, 28, 1]] -> [28, 28, 32]
//!   param_counts      [28, 28, 1]   -> (5*5*1*32 + 32, 0)
//!   build             -> Box<dyn Layer>
//!   role()            Role::Filters                surgery, explain, fusion
//!   window()          kernel 5x5, stride 1, same   summary formula, receptive fields
//!   notation()        "32C5s"                      to_notation
//! ```

use crate::error::config_err;
use crate::layer::Layer;
use crate::{Activation, LayerSpec, Padding, Result, Rng};

/// What a layer computes, as far as code outside the layer needs to know
/// (where surgery may insert a batch norm, which pictures the explainer
/// draws, which neighbours the executor fuses).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Role {
    /// Learned filters slid over an image (Conv2D): a patch-matrix product.
    Filters,
    /// A learned product over the last axis (Dense).
    Product,
    /// A window reduced to one value per channel (max or average pooling).
    Pooling,
    /// All pixels reduced to one value per channel (global pooling).
    GlobalPooling,
    /// Per-channel normalization (batch norm): runs its inference form
    /// when frozen; the layer before it may apply it in its own pass.
    Normalization,
    /// A standalone elementwise activation.
    Activation(Activation),
    /// Several inputs combined into one (Add, Concatenate).
    Merge,
    /// Anything else (dropout, flatten, padding).
    Other,
}

impl Role {
    /// Its name for the explorer's page: `filters`, `product`, `pooling`,
    /// `global_pooling`, `normalization`, `activation`, `merge` or `other`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Filters => "filters",
            Role::Product => "product",
            Role::Pooling => "pooling",
            Role::GlobalPooling => "global_pooling",
            Role::Normalization => "normalization",
            Role::Activation(_) => "activation",
            Role::Merge => "merge",
            Role::Other => "other",
        }
    }
}

/// A sliding window over the two image axes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// `[height, width]` of the window.
    pub kernel: [usize; 2],
    /// Step `[vertical, horizontal]`.
    pub strides: [usize; 2],
    /// Spacing of the window's taps.
    pub dilation: [usize; 2],
    /// Padding rule.
    pub padding: Padding,
    /// Output size rounded up (PyTorch's `ceil_mode`).
    pub ceil_mode: bool,
}

/// Defaults the notation's parser gives the kind of a token.
#[derive(Clone, Copy, Debug)]
pub struct TokenContext {
    /// Padding of a conv token without `v`/`s`.
    pub conv_padding: Padding,
    /// Padding of a pool token without `s`.
    pub pool_padding: Padding,
    /// Activation of convs and hidden dense layers.
    pub activation: Activation,
    /// True for the net's last token (dense: softmax, or sigmoid for 1 unit).
    pub output: bool,
}

/// The behaviour of one kind of layer, implemented by its configuration.
pub trait LayerKind: Send + Sync {
    /// The Keras class name: the `type` of the layer in model files.
    fn name(&self) -> &'static str;

    /// Per-sample output shape for a per-sample input shape (pure; used by
    /// the summary and to fail before any allocation).
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// Output shape for the shapes of all its inputs; every kind but the
    /// merges takes exactly one.
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        match inputs {
            [x] => self.output_shape(x),
            _ => Err(config_err(
                self.name(),
                format!("takes exactly 1 input, found {}", inputs.len()),
            )),
        }
    }

    /// `(trainable, non_trainable)` parameter counts for an input shape,
    /// without building the layer.
    fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let _ = input;
        Ok((0, 0))
    }

    /// Builds the layer for the shapes of its inputs (checked first),
    /// drawing initial weights from `rng`.
    fn build(&self, inputs: &[&[usize]], rng: &mut Rng) -> Result<Box<dyn Layer>>;

    /// What it computes (see [`Role`]).
    fn role(&self) -> Role {
        Role::Other
    }

    /// True for a merge that sums its inputs elementwise (Add), which the
    /// layer before it may fold into its own pass.
    fn sums_inputs(&self) -> bool {
        false
    }

    /// Its sliding window, for kinds that have one (convolution, pooling).
    fn window(&self) -> Option<Window> {
        None
    }

    /// Rows and columns it adds before the image, `[top, left]`, for kinds
    /// that shift the image without a window (zero padding).
    fn offset(&self) -> Option<[usize; 2]> {
        None
    }

    /// The activation it applies in its own pass, if it has that setting.
    fn activation(&self) -> Option<Activation> {
        None
    }

    /// The same layer with its activation replaced; `None` for kinds
    /// without one.
    fn with_activation(&self, activation: Activation) -> Option<LayerSpec> {
        let _ = activation;
        None
    }

    /// Multiply-adds of one sample's forward pass.
    fn multiply_adds(&self, input: &[usize], output: &[usize]) -> u128 {
        let _ = (input, output);
        0
    }

    /// Elements of the largest temporary matrix one sample needs beyond
    /// its output (a convolution's patch matrix), for the memory estimate.
    fn scratch_elements(&self, input: &[usize], output: &[usize]) -> u128 {
        let _ = (input, output);
        0
    }

    /// The explainer's picture of its output maps: `(file stem, caption)`,
    /// for kinds whose maps are worth a picture.
    fn explain_maps(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    /// Its token in the compact notation, `None` when the notation cannot
    /// express it (or these settings).
    fn notation(&self) -> Option<String> {
        None
    }

    /// Parses its notation token: `None` when `token` is not this kind's,
    /// `Some(Err(why))` when it is but malformed.
    fn parse_token(
        token: &str,
        ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>>
    where
        Self: Sized,
    {
        let _ = (token, ctx);
        None
    }

    /// Why `fields` (a model file's settings of this kind, without `type`,
    /// `name`, `inputs` and `trainable`) do not parse, naming the field;
    /// `None` when they do.
    fn settings_error(fields: &serde_json::Value) -> Option<String>
    where
        Self: Sized;
}

/// [`LayerKind::settings_error`] for a kind whose settings are `T`.
pub fn settings_error_of<T: serde::de::DeserializeOwned>(
    fields: &serde_json::Value,
) -> Option<String> {
    match serde_path_to_error::deserialize::<_, T>(fields) {
        Ok(_) => None,
        Err(e) if e.path().to_string() == "." => Some(e.inner().to_string()),
        Err(e) => Some(format!("field '{}': {}", e.path(), e.inner())),
    }
}

/// A shape that keeps its input's, for kinds that change no shape.
pub(crate) fn same_shape(kind: &str, input: &[usize]) -> Result<Vec<usize>> {
    if input.is_empty() {
        return Err(config_err(kind, "needs a non-empty input shape"));
    }
    Ok(input.to_vec())
}

/// Builds a single-input kind after checking its shape rule.
pub(crate) fn single<L: Layer + 'static>(
    kind: &dyn LayerKind,
    inputs: &[&[usize]],
    build: impl FnOnce(&[usize]) -> Result<L>,
) -> Result<Box<dyn Layer>> {
    kind.output_shape_of(inputs)?;
    Ok(Box::new(build(inputs[0])?))
}
