//! ONNX -> Model.
//!
//! The graph is walked once, in its (topological) node order. Every ONNX
//! value maps to a [`Val`]: the convnet node that computes it and how the
//! ONNX tensor is laid out relative to ours:
//!
//! ```text
//! Nchw    ONNX [N, C, H, W]   ours [N, H, W, C]   (convs, pools, BN)
//! Nhwc    ONNX [N, H, W, C]   ours the same       (tf2onnx inputs, after Transpose(0,2,3,1))
//! Flat    ONNX [N, F]         ours [N, F], in `perm` order when a
//!                             channel-first Flatten made it (see below)
//! Pooled  ONNX [N, C, 1, 1]   ours [N, C]         (after global pooling)
//! Grouped ONNX [N, G, C/G, H, W] ours [N, H, W, C] (a channel shuffle's first
//!         Reshape; `swapped` after its Transpose to [N, C/G, G, H, W])
//! ```
//!
//! Layout changes (`Transpose`, a flatten of a pooled value) cost no node.
//! A Flatten of an `Nchw` value orders features `c, y, x`; ours orders them
//! `y, x, c`, so the value carries that permutation until a Gemm / MatMul
//! reads it, whose rows are then permuted: `row_ours(y, x, c) =
//! row_onnx(c, y, x)`. Elementwise ops and Dropout pass it through.
//!
//! Weights: Conv `W [F, C, KH, KW]` becomes `[KH, KW, C, F]`; Gemm's `B`
//! becomes `[IN, UNITS]` (transposed when `transB = 1`, times `alpha`).
//! Activations fuse into the Conv / Dense before them when nothing else
//! reads that layer's output; `MatMul` + `Add(bias)` become one Dense; a
//! `Pad` read only by a Conv folds into its padding, otherwise it becomes
//! a ZeroPadding2D.

use crate::proto::{self, attribute_type, AttributeProto, ModelProto, NodeProto, TensorProto};
use crate::{OnnxError, Result};
use convnet_nn::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, DepthwiseConv2dConfig, DropoutConfig,
    LayerSpec, Model, ModelSpec, Node, Padding, PoolConfig, Role, Source, Tensor, INPUT,
};
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// How an ONNX value is laid out relative to our tensor (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Nchw,
    Nhwc,
    Flat,
    Pooled,
    /// NCHW with the channels split into `groups` (axes 1, 2; swapped
    /// after a Transpose of them).
    Grouped {
        groups: usize,
        swapped: bool,
    },
}

/// An ONNX value as convnet computes it.
#[derive(Clone, Debug)]
struct Val {
    src: Source,
    layout: Layout,
    /// Our per-sample shape.
    shape: Vec<usize>,
    /// A flat value in channel-first order: the `[H, W, C]` it came from.
    perm: Option<[usize; 3]>,
    /// Zero padding `[top, bottom, left, right]` not yet applied.
    pad: Option<[usize; 4]>,
}

/// One entry of a shape computed in the graph (`Shape` -> `Gather` ->
/// `Concat` -> `Reshape`, as tf2onnx and older PyTorch exports flatten).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dim {
    /// The batch size, unknown until run time.
    Batch,
    /// A known size.
    Int(i64),
}

/// A constant tensor: f32 data or integers.
#[derive(Clone, Debug)]
enum Const {
    F32(Vec<usize>, Vec<f32>),
    /// Integers (INT64, INT32), with their dims.
    I64(Vec<usize>, Vec<i64>),
}

/// Ops the importer knows, for error messages.
pub const SUPPORTED: &str = "Conv (any group), BatchNormalization, Relu, Clip (0, 6: ReLU6; 0: ReLU), LeakyRelu, Elu, Sigmoid, Mul(x, Sigmoid(x)) (swish), Mul of two values (one shape, or a map and [N, C, 1, 1]), \
Tanh, Softmax, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Flatten, Reshape (that \
flattens), Squeeze (after global pooling), Gemm, MatMul (+ Add), Add, Sum, Concat, Dropout, \
Identity, Sub / Mul / Div / Add by a constant per channel, Shape arithmetic (Gather, Slice, Concat, Add, Sub, Mul, Div) feeding a Reshape or Slice, \
Slice / Split of the channels, Reshape-Transpose-Reshape (channel shuffle), Cast to float, Pad (constant 0), Transpose (NHWC <-> NCHW), ReduceMean / ReduceMax (over H, W), \
Constant";

/// Reads an ONNX file into a model.
///
/// Weights stored beside the file (ONNX external data, what
/// `torch.onnx.export` writes by default) are read from the files the model
/// names, which must lie in the model's folder.
pub fn import(path: &Path) -> Result<Model> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| OnnxError::Io {
        path: source.clone(),
        msg: e.to_string(),
    })?;
    let mut m = decode(&bytes, &source)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    load_external(&mut m, dir, &source)?;
    from_onnx(&m, &source)
}

fn decode(bytes: &[u8], source: &str) -> Result<ModelProto> {
    if bytes.is_empty() {
        return Err(malformed(
            source,
            "the file is empty: expected an ONNX model (protobuf ModelProto)",
        ));
    }
    ModelProto::decode(bytes).map_err(|e| OnnxError::Malformed {
        path: source.into(),
        msg: format!("not an ONNX model (protobuf ModelProto): {e}"),
    })
}

/// Decodes ONNX bytes (`source` names them in errors) into a model.
pub fn import_bytes(bytes: &[u8], source: &str) -> Result<Model> {
    from_onnx(&decode(bytes, source)?, source)
}

/// Converts a decoded ONNX model (`source` names it in errors).
pub fn from_onnx(m: &ModelProto, source: &str) -> Result<Model> {
    let mut b = Importer::new(m, source)?;
    let graph = m.graph.as_ref().expect("checked in new");
    for node in &graph.node {
        b.node(node)?;
    }
    b.finish(graph)
}

struct Importer<'a> {
    path: &'a str,
    consts: HashMap<String, Const>,
    vals: HashMap<String, Val>,
    /// How many node inputs (and graph outputs) read each value.
    readers: HashMap<String, usize>,
    nodes: Vec<Node>,
    shapes: Vec<Vec<usize>>,
    weights: Vec<Vec<(&'static str, Tensor)>>,
    taken: HashSet<String>,
    /// Shapes computed in the graph, by value name.
    syms: HashMap<String, Vec<Dim>>,
    /// Padded values already materialized as a ZeroPadding2D node.
    padded: HashMap<String, Val>,
    input_shape: Vec<usize>,
    /// Nodes our own export marked frozen.
    frozen: HashSet<String>,
    /// The input's batch size when the file fixes it.
    batch: Option<i64>,
    /// Dropout rates from our own export's metadata, by output name.
    dropout_rates: HashMap<String, f32>,
    /// StochasticDepth rates from our own export's metadata, by output name.
    drop_paths: HashMap<String, f32>,
}

mod attrs;
mod channels;
mod fold;
mod layers;
mod merge;
mod ops;
mod tensors;

use attrs::{node_name, unsupported, Attrs};
use tensors::{decode_tensor, load_external, malformed};

/// The graph's one input (besides initializers): its name, our per-sample
/// shape, its layout, and the batch size when the file fixes it.
fn graph_input(
    path: &str,
    graph: &proto::GraphProto,
    consts: &HashMap<String, Const>,
) -> Result<(String, Vec<usize>, Layout, Option<i64>)> {
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !consts.contains_key(&i.name))
        .collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        _ => {
            return Err(malformed(
                path,
                format!(
                "field 'graph.input': expected one input besides the initializers, found {} ({})",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ))
        }
    };
    let dims: Vec<Option<i64>> = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(proto::DimValue::DimValue(v)) if v > 0 => Some(v),
                    _ => None,
                })
                .collect()
        })
        .ok_or_else(|| {
            malformed(
                path,
                format!(
                    "input '{}': no tensor shape; expected [N, C, H, W] or [N, F]",
                    input.name
                ),
            )
        })?;
    let fixed = |i: usize| -> Result<usize> {
        dims[i]
            .filter(|&d| d <= 1 << 20)
            .map(|d| d as usize)
            .ok_or_else(|| malformed(path, format!("input '{}': dimension {i} is not a fixed size ({dims:?}); export with a fixed input size", input.name)))
    };
    // tf2onnx keeps Keras's NHWC input and transposes it before the
    // first conv (or, with one channel, reshapes [N, H, W, 1] to [N, 1, H, W]).
    let to_nchw = |n: &NodeProto| match n.op_type.as_str() {
        "Transpose" => n
            .attribute
            .iter()
            .any(|a| a.name == "perm" && a.ints == [0, 3, 1, 2]),
        "Reshape" => match n.input.get(1).and_then(|t| consts.get(t)) {
            Some(Const::I64(_, t)) => {
                dims.len() == 4
                    && dims[3] == Some(1)
                    && t.len() == 4
                    && t[1] == 1
                    && Some(t[2]) == dims[1]
                    && Some(t[3]) == dims[2]
            }
            _ => false,
        },
        _ => false,
    };
    let nhwc = dims.len() == 4
        && graph
            .node
            .iter()
            .filter(|n| n.input.contains(&input.name))
            .all(to_nchw);
    let (shape, layout) = match dims.len() {
        4 if nhwc => (vec![fixed(1)?, fixed(2)?, fixed(3)?], Layout::Nhwc),
        4 => (vec![fixed(2)?, fixed(3)?, fixed(1)?], Layout::Nchw),
        2 => (vec![fixed(1)?], Layout::Flat),
        n => {
            return Err(malformed(
                path,
                format!(
                    "input '{}': rank {n}; expected [N, C, H, W] or [N, F]",
                    input.name
                ),
            ))
        }
    };
    Ok((
        input.name.clone(),
        shape,
        layout,
        dims.first().copied().flatten(),
    ))
}

/// The rates our export keeps in the metadata under `prefix`, by node.
fn rates(m: &ModelProto, prefix: &str) -> HashMap<String, f32> {
    m.metadata_props
        .iter()
        .filter_map(|p| {
            let node = p.key.strip_prefix(prefix)?;
            Some((node.to_string(), p.value.parse().ok()?))
        })
        .collect()
}

impl<'a> Importer<'a> {
    fn new(m: &ModelProto, path: &'a str) -> Result<Self> {
        let graph = m.graph.as_ref().ok_or_else(|| {
            malformed(
                path,
                "field 'graph' is missing: expected the model's GraphProto",
            )
        })?;
        let mut consts = HashMap::new();
        for t in &graph.initializer {
            consts.insert(t.name.clone(), decode_tensor(path, t)?);
        }
        let mut readers: HashMap<String, usize> = HashMap::new();
        for n in &graph.node {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                *readers.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *readers.entry(o.name.clone()).or_default() += 1;
        }
        let (input, shape, layout, batch) = graph_input(path, graph, &consts)?;
        let mut vals = HashMap::new();
        vals.insert(
            input,
            Val {
                src: Source::Input,
                layout,
                shape: shape.clone(),
                perm: None,
                pad: None,
            },
        );
        let mut taken = HashSet::new();
        taken.insert(INPUT.to_string());
        Ok(Importer {
            path,
            consts,
            vals,
            readers,
            nodes: Vec::new(),
            shapes: Vec::new(),
            weights: Vec::new(),
            taken,
            padded: HashMap::new(),
            syms: HashMap::new(),
            input_shape: shape,
            batch,
            frozen: m
                .metadata_props
                .iter()
                .filter_map(|p| {
                    p.key
                        .strip_prefix(crate::export::FROZEN)
                        .map(str::to_string)
                })
                .collect(),
            dropout_rates: rates(m, crate::export::DROPOUT_RATE),
            drop_paths: rates(m, crate::export::STOCHASTIC_DEPTH),
        })
    }

    fn val(&self, n: &NodeProto, i: usize) -> Result<Val> {
        let name = n
            .input
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unsupported(self.path, n, format!("input {i} is missing")))?;
        if self.consts.contains_key(name) {
            return Err(unsupported(
                self.path,
                n,
                format!(
                    "input {i} ('{name}') is a constant; convnet takes constants only as weights"
                ),
            ));
        }
        self.vals.get(name).cloned().ok_or_else(|| {
            malformed(
                self.path,
                format!(
                    "node '{}' reads '{name}', which no earlier node computes",
                    node_name(n)
                ),
            )
        })
    }

    fn constant(&self, n: &NodeProto, i: usize) -> Result<Option<&Const>> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(name) => self.consts.get(name).map(Some).ok_or_else(|| {
                unsupported(
                    self.path,
                    n,
                    format!("input {i} ('{name}') must be a constant (an initializer)"),
                )
            }),
        }
    }

    fn weight(&self, n: &NodeProto, i: usize, what: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        match self.constant(n, i)? {
            Some(Const::F32(d, v)) => Ok((d.clone(), v.clone())),
            Some(Const::I64(..)) => Err(unsupported(
                self.path,
                n,
                format!("{what} (input {i}) must be float"),
            )),
            None => Err(unsupported(
                self.path,
                n,
                format!("{what} (input {i}) is missing"),
            )),
        }
    }

    fn set(&mut self, n: &NodeProto, v: Val) {
        if let Some(o) = n.output.first() {
            self.vals.insert(o.clone(), v);
        }
    }

    /// A value with its pending padding applied (as a ZeroPadding2D node).
    fn materialize(&mut self, n: &NodeProto, i: usize) -> Result<Val> {
        let v = self.val(n, i)?;
        let Some([t, b, l, r]) = v.pad else {
            return Ok(v);
        };
        let key = n.input[i].clone();
        if let Some(p) = self.padded.get(&key) {
            return Ok(p.clone());
        }
        let layer = LayerSpec::ZeroPadding2D {
            padding: [[t, b], [l, r]],
        };
        let base = Val { pad: None, ..v };
        let src = self.push(&key, layer, std::slice::from_ref(&base), vec![])?;
        let shape = self.shapes[self.nodes.len() - 1].clone();
        let p = Val { src, shape, ..base };
        self.padded.insert(key, p.clone());
        Ok(p)
    }

    /// A node name from an ONNX one (characters outside `[A-Za-z0-9_-./]`
    /// replaced, `_1`, `_2`, ... appended when taken), now taken.
    fn claim(&mut self, name: &str) -> String {
        let mut base: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-./".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() {
            base = "node".into();
        }
        let mut unique = base.clone();
        let mut k = 1;
        while self.taken.contains(&unique) {
            unique = format!("{base}_{k}");
            k += 1;
        }
        self.taken.insert(unique.clone());
        unique
    }

    /// Appends a convnet node reading `inputs`; returns its source.
    fn push(
        &mut self,
        name: &str,
        layer: LayerSpec,
        inputs: &[Val],
        weights: Vec<(&'static str, Tensor)>,
    ) -> Result<Source> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape.as_slice()).collect();
        let out = layer.output_shape_of(&shapes)?;
        let unique = self.claim(name);
        let names = inputs
            .iter()
            .map(|v| match v.src {
                Source::Input => INPUT.to_string(),
                Source::Node(j) => self.nodes[j].name.clone().expect("named"),
            })
            .collect();
        self.nodes.push(Node {
            name: Some(unique),
            inputs: Some(names),
            trainable: true,
            layer,
        });
        self.shapes.push(out);
        self.weights.push(weights);
        Ok(Source::Node(self.nodes.len() - 1))
    }

    /// Pushes a single-input node and maps the ONNX output to it.
    fn simple(
        &mut self,
        n: &NodeProto,
        layer: LayerSpec,
        x: Val,
        layout: Layout,
        w: Vec<(&'static str, Tensor)>,
    ) -> Result<()> {
        let src = self.push(&node_name(n), layer, std::slice::from_ref(&x), w)?;
        let shape = self.shapes[self.nodes.len() - 1].clone();
        self.set(
            n,
            Val {
                src,
                layout,
                shape,
                perm: x.perm,
                pad: None,
            },
        );
        Ok(())
    }

    /// The node `x` comes from, when this node is its only reader and it
    /// is the newest node: a candidate for fusing.
    fn sole_producer(&self, n: &NodeProto, x: &Val) -> Option<usize> {
        match x.src {
            Source::Node(j)
                if j + 1 == self.nodes.len()
                    && x.pad.is_none()
                    && self.readers.get(&n.input[0]).copied() == Some(1) =>
            {
                Some(j)
            }
            _ => None,
        }
    }

    /// True when a Reshape target's first entry stands for the batch: 0
    /// (copy), -1 (infer) or the batch size the file fixes.
    fn batch_dim(&self, d: i64) -> bool {
        d == 0 || d == -1 || Some(d) == self.batch
    }

    fn image(&self, n: &NodeProto, x: &Val) -> Result<()> {
        if x.layout != Layout::Nchw {
            return Err(unsupported(
                self.path,
                n,
                format!(
                    "expects an NCHW image, found a {:?} value of shape {:?}",
                    x.layout, x.shape
                ),
            ));
        }
        Ok(())
    }

    fn node(&mut self, n: &NodeProto) -> Result<()> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(unsupported(
                self.path,
                n,
                format!(
                    "domain '{}' is not supported; supported: {SUPPORTED}",
                    n.domain
                ),
            ));
        }
        if n.output.is_empty() {
            return Err(malformed(
                self.path,
                format!("node '{}' ({}) has no output", node_name(n), n.op_type),
            ));
        }
        let at = Attrs {
            node: n,
            path: self.path,
        };
        if self.fold(n, &at)? {
            return Ok(());
        }
        match n.op_type.as_str() {
            // One line per ONNX op: its handler is in ops.rs, layers.rs, merge.rs or channels.rs.
            // Arithmetic on computed shapes first.
            "Gather" | "Slice" | "Cast" | "Unsqueeze" | "Squeeze"
                if n.input.first().is_some_and(|i| self.syms.contains_key(i)) =>
            {
                self.shape_op(n, &at)
            }
            "Concat" | "Add" | "Sub" | "Mul" | "Div"
                if n.input.iter().any(|i| self.syms.contains_key(i)) =>
            {
                self.shape_op(n, &at)
            }
            "Constant" => self.constant_op(n, &at),
            "Identity" => self.identity(n, &at),
            "ReduceMean" | "ReduceMax" => self.reduce(n, &at),
            "Conv" => self.conv(n, &at),
            "Gemm" => self.gemm(n, &at),
            "MatMul" => self.matmul(n, &at),
            "Add" | "Sum" => self.add(n, &at),
            "Sub" | "Mul" | "Div" => self.affine(n, &at),
            "BatchNormalization" => self.batch_norm(n, &at),
            "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "Elu" | "Softmax" | "Clip" => {
                self.activation(n, &at)
            }
            "MaxPool" | "AveragePool" => self.pool(n, &at),
            "GlobalAveragePool" | "GlobalMaxPool" => self.global_pool(n, &at),
            "Flatten" => self.flatten_op(n, &at),
            "Reshape" => self.reshape(n, &at),
            "Shape" => self.shape_of(n, &at),
            "Cast" => self.cast(n, &at),
            "Squeeze" => self.squeeze(n, &at),
            "Transpose" => self.transpose(n, &at),
            "Dropout" => self.dropout(n, &at),
            "Pad" => self.pad(n, &at),
            "Concat" => self.concat(n, &at),
            "Slice" => self.slice(n, &at),
            "Split" => self.split(n, &at),
            other => Err(unsupported(
                self.path,
                n,
                format!("operator {other} is not supported; supported: {SUPPORTED}"),
            )),
        }
    }

    /// Gather, Slice, Cast, Unsqueeze, Squeeze and Concat on computed shapes.
    fn finish(self, graph: &proto::GraphProto) -> Result<Model> {
        let out = match graph.output.as_slice() {
            [one] => one,
            o => {
                return Err(malformed(
                    self.path,
                    format!(
                        "field 'graph.output': expected one output, found {}",
                        o.len()
                    ),
                ))
            }
        };
        let v = self.vals.get(&out.name).ok_or_else(|| {
            malformed(
                self.path,
                format!("output '{}' is not computed by any node", out.name),
            )
        })?;
        if v.perm.is_some() || v.pad.is_some() {
            return Err(malformed(
                self.path,
                format!("output '{}' is a channel-first flatten or a pending pad, which convnet orders differently", out.name),
            ));
        }
        match v.src {
            Source::Node(j) if j + 1 == self.nodes.len() => {}
            _ => {
                return Err(malformed(
                    self.path,
                    format!(
                        "output '{}' is not computed by the graph's last layer",
                        out.name
                    ),
                ))
            }
        }
        let mut spec = ModelSpec {
            input_shape: self.input_shape.clone(),
            layers: self.nodes,
        };
        for node in &mut spec.layers {
            if self
                .frozen
                .contains(node.name.as_deref().unwrap_or_default())
            {
                node.trainable = false;
            }
        }
        if spec.wiring()?.is_chain() {
            for node in &mut spec.layers {
                node.inputs = None;
            }
        }
        let mut model = spec.build(0)?;
        for (i, ws) in self.weights.into_iter().enumerate() {
            let layer = &mut model.layers_mut()[i];
            for (name, t) in ws {
                let p = layer
                    .params_mut()
                    .into_iter()
                    .find(|p| p.name == name)
                    .expect("the layer has the parameter");
                if p.value.shape() != t.shape() {
                    return Err(malformed(
                        self.path,
                        format!(
                            "layer {i}: {name} has shape {:?}, the layer needs {:?}",
                            t.shape(),
                            p.value.shape()
                        ),
                    ));
                }
                p.value = t;
            }
        }
        Ok(model)
    }
}
