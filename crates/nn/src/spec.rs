//! `LayerSpec`: the serializable description of any layer, and how to build
//! it for a given input shape.

use crate::error::config_err;
use crate::layer::Layer;
use crate::layers::activation::ActivationLayer;
use crate::layers::batch_norm::BatchNormConfig;
use crate::layers::conv2d::Conv2dConfig;
use crate::layers::dense::DenseConfig;
use crate::layers::dropout::DropoutConfig;
use crate::layers::flatten::Flatten;
use crate::layers::pooling::{image_shape, GlobalPool, Pool2d, PoolConfig, PoolKind};
use crate::layers::{merge, zero_padding};
use crate::{Result, Rng};
use convnet_tensor::activation::Activation;
use serde::{Deserialize, Serialize};

/// Any layer's configuration, tagged by its Keras class name in files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LayerSpec {
    /// 2-D convolution.
    Conv2D(Conv2dConfig),
    /// Fully connected layer.
    Dense(DenseConfig),
    /// Max pooling.
    MaxPooling2D(PoolConfig),
    /// Average pooling.
    AveragePooling2D(PoolConfig),
    /// Mean over all pixels of each channel.
    GlobalAveragePooling2D,
    /// Maximum over all pixels of each channel.
    GlobalMaxPooling2D,
    /// Batch normalization over channels.
    BatchNormalization(BatchNormConfig),
    /// Inverted dropout.
    Dropout(DropoutConfig),
    /// Flattening to `[N, features]`.
    Flatten,
    /// A standalone activation.
    Activation {
        /// The function.
        activation: Activation,
    },
    /// Zero rows and columns around each image.
    ZeroPadding2D {
        /// `[[top, bottom], [left, right]]`, as Keras's config.
        padding: [[usize; 2]; 2],
    },
    /// Elementwise sum of two or more inputs of one shape (a merge).
    Add,
    /// Concatenation of two or more inputs on the last (channel) axis (a merge).
    Concatenate,
}

fn checked(dims: &[usize]) -> Result<usize> {
    Ok(convnet_tensor::shape::checked_product(
        dims,
        "parameter count",
    )?)
}

/// `a + b` for parameter counts, an error instead of an overflow.
pub(crate) fn checked_sum(a: usize, b: usize) -> Result<usize> {
    a.checked_add(b).ok_or_else(|| {
        convnet_tensor::TensorError::Shape {
            op: "parameter count",
            msg: format!("{a} + {b} parameters do not fit in memory"),
        }
        .into()
    })
}

impl LayerSpec {
    /// The Keras class name.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv2D(_) => "Conv2D",
            LayerSpec::Dense(_) => "Dense",
            LayerSpec::MaxPooling2D(_) => "MaxPooling2D",
            LayerSpec::AveragePooling2D(_) => "AveragePooling2D",
            LayerSpec::GlobalAveragePooling2D => "GlobalAveragePooling2D",
            LayerSpec::GlobalMaxPooling2D => "GlobalMaxPooling2D",
            LayerSpec::BatchNormalization(_) => "BatchNormalization",
            LayerSpec::Dropout(_) => "Dropout",
            LayerSpec::Flatten => "Flatten",
            LayerSpec::Activation { .. } => "Activation",
            LayerSpec::ZeroPadding2D { .. } => "ZeroPadding2D",
            LayerSpec::Add => "Add",
            LayerSpec::Concatenate => "Concatenate",
        }
    }

    /// True for layers that take several inputs (Add, Concatenate).
    pub fn is_merge(&self) -> bool {
        matches!(self, LayerSpec::Add | LayerSpec::Concatenate)
    }

    /// Output shape for the per-sample shapes of all its inputs (merges
    /// take two or more, every other layer exactly one).
    pub fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        match self {
            LayerSpec::Add => merge::add_output_shape(inputs),
            LayerSpec::Concatenate => merge::concat_output_shape(inputs),
            _ => match inputs {
                [x] => self.output_shape(x),
                _ => Err(config_err(
                    self.kind(),
                    format!("takes exactly 1 input, found {}", inputs.len()),
                )),
            },
        }
    }

    /// Builds the layer for the per-sample shapes of all its inputs.
    pub fn build_of(&self, inputs: &[&[usize]], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        match self {
            LayerSpec::Add => Ok(Box::new(merge::Add::build(inputs)?)),
            LayerSpec::Concatenate => Ok(Box::new(merge::Concatenate::build(inputs)?)),
            _ => {
                self.output_shape_of(inputs)?;
                self.build(inputs[0], rng)
            }
        }
    }

    /// Per-sample output shape for a per-sample input shape (pure; used by
    /// the summary and to fail before any allocation).
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match self {
            LayerSpec::Conv2D(c) => c.output_shape(input),
            LayerSpec::Dense(d) => d.output_shape(input),
            LayerSpec::MaxPooling2D(p) | LayerSpec::AveragePooling2D(p) => p.output_shape(input),
            LayerSpec::GlobalAveragePooling2D | LayerSpec::GlobalMaxPooling2D => {
                let [_, _, c] = image_shape(self.kind(), input)?;
                Ok(vec![c])
            }
            LayerSpec::Flatten => Ok(vec![convnet_tensor::shape::checked_product(
                input, "Flatten",
            )?]),
            LayerSpec::Dropout(d) => {
                if !(0.0..1.0).contains(&d.rate) {
                    return Err(config_err(
                        "Dropout",
                        format!("rate must be in [0, 1), found {}", d.rate),
                    ));
                }
                Ok(input.to_vec())
            }
            LayerSpec::ZeroPadding2D { padding } => zero_padding::output_shape(*padding, input),
            LayerSpec::Add | LayerSpec::Concatenate => self.output_shape_of(&[input]),
            LayerSpec::BatchNormalization(_) | LayerSpec::Activation { .. } => {
                if input.is_empty() {
                    return Err(config_err(self.kind(), "needs a non-empty input shape"));
                }
                Ok(input.to_vec())
            }
        }
    }

    /// `(trainable, non_trainable)` parameter counts for an input shape,
    /// computed without building the layer.
    /// Their sum is checked to fit in a `usize` too.
    pub fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let last = input.last().copied().unwrap_or(0);
        let counts = match self {
            LayerSpec::Conv2D(c) => {
                let [_, _, ch] = image_shape("Conv2D", input)?;
                let k = checked(&[c.kernel_size[0], c.kernel_size[1], ch, c.filters])?;
                (checked_sum(k, if c.use_bias { c.filters } else { 0 })?, 0)
            }
            LayerSpec::Dense(d) => (
                checked_sum(
                    checked(&[last, d.units])?,
                    if d.use_bias { d.units } else { 0 },
                )?,
                0,
            ),
            LayerSpec::BatchNormalization(b) => (
                checked(&[last, b.center as usize + b.scale as usize])?,
                checked(&[last, 2])?,
            ),
            _ => (0, 0),
        };
        checked_sum(counts.0, counts.1)?;
        Ok(counts)
    }

    /// Builds the layer for a per-sample input shape, drawing initial
    /// weights from `rng`.
    pub fn build(&self, input: &[usize], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        Ok(match self {
            LayerSpec::Conv2D(c) => Box::new(c.build(input, rng)?),
            LayerSpec::Dense(d) => Box::new(d.build(input, rng)?),
            LayerSpec::MaxPooling2D(p) => Box::new(Pool2d::build(PoolKind::Max, p, input)?),
            LayerSpec::AveragePooling2D(p) => Box::new(Pool2d::build(PoolKind::Average, p, input)?),
            LayerSpec::GlobalAveragePooling2D => {
                Box::new(GlobalPool::build(PoolKind::Average, input)?)
            }
            LayerSpec::GlobalMaxPooling2D => Box::new(GlobalPool::build(PoolKind::Max, input)?),
            LayerSpec::BatchNormalization(b) => Box::new(b.build(input)?),
            LayerSpec::Dropout(d) => Box::new(d.build(input)?),
            LayerSpec::Flatten => Box::new(Flatten::build(input)),
            LayerSpec::Activation { activation } => {
                self.output_shape(input)?;
                Box::new(ActivationLayer::build(*activation, input))
            }
            LayerSpec::ZeroPadding2D { padding } => {
                Box::new(zero_padding::ZeroPadding2d::build(*padding, input)?)
            }
            LayerSpec::Add | LayerSpec::Concatenate => return self.build_of(&[input], rng),
        })
    }
}

/// The first layer of a model file (as JSON, TOML converted) that does not
/// parse, with the field at fault: `layer 1 (Dense), field 'units':
/// invalid type: string "ten", expected usize`. serde's error for an
/// internally tagged enum names neither; this re-reads the layer as its
/// own config type to find them. `None` when every layer parses.
pub fn explain_layer_error(model: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let layers = model.get("layers")?.as_array()?;
    for (i, layer) in layers.iter().enumerate() {
        if serde_json::from_value::<crate::Node>(layer.clone()).is_ok() {
            continue;
        }
        let Some(map) = layer.as_object() else {
            return Some(format!(
                "layer {i}: expected a table of settings, found {layer}"
            ));
        };
        let kind = match map.get("type") {
            Some(Value::String(k)) => k.clone(),
            Some(other) => {
                return Some(format!(
                    "layer {i}, field 'type': expected a layer name, found {other}"
                ))
            }
            None => {
                return Some(format!(
                    "layer {i}: missing field 'type' (Conv2D, Dense, MaxPooling2D, ...)"
                ))
            }
        };
        let mut fields = map.clone();
        for k in ["type", "name", "inputs", "trainable"] {
            fields.remove(k);
        }
        let fields = Value::Object(fields);
        fn check<T: serde::de::DeserializeOwned>(v: &Value) -> Option<String> {
            match serde_path_to_error::deserialize::<_, T>(v) {
                Ok(_) => None,
                Err(e) if e.path().to_string() == "." => Some(e.inner().to_string()),
                Err(e) => Some(format!("field '{}': {}", e.path(), e.inner())),
            }
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Padding {
            padding: [[usize; 2]; 2],
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Act {
            activation: convnet_tensor::activation::Activation,
        }
        let why = match kind.as_str() {
            "Conv2D" => check::<crate::Conv2dConfig>(&fields),
            "Dense" => check::<crate::DenseConfig>(&fields),
            "MaxPooling2D" | "AveragePooling2D" => check::<crate::PoolConfig>(&fields),
            "BatchNormalization" => check::<crate::BatchNormConfig>(&fields),
            "Dropout" => check::<crate::DropoutConfig>(&fields),
            "ZeroPadding2D" => check::<Padding>(&fields),
            "Activation" => check::<Act>(&fields),
            "Flatten" | "Add" | "Concatenate" | "GlobalAveragePooling2D" | "GlobalMaxPooling2D" => {
                None
            }
            other => Some(format!("field 'type': unknown layer '{other}'")),
        };
        let base = format!("layer {i} ({kind})");
        return Some(match why {
            Some(w) if w.starts_with("field") => format!("{base}, {w}"),
            Some(w) => format!("{base}: {w}"),
            None => {
                // The settings parse alone: the node's own fields are at fault.
                let e = serde_json::from_value::<crate::Node>(layer.clone()).err()?;
                format!("{base}: {e}")
            }
        });
    }
    None
}
