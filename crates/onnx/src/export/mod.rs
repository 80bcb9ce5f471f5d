//! Model -> ONNX (opset 13).
//!
//! Layout: the exported graph is channel-first, as ONNX's `Conv` requires:
//! input `[N, C, H, W]` (or `[N, F]` for a flat input), every image-shaped
//! value `NCHW`. Our tensors are `NHWC`, so the weights are converted:
//!
//! ```text
//! Conv2D kernel [KH, KW, C, F] (HWIO)  ->  W [F, C, KH, KW] (OIHW)
//! Dense kernel  [IN, UNITS]            ->  Gemm B [UNITS, IN], transB = 1
//! Dense on an image (per pixel)        ->  1x1 Conv
//! Flatten of [H, W, C] (H*W > 1)       ->  Transpose(0, 2, 3, 1) + Flatten
//! ```
//!
//! The transpose before a flatten keeps our `H, W, C` order of the flat
//! vector, so the following Dense's rows stay as they are, whatever reads
//! the flat vector. Padding becomes explicit `pads`; fused activations
//! become their own nodes; Concatenate joins on axis 1 (channels).

use crate::proto::*;
use crate::{OnnxError, Result};
use convnet_nn::save::write_atomic;
use convnet_nn::{Activation, Model, Padding, Source, Tensor, INPUT};
use layers::Node;
use prost::Message;
use std::path::Path;

mod layers;

/// The opset written.
pub const OPSET: i64 = 13;
/// IR version 7 is the one that goes with opset 13.
const IR_VERSION: i64 = 7;

/// Nodes and weights as they are emitted.
#[derive(Default)]
struct Emitter {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    dropout_rates: Vec<(String, f32)>,
    /// StochasticDepth nodes (Identity in ONNX) and their rates.
    drop_paths: Vec<(String, f32)>,
}

/// Metadata key prefix of a frozen node (`trainable: false`).
pub const FROZEN: &str = "convnet.frozen.";

/// Metadata key prefix of a Dropout node's rate.
pub const DROPOUT_RATE: &str = "convnet.dropout_rate.";

/// Metadata key prefix of a StochasticDepth node's rate (the node is an
/// `Identity`: inference).
pub const STOCHASTIC_DEPTH: &str = "convnet.stochastic_depth.";

impl Emitter {
    /// Adds a node named after its output; returns the output's name.
    fn node(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        output: String,
        attribute: Vec<AttributeProto>,
    ) -> String {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// Adds an f32 initializer; returns its name.
    fn weight(&mut self, name: String, dims: &[usize], data: &[f32]) -> String {
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds an int64 initializer; returns its name.
    fn ints(&mut self, name: String, data: &[i64]) -> String {
        self.inits.push(TensorProto {
            dims: vec![data.len() as i64],
            data_type: INT64,
            name: name.clone(),
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// An op with a fused activation: the op, then the activation as its
    /// own node (the op's output named `{name}/linear`), unless it is linear.
    fn fused(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        attrs: Vec<AttributeProto>,
        a: Activation,
        name: String,
    ) {
        if a == Activation::Linear {
            self.node(op, inputs, name, attrs);
        } else {
            // The op keeps the layer's name (the importer fuses the activation
            // back into it under that name); its output is `{name}/linear`.
            let y = self.node(op, inputs, format!("{name}/linear"), attrs);
            self.nodes.last_mut().expect("just added").name = name.clone();
            self.activation(a, y, name.clone());
            self.nodes.last_mut().expect("just added").name = format!("{name}/activation");
        }
    }

    /// `act(x)` as its own node, or `x` itself for a linear activation.
    fn activation(&mut self, a: Activation, x: String, output: String) -> String {
        let (op, attrs) = match a {
            // Opset 13's Clip takes its bounds as inputs.
            Activation::Relu6 => {
                let lo = self.weight(format!("{output}/min"), &[], &[0.0]);
                let hi = self.weight(format!("{output}/max"), &[], &[6.0]);
                return self.node("Clip", vec![x, lo, hi], output, vec![]);
            }
            // Opset 13 has no SiLU: x * Sigmoid(x), as PyTorch writes it.
            Activation::Swish => {
                let s = self.node(
                    "Sigmoid",
                    vec![x.clone()],
                    format!("{output}/sigmoid"),
                    vec![],
                );
                return self.node("Mul", vec![x, s], output, vec![]);
            }
            Activation::Linear => ("Identity", vec![]),
            Activation::Relu => ("Relu", vec![]),
            Activation::Sigmoid => ("Sigmoid", vec![]),
            Activation::Tanh => ("Tanh", vec![]),
            // Over the channels: the last axis of ours, axis 1 of NCHW / [N, F].
            Activation::Softmax => ("Softmax", vec![int("axis", 1)]),
            Activation::LeakyRelu { alpha } => ("LeakyRelu", vec![float("alpha", alpha)]),
            Activation::Elu { alpha } => ("Elu", vec![float("alpha", alpha)]),
        };
        self.node(op, vec![x], output, attrs)
    }
}

pub(crate) fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: v,
        ..Default::default()
    }
}

pub(crate) fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: v,
        ..Default::default()
    }
}

pub(crate) fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

pub(crate) fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::STRING,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// ONNX `pads` `[top, left, bottom, right]` of one window op: explicit as
/// given; `same` as Keras pads (the odd pixel bottom/right); `valid` none.
pub(crate) fn pads(
    padding: Padding,
    input: [usize; 2],
    output: [usize; 2],
    span: [usize; 2],
    stride: [usize; 2],
) -> Vec<usize> {
    match padding {
        Padding::Valid => vec![0; 4],
        Padding::Explicit([t, b, l, r]) => vec![t, l, b, r],
        Padding::Same => {
            let total = |a: usize| ((output[a] - 1) * stride[a] + span[a]).saturating_sub(input[a]);
            let (th, tw) = (total(0), total(1));
            vec![th / 2, tw / 2, th - th / 2, tw - tw / 2]
        }
    }
}

/// `[KH, KW, C, F]` -> `[F, C, KH, KW]`.
pub(crate) fn hwio_to_oihw(k: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let s = k.shape();
    let (kh, kw, c, f) = (s[0], s[1], s[2], s[3]);
    let src = k.data();
    let mut out = vec![0.0; src.len()];
    for y in 0..kh {
        for x in 0..kw {
            for ci in 0..c {
                for fi in 0..f {
                    out[((fi * c + ci) * kh + y) * kw + x] = src[((y * kw + x) * c + ci) * f + fi];
                }
            }
        }
    }
    (vec![f, c, kh, kw], out)
}

/// `[R, C]` -> `[C, R]`.
pub(crate) fn transpose2(k: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let (r, c) = (k.shape()[0], k.shape()[1]);
    let src = k.data();
    let mut out = vec![0.0; src.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = src[i * c + j];
        }
    }
    (vec![c, r], out)
}

/// The ONNX value type of a per-sample shape, with a symbolic batch `N`.
fn value_info(name: &str, per_sample: &[usize]) -> ValueInfoProto {
    let nchw: Vec<usize> = match per_sample {
        [h, w, c] => vec![*c, *h, *w],
        other => other.to_vec(),
    };
    let mut dim = vec![Dimension {
        value: Some(DimValue::DimParam("N".into())),
    }];
    dim.extend(nchw.iter().map(|&d| Dimension {
        value: Some(DimValue::DimValue(d as i64)),
    }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        ..Default::default()
    }
}

/// The model as an ONNX graph (opset 13, input `NCHW`).
pub fn to_onnx(model: &Model) -> Result<ModelProto> {
    let spec = model.spec();
    let wiring = model.wiring();
    let shapes = spec.output_shapes()?;
    let shape_of = |s: Source| -> &[usize] {
        match s {
            Source::Input => &spec.input_shape,
            Source::Node(i) => &shapes[i],
        }
    };
    let value = |s: Source| -> String { wiring.source_name(s).to_string() };
    let mut e = Emitter::default();
    for (i, node) in spec.layers.iter().enumerate() {
        let name = wiring.names[i].clone();
        let ins: Vec<String> = wiring.inputs[i].iter().map(|&s| value(s)).collect();
        let in_shape = shape_of(wiring.inputs[i][0]);
        let kind = node.layer.kind();
        let export = layers::exporter(kind).ok_or_else(|| OnnxError::Malformed {
            path: "model".into(),
            msg: format!("layer {i} '{name}' ({kind}) has no ONNX mapping"),
        })?;
        let layer = Node {
            model,
            index: i,
            spec: &node.layer,
            in_shape,
            in_shapes: wiring.inputs[i].iter().map(|&s| shape_of(s)).collect(),
            out_shape: &shapes[i],
            inputs: ins,
            name,
        };
        export(&mut e, layer)?;
    }
    let last = spec
        .layers
        .len()
        .checked_sub(1)
        .ok_or_else(|| OnnxError::Malformed {
            path: "model".into(),
            msg: "the model has no layers".into(),
        })?;
    let mut metadata_props = vec![StringStringEntryProto {
        key: "convnet.input_layout".into(),
        value: "NCHW".into(),
    }];
    metadata_props.extend(e.dropout_rates.iter().map(|(n, r)| StringStringEntryProto {
        key: format!("{DROPOUT_RATE}{n}"),
        value: r.to_string(),
    }));
    metadata_props.extend(e.drop_paths.iter().map(|(n, r)| StringStringEntryProto {
        key: format!("{STOCHASTIC_DEPTH}{n}"),
        value: r.to_string(),
    }));
    for (i, node) in spec.layers.iter().enumerate() {
        if !node.trainable {
            metadata_props.push(StringStringEntryProto {
                key: format!("{FROZEN}{}", wiring.names[i]),
                value: "true".into(),
            });
        }
    }
    let graph = GraphProto {
        node: e.nodes,
        name: "convnet".into(),
        initializer: e.inits,
        input: vec![value_info(INPUT, &spec.input_shape)],
        output: vec![value_info(&wiring.names[last], &shapes[last])],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "convnet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props,
        ..Default::default()
    })
}

/// Writes `model` to `path` as ONNX, atomically.
pub fn export(model: &Model, path: &Path) -> Result<()> {
    let bytes = to_onnx(model)?.encode_to_vec();
    write_atomic(path, &bytes)?;
    Ok(())
}
