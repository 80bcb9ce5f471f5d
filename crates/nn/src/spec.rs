//! `LayerSpec`: the serializable description of any layer, and the
//! registry of layer kinds.
//!
//! Each kind is one line of [`registry!`] below: its variant (the `type` in
//! model files) and the type implementing [`LayerKind`] for it, which lives
//! in the layer's own file. Everything else asks the kind
//! ([`LayerSpec::layer_kind`]); nothing outside tests matches on the
//! variants to decide behaviour.

use crate::kind::{LayerKind, TokenContext};
use crate::layer::Layer;
use crate::layers::activation::ActivationSpec;
use crate::layers::channel_shuffle::ChannelShuffleSpec;
use crate::layers::channel_slice::ChannelSliceSpec;
use crate::layers::flatten::FlattenSpec;
use crate::layers::merge::{AddSpec, ConcatenateSpec};
use crate::layers::multiply::MultiplySpec;
use crate::layers::pooling::{AveragePooling, GlobalAveragePooling, GlobalMaxPooling, MaxPooling};
use crate::layers::stochastic_depth::StochasticDepthSpec;
use crate::layers::zero_padding::ZeroPaddingSpec;
use crate::{
    BatchNormConfig, Conv2dConfig, DenseConfig, DepthwiseConv2dConfig, DropoutConfig, PoolConfig,
    SeparableConv2dConfig,
};
use crate::{Result, Rng};
use convnet_tensor::activation::Activation;
use ref_cast::RefCast;
use serde::{Deserialize, Serialize};

/// Builds [`LayerSpec`], [`LayerSpec::layer_kind`], the settings check and
/// the token parser from one line per kind, in the order the notation tries
/// tokens:
///
/// ```text
/// Variant(Settings);                  settings type implements LayerKind
/// Variant(Settings) as Kind;          Kind: #[repr(transparent)] over Settings
/// Variant as Kind;                    no settings; Kind a unit struct
/// Variant { field: T } as Kind;       Kind: #[repr(transparent)] over T
/// ```
macro_rules! registry {
    (@go [$($var:tt)*] [$($arm:tt)*] [$($kind:ty => $name:ident),*]) => {
        /// Any layer's configuration, tagged by its Keras class name in files.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum LayerSpec { $($var)* }

        impl LayerSpec {
            /// What this kind of layer says about itself.
            pub fn layer_kind(&self) -> &dyn LayerKind {
                match self { $($arm)* }
            }
        }

        /// Every kind's name in model files, in registry order.
        pub const KIND_NAMES: &[&str] = &[$(stringify!($name)),*];

        /// The first kind whose notation token `token` is (see
        /// [`LayerKind::parse_token`]).
        pub(crate) fn parse_token(
            token: &str,
            ctx: &TokenContext,
        ) -> Option<std::result::Result<LayerSpec, String>> {
            $(if let Some(r) = <$kind as LayerKind>::parse_token(token, ctx) {
                return Some(r);
            })*
            None
        }

        /// [`LayerKind::settings_error`] of the kind named `name`; `None`
        /// for an unknown name.
        fn settings_error(name: &str, fields: &serde_json::Value) -> Option<Option<String>> {
            $(if name == stringify!($name) {
                return Some(<$kind as LayerKind>::settings_error(fields));
            })*
            None
        }
    };
    (@go [$($var:tt)*] [$($arm:tt)*] [$($kind:ty => $name:ident),*]
        $(#[$m:meta])* $v:ident($t:ty) as $k:ty; $($rest:tt)*) => {
        registry!(@go [$($var)* $(#[$m])* $v($t),]
            [$($arm)* LayerSpec::$v(c) => <$k as RefCast>::ref_cast(c),]
            [$($kind => $name,)* $k => $v] $($rest)*);
    };
    (@go [$($var:tt)*] [$($arm:tt)*] [$($kind:ty => $name:ident),*]
        $(#[$m:meta])* $v:ident($t:ty); $($rest:tt)*) => {
        registry!(@go [$($var)* $(#[$m])* $v($t),]
            [$($arm)* LayerSpec::$v(c) => c,]
            [$($kind => $name,)* $t => $v] $($rest)*);
    };
    (@go [$($var:tt)*] [$($arm:tt)*] [$($kind:ty => $name:ident),*]
        $(#[$m:meta])* $v:ident { $(#[$fm:meta])* $f:ident: $ft:ty } as $k:ty;
        $($rest:tt)*) => {
        registry!(@go [$($var)* $(#[$m])* $v { $(#[$fm])* $f: $ft },]
            [$($arm)* LayerSpec::$v { $f } => <$k as RefCast>::ref_cast($f),]
            [$($kind => $name,)* $k => $v] $($rest)*);
    };
    (@go [$($var:tt)*] [$($arm:tt)*] [$($kind:ty => $name:ident),*]
        $(#[$m:meta])* $v:ident as $k:ident; $($rest:tt)*) => {
        registry!(@go [$($var)* $(#[$m])* $v,]
            [$($arm)* LayerSpec::$v => &$k,]
            [$($kind => $name,)* $k => $v] $($rest)*);
    };
    ($($t:tt)*) => { registry!(@go [] [] [] $($t)*); };
}

registry! {
    /// Fully connected layer.
    Dense(DenseConfig);
    /// Batch normalization over channels.
    BatchNormalization(BatchNormConfig);
    /// Flattening to `[N, features]`.
    Flatten as FlattenSpec;
    /// Mean over all pixels of each channel.
    GlobalAveragePooling2D as GlobalAveragePooling;
    /// Maximum over all pixels of each channel.
    GlobalMaxPooling2D as GlobalMaxPooling;
    /// Depthwise 2-D convolution (before Dropout: its tokens start with D too).
    DepthwiseConv2D(DepthwiseConv2dConfig);
    /// Inverted dropout.
    Dropout(DropoutConfig);
    /// A residual branch dropped per sample in training (drop path).
    StochasticDepth {
        /// Probability that a sample's branch is dropped.
        rate: f32
    } as StochasticDepthSpec;
    /// Depthwise then pointwise convolution (before Conv2D: its tokens have a C too).
    SeparableConv2D(SeparableConv2dConfig);
    /// 2-D convolution.
    Conv2D(Conv2dConfig);
    /// Max pooling.
    MaxPooling2D(PoolConfig) as MaxPooling;
    /// Average pooling.
    AveragePooling2D(PoolConfig) as AveragePooling;
    /// A standalone activation.
    Activation {
        /// The function.
        activation: Activation
    } as ActivationSpec;
    /// Zero rows and columns around each image.
    ZeroPadding2D {
        /// `[[top, bottom], [left, right]]`, as Keras's config.
        padding: [[usize; 2]; 2]
    } as ZeroPaddingSpec;
    /// Elementwise sum of two or more inputs of one shape (a merge).
    Add as AddSpec;
    /// Concatenation of two or more inputs on the last (channel) axis (a merge).
    Concatenate as ConcatenateSpec;
    /// Elementwise product of two or more inputs, or of a map and a vector
    /// of its channels (a merge; squeeze-and-excitation's gate).
    Multiply as MultiplySpec;
    /// ShuffleNet's interleaving of channel groups.
    ChannelShuffle {
        /// Number of groups interleaved.
        groups: usize
    } as ChannelShuffleSpec;
    /// A contiguous range of channels (one part of a split).
    ChannelSlice {
        /// `[start, end)`.
        channels: [usize; 2]
    } as ChannelSliceSpec;
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

/// A product of dimensions as a parameter count, an error on overflow.
pub(crate) fn checked_count(dims: &[usize]) -> Result<usize> {
    Ok(convnet_tensor::shape::checked_product(
        dims,
        "parameter count",
    )?)
}

impl LayerSpec {
    /// The Keras class name.
    pub fn kind(&self) -> &'static str {
        self.layer_kind().name()
    }

    /// True for layers that take several inputs (Add, Concatenate).
    pub fn is_merge(&self) -> bool {
        self.layer_kind().role() == crate::kind::Role::Merge
    }

    /// Output shape for the per-sample shapes of all its inputs (merges
    /// take two or more, every other layer exactly one).
    pub fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        self.layer_kind().output_shape_of(inputs)
    }

    /// Builds the layer for the per-sample shapes of all its inputs.
    pub fn build_of(&self, inputs: &[&[usize]], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        self.layer_kind().build(inputs, rng)
    }

    /// Per-sample output shape for a per-sample input shape (pure; used by
    /// the summary and to fail before any allocation).
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.layer_kind().output_shape(input)
    }

    /// `(trainable, non_trainable)` parameter counts for an input shape,
    /// computed without building the layer.
    /// Their sum is checked to fit in a `usize` too.
    pub fn param_counts(&self, input: &[usize]) -> Result<(usize, usize)> {
        let counts = self.layer_kind().param_counts(input)?;
        checked_sum(counts.0, counts.1)?;
        Ok(counts)
    }

    /// Builds the layer for a per-sample input shape, drawing initial
    /// weights from `rng`.
    pub fn build(&self, input: &[usize], rng: &mut Rng) -> Result<Box<dyn Layer>> {
        self.build_of(&[input], rng)
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
        let why = match settings_error(&kind, &fields) {
            Some(why) => why,
            None => Some(format!("field 'type': unknown layer '{kind}'")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{Role, TokenContext};
    use crate::Padding;

    /// One settings value of every kind, in registry order.
    fn samples() -> Vec<LayerSpec> {
        let relu = Activation::Relu;
        let all = vec![
            LayerSpec::Dense(DenseConfig::new(10).with_activation(relu)),
            LayerSpec::BatchNormalization(BatchNormConfig::new()),
            LayerSpec::Flatten,
            LayerSpec::GlobalAveragePooling2D,
            LayerSpec::GlobalMaxPooling2D,
            LayerSpec::DepthwiseConv2D(
                DepthwiseConv2dConfig::new(3)
                    .with_depth_multiplier(2)
                    .with_padding(Padding::Same)
                    .with_activation(relu),
            ),
            LayerSpec::Dropout(DropoutConfig::new(0.25)),
            LayerSpec::StochasticDepth { rate: 0.125 },
            LayerSpec::SeparableConv2D(
                SeparableConv2dConfig::new(16, 3)
                    .with_padding(Padding::Same)
                    .with_activation(relu),
            ),
            LayerSpec::Conv2D(
                Conv2dConfig::new(32, 3)
                    .with_stride(2)
                    .with_padding(Padding::Same)
                    .with_activation(relu),
            ),
            LayerSpec::MaxPooling2D(PoolConfig::new(2)),
            LayerSpec::AveragePooling2D(PoolConfig::new(3).with_stride(2)),
            LayerSpec::Activation { activation: relu },
            LayerSpec::ZeroPadding2D {
                padding: [[1, 2], [3, 4]],
            },
            LayerSpec::Add,
            LayerSpec::Concatenate,
            LayerSpec::Multiply,
            LayerSpec::ChannelShuffle { groups: 2 },
            LayerSpec::ChannelSlice { channels: [1, 3] },
        ];
        // A new variant fails to compile here until it has a sample.
        for spec in &all {
            match spec {
                LayerSpec::Dense(_)
                | LayerSpec::BatchNormalization(_)
                | LayerSpec::Flatten
                | LayerSpec::GlobalAveragePooling2D
                | LayerSpec::GlobalMaxPooling2D
                | LayerSpec::DepthwiseConv2D(_)
                | LayerSpec::Dropout(_)
                | LayerSpec::StochasticDepth { .. }
                | LayerSpec::SeparableConv2D(_)
                | LayerSpec::Conv2D(_)
                | LayerSpec::MaxPooling2D(_)
                | LayerSpec::AveragePooling2D(_)
                | LayerSpec::Activation { .. }
                | LayerSpec::ZeroPadding2D { .. }
                | LayerSpec::Add
                | LayerSpec::Concatenate
                | LayerSpec::Multiply
                | LayerSpec::ChannelShuffle { .. }
                | LayerSpec::ChannelSlice { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_kind_answers_to_its_name_in_files() {
        let all = samples();
        let names: Vec<&str> = all.iter().map(LayerSpec::kind).collect();
        assert_eq!(names, KIND_NAMES);
        for spec in &all {
            let value = serde_json::to_value(spec).unwrap();
            assert_eq!(value["type"], spec.kind(), "{spec:?}");
            let mut fields = value.as_object().unwrap().clone();
            fields.remove("type");
            let fields = serde_json::Value::Object(fields);
            assert_eq!(settings_error(spec.kind(), &fields), Some(None), "{spec:?}");
            assert_eq!(serde_json::from_value::<LayerSpec>(value).unwrap(), *spec);
        }
        assert_eq!(settings_error("Conv3D", &serde_json::json!({})), None);
    }

    #[test]
    fn relu6_is_named_as_keras_names_it_in_files() {
        let spec = LayerSpec::Activation {
            activation: Activation::Relu6,
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["activation"]["name"], "relu6");
        assert_eq!(serde_json::from_value::<LayerSpec>(json).unwrap(), spec);
    }

    #[test]
    fn settings_errors_name_the_field_of_each_kind() {
        let bad = |kind: &str, fields: serde_json::Value| {
            settings_error(kind, &fields)
                .expect("a known kind")
                .expect("an error")
        };
        assert!(bad("Dense", serde_json::json!({"units": "ten"})).starts_with("field 'units'"));
        assert!(bad(
            "Conv2D",
            serde_json::json!({"filters": 3, "kernel_size": 3})
        )
        .starts_with("field 'kernel_size'"));
        assert!(bad("Dropout", serde_json::json!({})).contains("rate"));
        assert!(bad(
            "ZeroPadding2D",
            serde_json::json!({"padding": [[1, 1], [1, 1]], "x": 1})
        )
        .contains("x"));
        assert!(
            bad("Activation", serde_json::json!({"activation": "swoosh"}))
                .starts_with("field 'activation'")
        );
    }

    #[test]
    fn notation_tokens_parse_back_to_the_same_layer() {
        let ctx = TokenContext {
            conv_padding: Padding::Valid,
            pool_padding: Padding::Valid,
            activation: Activation::Relu,
            output: false,
        };
        let mut said = 0;
        for spec in samples() {
            let Some(token) = spec.layer_kind().notation() else {
                continue;
            };
            said += 1;
            assert_eq!(parse_token(&token, &ctx), Some(Ok(spec.clone())), "{token}");
        }
        assert_eq!(
            said, 12,
            "Activation, ZeroPadding2D, the merges and the channel ops have no token"
        );
        assert_eq!(parse_token("Q7", &ctx), None);
        assert!(matches!(parse_token("D1.5", &ctx), Some(Err(_))));
    }

    #[test]
    fn roles_and_windows_are_the_layers_own() {
        let role = |s: &LayerSpec| s.layer_kind().role();
        let all = samples();
        let roles: Vec<Role> = all.iter().map(role).collect();
        assert_eq!(
            roles,
            [
                Role::Product,
                Role::Normalization,
                Role::Other,
                Role::GlobalPooling,
                Role::GlobalPooling,
                Role::Filters,
                Role::Other,
                Role::Other,
                Role::Filters,
                Role::Filters,
                Role::Pooling,
                Role::Pooling,
                Role::Activation(Activation::Relu),
                Role::Other,
                Role::Merge,
                Role::Merge,
                Role::Merge,
                Role::Other,
                Role::Other,
            ]
        );
        let windowed: Vec<&str> = all
            .iter()
            .filter(|s| s.layer_kind().window().is_some())
            .map(LayerSpec::kind)
            .collect();
        assert_eq!(
            windowed,
            [
                "DepthwiseConv2D",
                "SeparableConv2D",
                "Conv2D",
                "MaxPooling2D",
                "AveragePooling2D"
            ]
        );
        let w = all[11].layer_kind().window().unwrap();
        assert_eq!((w.kernel, w.strides), ([3, 3], [2, 2]));
        // A 3x3 conv on 8x8x4 with stride 2, same: 4x4x32 outputs of 3*3*4 products each.
        let conv = all[9].layer_kind();
        assert_eq!(conv.multiply_adds(&[8, 8, 4], &[4, 4, 32]), 4 * 4 * 32 * 36);
        assert_eq!(conv.scratch_elements(&[8, 8, 4], &[4, 4, 32]), 4 * 4 * 36);
        // A 3x3 depthwise conv with multiplier 2: 3*3 products per output.
        let depthwise = all[5].layer_kind();
        assert_eq!(
            depthwise.multiply_adds(&[8, 8, 4], &[8, 8, 8]),
            8 * 8 * 8 * 9
        );
        // A 3x3 separable conv to 16 filters: 3*3 products per depthwise
        // output, then 4 per pointwise output.
        let separable = all[8].layer_kind();
        assert_eq!(
            separable.multiply_adds(&[8, 8, 4], &[8, 8, 16]),
            8 * 8 * 4 * 9 + 8 * 8 * 16 * 4
        );
        let relu = all[12].layer_kind();
        assert_eq!(
            relu.with_activation(Activation::Linear),
            Some(LayerSpec::Activation {
                activation: Activation::Linear
            })
        );
        assert_eq!(all[2].layer_kind().with_activation(Activation::Relu), None);
    }
}
