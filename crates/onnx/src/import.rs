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
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, DropoutConfig, LayerSpec, Model,
    ModelSpec, Node, Padding, PoolConfig, Source, Tensor, INPUT,
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

/// A constant tensor: f32 data or integers.
#[derive(Clone, Debug)]
enum Const {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<i64>),
}

/// Ops the importer knows, for error messages.
pub const SUPPORTED: &str = "Conv (group 1), BatchNormalization, Relu, LeakyRelu, Elu, Sigmoid, \
Tanh, Softmax, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Flatten, Reshape (that \
flattens), Squeeze (after global pooling), Gemm, MatMul (+ Add), Add, Sum, Concat, Dropout, \
Identity, Sub / Mul / Div / Add by a constant per channel, Pad (constant 0), Transpose (NHWC <-> NCHW), ReduceMean / ReduceMax (over H, W), \
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
    ModelProto::decode(bytes).map_err(|e| OnnxError::Malformed {
        path: source.into(),
        msg: format!("not an ONNX model (protobuf ModelProto): {e}"),
    })
}

/// Moves external initializer data into `raw_data`.
fn load_external(m: &mut ModelProto, dir: &Path, source: &str) -> Result<()> {
    let Some(graph) = m.graph.as_mut() else {
        return Ok(());
    };
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    for t in &mut graph.initializer {
        if t.data_location != 1 && t.external_data.is_empty() {
            continue;
        }
        let what = format!("tensor '{}'", t.name);
        let get = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.clone())
        };
        let location = get("location").ok_or_else(|| {
            malformed(
                source,
                format!("{what}: external data without a 'location'"),
            )
        })?;
        let rel = Path::new(&location);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(malformed(
                source,
                format!("{what}: external data location '{location}' must be a file name in the model's folder"),
            ));
        }
        let number = |k: &str| -> Result<Option<usize>> {
            get(k)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        malformed(
                            source,
                            format!("{what}: external data '{k}' is '{v}', expected a byte count"),
                        )
                    })
                })
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        if !files.contains_key(&location) {
            let p = dir.join(rel);
            let bytes = std::fs::read(&p).map_err(|e| OnnxError::Io {
                path: p.display().to_string(),
                msg: format!("{e} (external data of {what} in {source})"),
            })?;
            files.insert(location.clone(), bytes);
        }
        let file = &files[&location];
        let end = match length {
            Some(l) => offset.checked_add(l),
            None => Some(file.len()),
        };
        let data = end
            .filter(|&e| e <= file.len() && offset <= e)
            .map(|e| &file[offset..e])
            .ok_or_else(|| malformed(source, format!("{what}: external data [{offset}, +{length:?}) lies outside '{location}' ({} bytes)", file.len())))?;
        t.raw_data = data.to_vec();
        t.external_data.clear();
        t.data_location = 0;
    }
    Ok(())
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
    /// Padded values already materialized as a ZeroPadding2D node.
    padded: HashMap<String, Val>,
    input_shape: Vec<usize>,
    /// Nodes our own export marked frozen.
    frozen: HashSet<String>,
    /// The input's batch size when the file fixes it.
    batch: Option<i64>,
    /// Dropout rates from our own export's metadata, by output name.
    dropout_rates: HashMap<String, f32>,
}

fn malformed(path: &str, msg: impl Into<String>) -> OnnxError {
    OnnxError::Malformed {
        path: path.into(),
        msg: msg.into(),
    }
}

/// A tensor's data as f32 or i64, checked against its dims.
fn decode_tensor(path: &str, t: &TensorProto) -> Result<Const> {
    let what = format!("tensor '{}'", t.name);
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(malformed(
            path,
            format!("{what}: data in an external file; save the model with its weights inside (onnx.save(model, path, save_as_external_data=False))"),
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| malformed(path, format!("{what}: negative dimension in {:?}", t.dims)))?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= 1 << 32)
        .ok_or_else(|| malformed(path, format!("{what}: dims {:?} too large", t.dims)))?;
    let count = |found: usize, kind: &str| -> Result<()> {
        if found == n {
            Ok(())
        } else {
            Err(malformed(
                path,
                format!("{what}: dims {dims:?} need {n} {kind} values, the data holds {found}"),
            ))
        }
    };
    let raw = !t.raw_data.is_empty() || n == 0;
    let raw_len = |size: usize| -> Result<()> {
        if t.raw_data.len() == n * size {
            Ok(())
        } else {
            Err(malformed(
                path,
                format!(
                    "{what}: dims {dims:?} need {} bytes of raw_data, found {}",
                    n * size,
                    t.raw_data.len()
                ),
            ))
        }
    };
    match t.data_type {
        proto::FLOAT => {
            let v: Vec<f32> = if raw {
                raw_len(4)?;
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                count(t.float_data.len(), "float")?;
                t.float_data.clone()
            };
            Ok(Const::F32(dims, v))
        }
        proto::DOUBLE => {
            let v: Vec<f32> = if raw {
                raw_len(8)?;
                t.raw_data
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect()
            } else {
                count(t.double_data.len(), "double")?;
                t.double_data.iter().map(|&d| d as f32).collect()
            };
            Ok(Const::F32(dims, v))
        }
        proto::INT64 => {
            let v: Vec<i64> = if raw {
                raw_len(8)?;
                t.raw_data
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect()
            } else {
                count(t.int64_data.len(), "int64")?;
                t.int64_data.clone()
            };
            Ok(Const::I64(v))
        }
        proto::INT32 => {
            let v: Vec<i64> = if raw {
                raw_len(4)?;
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64)
                    .collect()
            } else {
                count(t.int32_data.len(), "int32")?;
                t.int32_data.iter().map(|&v| v as i64).collect()
            };
            Ok(Const::I64(v))
        }
        other => Err(malformed(
            path,
            format!("{what}: data type {other}; expected FLOAT (1), DOUBLE (11), INT32 (6) or INT64 (7)"),
        )),
    }
}

/// The attributes of one node, with ONNX's defaults.
struct Attrs<'n> {
    node: &'n NodeProto,
    path: &'n str,
}

impl<'n> Attrs<'n> {
    fn get(&self, name: &str) -> Option<&'n AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    fn err(&self, msg: String) -> OnnxError {
        unsupported(self.path, self.node, msg)
    }
    /// Fails on any attribute not in `known`.
    fn only(&self, known: &[&str]) -> Result<()> {
        for a in &self.node.attribute {
            if !known.contains(&a.name.as_str()) {
                return Err(self.err(format!(
                    "attribute '{}' is not supported (known: {})",
                    a.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }
    fn int(&self, name: &str, default: i64) -> Result<i64> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::INT || a.r#type == 0 => Ok(a.i),
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected INT",
                a.r#type
            ))),
        }
    }
    fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::FLOAT || a.r#type == 0 => Ok(a.f),
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected FLOAT",
                a.r#type
            ))),
        }
    }
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == attribute_type::INTS || a.r#type == 0 => {
                Ok(Some(a.ints.clone()))
            }
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected INTS",
                a.r#type
            ))),
        }
    }
    fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(default.into()),
            Some(a) if a.r#type == attribute_type::STRING || a.r#type == 0 => {
                Ok(String::from_utf8_lossy(&a.s).into_owned())
            }
            Some(a) => Err(self.err(format!(
                "attribute '{name}' has type {}, expected STRING",
                a.r#type
            ))),
        }
    }
    /// A pair of positive sizes (`kernel_shape`, `strides`, `dilations`).
    fn pair(&self, name: &str, default: [usize; 2]) -> Result<[usize; 2]> {
        match self.ints(name)? {
            None => Ok(default),
            Some(v) => match v.as_slice() {
                [a, b] if *a >= 1 && *b >= 1 && *a <= 1 << 16 && *b <= 1 << 16 => {
                    Ok([*a as usize, *b as usize])
                }
                _ => Err(self.err(format!(
                    "attribute '{name}' is {v:?}; expected two sizes >= 1 (2-D only)"
                ))),
            },
        }
    }
    /// `pads` `[top, left, bottom, right]` as our `[top, bottom, left, right]`.
    fn pads(&self) -> Result<[usize; 4]> {
        match self.ints("pads")? {
            None => Ok([0; 4]),
            Some(v) => match v.as_slice() {
                [t, l, b, r] if v.iter().all(|&p| (0..=1 << 16).contains(&p)) => {
                    Ok([*t as usize, *b as usize, *l as usize, *r as usize])
                }
                _ => Err(self.err(format!(
                    "attribute 'pads' is {v:?}; expected 4 non-negative values (2-D only)"
                ))),
            },
        }
    }
}

fn node_name(n: &NodeProto) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else {
        n.output.first().cloned().unwrap_or_default()
    }
}

fn unsupported(path: &str, n: &NodeProto, msg: String) -> OnnxError {
    OnnxError::Unsupported {
        path: path.into(),
        node: node_name(n),
        op: n.op_type.clone(),
        msg,
    }
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
                        inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
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
        // tf2onnx keeps Keras's NHWC input and transposes it before the first conv.
        let nhwc = dims.len() == 4
            && graph
                .node
                .iter()
                .filter(|n| n.input.contains(&input.name))
                .all(|n| {
                    n.op_type == "Transpose"
                        && n.attribute
                            .iter()
                            .any(|a| a.name == "perm" && a.ints == [0, 3, 1, 2])
                });
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
        let mut vals = HashMap::new();
        vals.insert(
            input.name.clone(),
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
            input_shape: shape,
            batch: dims.first().copied().flatten(),
            frozen: m
                .metadata_props
                .iter()
                .filter_map(|p| {
                    p.key
                        .strip_prefix(crate::export::FROZEN)
                        .map(str::to_string)
                })
                .collect(),
            dropout_rates: m
                .metadata_props
                .iter()
                .filter_map(|p| {
                    let node = p.key.strip_prefix(crate::export::DROPOUT_RATE)?;
                    Some((node.to_string(), p.value.parse().ok()?))
                })
                .collect(),
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
            Some(Const::I64(_)) => Err(unsupported(
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
        match n.op_type.as_str() {
            "Constant" => {
                at.only(&["value"])?;
                let t = at.get("value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                    unsupported(
                        self.path,
                        n,
                        "only the 'value' tensor form is supported".into(),
                    )
                })?;
                let c = decode_tensor(self.path, t)?;
                self.consts.insert(n.output[0].clone(), c);
            }
            "Identity" => {
                at.only(&[])?;
                match n.input.first().and_then(|i| self.consts.get(i)).cloned() {
                    Some(c) => {
                        self.consts.insert(n.output[0].clone(), c);
                    }
                    None => {
                        let x = self.val(n, 0)?;
                        self.set(n, x);
                    }
                }
            }
            "ReduceMean" | "ReduceMax" => {
                // Over H and W: global pooling (PyTorch 2's exporter writes
                // adaptive_avg_pool2d(1) this way).
                at.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
                let x = self.materialize(n, 0)?;
                let axes = match (at.ints("axes")?, self.constant(n, 1)?) {
                    (Some(a), _) => a,
                    (None, Some(Const::I64(v))) => v.clone(),
                    _ => vec![],
                };
                let spatial = match x.layout {
                    Layout::Nchw => {
                        matches!(axes.as_slice(), [2, 3] | [3, 2] | [-2, -1] | [-1, -2])
                    }
                    Layout::Nhwc => {
                        matches!(axes.as_slice(), [1, 2] | [2, 1] | [-3, -2] | [-2, -3])
                    }
                    _ => false,
                };
                if !spatial {
                    return Err(at.err(format!("only a reduction over H and W (global pooling) is supported, found axes {axes:?} of a {:?} value", x.layout)));
                }
                let layout = if at.int("keepdims", 1)? != 0 {
                    Layout::Pooled
                } else {
                    Layout::Flat
                };
                if layout == Layout::Pooled && x.layout == Layout::Nhwc {
                    return Err(at.err("keepdims on an NHWC value is not supported".into()));
                }
                let layer = if n.op_type == "ReduceMean" {
                    LayerSpec::GlobalAveragePooling2D
                } else {
                    LayerSpec::GlobalMaxPooling2D
                };
                self.simple(n, layer, x, layout, vec![])?;
            }
            "Conv" => self.conv(n, &at)?,
            "Gemm" => self.gemm(n, &at)?,
            "MatMul" => {
                at.only(&[])?;
                let x = self.materialize(n, 0)?;
                let (d, w) = self.weight(n, 1, "B")?;
                self.dense(n, x, d, w, false, 1.0, None)?;
            }
            "Add" | "Sum" => self.add(n, &at)?,
            "Sub" | "Mul" | "Div" => self.affine(n, &at)?,
            "BatchNormalization" => self.batch_norm(n, &at)?,
            "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "Elu" | "Softmax" => {
                self.activation(n, &at)?
            }
            "MaxPool" | "AveragePool" => self.pool(n, &at)?,
            "GlobalAveragePool" | "GlobalMaxPool" => {
                at.only(&[])?;
                let x = self.materialize(n, 0)?;
                self.image(n, &x)?;
                let layer = if n.op_type == "GlobalAveragePool" {
                    LayerSpec::GlobalAveragePooling2D
                } else {
                    LayerSpec::GlobalMaxPooling2D
                };
                self.simple(n, layer, x, Layout::Pooled, vec![])?;
            }
            "Flatten" => {
                at.only(&["axis"])?;
                if at.int("axis", 1)? != 1 {
                    return Err(at.err("only axis 1 is supported".into()));
                }
                self.flatten(n)?;
            }
            "Reshape" => {
                at.only(&["allowzero"])?;
                let x = self.val(n, 0)?;
                let target = match self.constant(n, 1)? {
                    Some(Const::I64(v)) => v.clone(),
                    _ => return Err(at.err("the shape must be a constant int64 tensor".into())),
                };
                let total: usize = x.shape.iter().product();
                // [N, F], [-1, F], [0, F], [N, -1], [0, -1], with N the
                // exported batch size (PyTorch 2 writes the example's).
                let batch = |d: i64| d == 0 || Some(d) == self.batch;
                let flattens = match target.as_slice() {
                    [b, f] => {
                        (batch(*b) && (*f == -1 || *f == total as i64))
                            || (*b == -1 && *f == total as i64)
                    }
                    _ => false,
                };
                if !flattens {
                    return Err(at.err(format!(
                        "only a reshape to [N, {total}] (a flatten) is supported, found {target:?}"
                    )));
                }
                self.flatten(n)?;
            }
            "Squeeze" => {
                let x = self.val(n, 0)?;
                let axes = match (at.ints("axes")?, self.constant(n, 1)?) {
                    (Some(a), _) => a,
                    (None, Some(Const::I64(v))) => v.clone(),
                    _ => vec![],
                };
                if x.layout != Layout::Pooled
                    || !(axes == [2, 3] || axes == [-2, -1] || axes == [3, 2])
                {
                    return Err(at.err(
                        "only the squeeze of axes 2, 3 after global pooling is supported".into(),
                    ));
                }
                self.set(
                    n,
                    Val {
                        layout: Layout::Flat,
                        ..x
                    },
                );
            }
            "Transpose" => {
                at.only(&["perm"])?;
                let x = self.val(n, 0)?;
                let perm = at.ints("perm")?.unwrap_or_default();
                let layout = match (x.layout, perm.as_slice()) {
                    (Layout::Nhwc, [0, 3, 1, 2]) => Layout::Nchw,
                    (Layout::Nchw, [0, 2, 3, 1]) => Layout::Nhwc,
                    (l, p) => {
                        return Err(at.err(format!(
                            "only NHWC <-> NCHW transposes are supported; found perm {p:?} on a {l:?} value"
                        )))
                    }
                };
                self.set(n, Val { layout, ..x });
            }
            "Dropout" => {
                at.only(&["ratio", "seed"])?;
                if n.output.len() > 1 && n.output[1..].iter().any(|o| self.readers.contains_key(o))
                {
                    return Err(at.err(
                        "its mask output is read; only inference Dropout is supported".into(),
                    ));
                }
                let rate = match self.constant(n, 1)? {
                    Some(Const::F32(_, v)) if v.len() == 1 => v[0],
                    Some(_) => return Err(at.err("ratio must be one float".into())),
                    // Our export keeps the rate in the metadata.
                    None => match self.dropout_rates.get(&n.output[0]) {
                        Some(r) => *r,
                        None => at.float("ratio", 0.5)?,
                    },
                };
                if !(0.0..1.0).contains(&rate) {
                    return Err(at.err(format!("ratio {rate}: expected a value in [0, 1)")));
                }
                let x = self.materialize(n, 0)?;
                let layout = x.layout;
                self.simple(
                    n,
                    LayerSpec::Dropout(DropoutConfig::new(rate)),
                    x,
                    layout,
                    vec![],
                )?;
            }
            "Pad" => self.pad(n, &at)?,
            "Concat" => self.concat(n, &at)?,
            other => {
                return Err(unsupported(
                    self.path,
                    n,
                    format!("operator {other} is not supported; supported: {SUPPORTED}"),
                ))
            }
        }
        Ok(())
    }

    fn flatten(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.materialize(n, 0)?;
        match x.layout {
            Layout::Flat | Layout::Pooled => self.set(
                n,
                Val {
                    layout: Layout::Flat,
                    ..x
                },
            ),
            Layout::Nhwc | Layout::Nchw => {
                let perm = match (x.layout, x.shape.as_slice()) {
                    (Layout::Nchw, [h, w, c]) if h * w > 1 => Some([*h, *w, *c]),
                    _ => None,
                };
                let src = self.push(
                    &node_name(n),
                    LayerSpec::Flatten,
                    std::slice::from_ref(&x),
                    vec![],
                )?;
                let shape = self.shapes[self.nodes.len() - 1].clone();
                self.set(
                    n,
                    Val {
                        src,
                        layout: Layout::Flat,
                        shape,
                        perm,
                        pad: None,
                    },
                );
            }
        }
        Ok(())
    }

    fn conv(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[
            "kernel_shape",
            "strides",
            "dilations",
            "pads",
            "group",
            "auto_pad",
        ])?;
        let group = at.int("group", 1)?;
        if group != 1 {
            return Err(at.err(format!(
                "group {group}: only group 1 is supported (no grouped or depthwise convolutions)"
            )));
        }
        let mut x = self.val(n, 0)?;
        self.image(n, &x)?;
        let (d, w) = self.weight(n, 1, "W")?;
        let [f, c, kh, kw] = match d.as_slice() {
            [f, c, kh, kw] => [*f, *c, *kh, *kw],
            _ => return Err(at.err(format!("W has dims {d:?}; expected [F, C, KH, KW]"))),
        };
        if c != x.shape[2] {
            return Err(at.err(format!(
                "W has {c} input channels, its input has {}",
                x.shape[2]
            )));
        }
        if at.pair("kernel_shape", [kh, kw])? != [kh, kw] {
            return Err(at.err(format!("kernel_shape disagrees with W's dims {d:?}")));
        }
        let strides = at.pair("strides", [1, 1])?;
        let dilations = at.pair("dilations", [1, 1])?;
        let auto = at.string("auto_pad", "NOTSET")?;
        let mut p = at.pads()?;
        if let Some(extra) = x.pad.take() {
            // A Pad read only by this conv: its zeros are the conv's own.
            for k in 0..4 {
                p[k] += extra[k];
            }
        }
        let padding = match auto.as_str() {
            "NOTSET" if p == [0; 4] => Padding::Valid,
            "NOTSET" => Padding::Explicit(p),
            "VALID" => Padding::Valid,
            // Keras's `same` puts the odd pixel at the end, as SAME_UPPER does.
            "SAME_UPPER" if p == [0; 4] => Padding::Same,
            other => {
                return Err(at.err(format!(
                    "auto_pad {other} is not supported (NOTSET, VALID, SAME_UPPER are)"
                )))
            }
        };
        let bias = match self.constant(n, 2)? {
            None => None,
            Some(Const::F32(bd, b)) if b.len() == f && bd.len() == 1 => Some(b.clone()),
            Some(_) => return Err(at.err(format!("B must be a float vector of {f} values"))),
        };
        let mut cfg = Conv2dConfig::new(f, kh)
            .with_kernel(kh, kw)
            .with_padding(padding);
        cfg.strides = strides;
        cfg.dilation_rate = dilations;
        cfg.use_bias = bias.is_some();
        // [F, C, KH, KW] -> [KH, KW, C, F]
        let mut k = vec![0.0; w.len()];
        for fi in 0..f {
            for ci in 0..c {
                for y in 0..kh {
                    for xx in 0..kw {
                        k[((y * kw + xx) * c + ci) * f + fi] =
                            w[((fi * c + ci) * kh + y) * kw + xx];
                    }
                }
            }
        }
        let mut weights = vec![(
            "kernel",
            Tensor::from_vec(&[kh, kw, c, f], k).map_err(convnet_nn::NnError::from)?,
        )];
        if let Some(b) = bias {
            weights.push((
                "bias",
                Tensor::from_vec(&[f], b).map_err(convnet_nn::NnError::from)?,
            ));
        }
        self.simple(n, LayerSpec::Conv2D(cfg), x, Layout::Nchw, weights)
    }

    fn gemm(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["alpha", "beta", "transA", "transB"])?;
        if at.int("transA", 0)? != 0 {
            return Err(at.err("transA 1 is not supported".into()));
        }
        let x = self.materialize(n, 0)?;
        let (d, w) = self.weight(n, 1, "B")?;
        let trans_b = at.int("transB", 0)? != 0;
        let alpha = at.float("alpha", 1.0)?;
        let beta = at.float("beta", 1.0)?;
        let bias = match self.constant(n, 2)? {
            None => None,
            Some(Const::F32(_, b)) => Some(b.iter().map(|v| v * beta).collect::<Vec<f32>>()),
            Some(_) => return Err(at.err("C must be float".into())),
        };
        self.dense(n, x, d, w, trans_b, alpha, bias)
    }

    /// A Dense from `x @ op(W) * alpha + bias` (`op` transposes when `trans`).
    #[allow(clippy::too_many_arguments)]
    fn dense(
        &mut self,
        n: &NodeProto,
        x: Val,
        d: Vec<usize>,
        w: Vec<f32>,
        trans: bool,
        alpha: f32,
        bias: Option<Vec<f32>>,
    ) -> Result<()> {
        let at = Attrs {
            node: n,
            path: self.path,
        };
        if x.layout != Layout::Flat {
            return Err(at.err(format!(
                "expects a flat [N, F] input, found a {:?} value of shape {:?}",
                x.layout, x.shape
            )));
        }
        let (rows, cols) = match d.as_slice() {
            [a, b] => (*a, *b),
            _ => return Err(at.err(format!("the weight has dims {d:?}; expected a matrix"))),
        };
        let (inp, units) = if trans { (cols, rows) } else { (rows, cols) };
        if inp != x.shape[0] {
            return Err(at.err(format!(
                "the weight takes {inp} inputs, its input has {}",
                x.shape[0]
            )));
        }
        // kernel[i][u], i in ONNX's feature order.
        let onnx_row = |i: usize, u: usize| {
            if trans {
                w[u * cols + i]
            } else {
                w[i * cols + u]
            }
        };
        // Our feature j = (y, x, c) is ONNX's c * H * W + y * W + x after a channel-first flatten.
        let from = |j: usize| match x.perm {
            None => j,
            Some([h, ww, c]) => {
                let (pix, ch) = (j / c, j % c);
                ch * h * ww + pix
            }
        };
        let mut k = vec![0.0; inp * units];
        for j in 0..inp {
            let i = from(j);
            for u in 0..units {
                k[j * units + u] = onnx_row(i, u) * alpha;
            }
        }
        let bias = match bias {
            None => None,
            Some(b) if b.len() == units => Some(b),
            Some(b) if b.len() == 1 => Some(vec![b[0]; units]),
            Some(b) => {
                return Err(at.err(format!("the bias has {} values, expected {units}", b.len())))
            }
        };
        let mut cfg = DenseConfig::new(units);
        cfg.use_bias = bias.is_some();
        let mut weights = vec![(
            "kernel",
            Tensor::from_vec(&[inp, units], k).map_err(convnet_nn::NnError::from)?,
        )];
        if let Some(b) = bias {
            weights.push((
                "bias",
                Tensor::from_vec(&[units], b).map_err(convnet_nn::NnError::from)?,
            ));
        }
        let x = Val { perm: None, ..x };
        self.simple(n, LayerSpec::Dense(cfg), x, Layout::Flat, weights)
    }

    fn add(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[])?;
        let consts: Vec<usize> = (0..n.input.len())
            .filter(|&i| self.consts.contains_key(&n.input[i]))
            .collect();
        if n.op_type == "Add" && n.input.len() == 2 && consts.len() == 1 {
            // x + b: a bias for the bias-less Dense or Conv that computes x.
            let xi = 1 - consts[0];
            let mut nn = n.clone();
            nn.input.swap(0, xi);
            let x = self.val(&nn, 0)?;
            let b = match &self.consts[&n.input[consts[0]]] {
                Const::F32(_, b) => b.clone(),
                _ => return Err(at.err("the constant addend must be float".into())),
            };
            if let Some(j) = self.sole_producer(&nn, &x) {
                let units = match &self.nodes[j].layer {
                    LayerSpec::Dense(d) if !d.use_bias && x.layout == Layout::Flat => Some(d.units),
                    LayerSpec::Conv2D(c) if !c.use_bias && c.activation == Activation::Linear => {
                        Some(c.filters)
                    }
                    _ => None,
                };
                if let Some(u) = units.filter(|&u| b.len() == u || b.len() == 1) {
                    let b = if b.len() == 1 { vec![b[0]; u] } else { b };
                    match &mut self.nodes[j].layer {
                        LayerSpec::Dense(d) => d.use_bias = true,
                        LayerSpec::Conv2D(c) => c.use_bias = true,
                        _ => unreachable!(),
                    }
                    self.weights[j].push((
                        "bias",
                        Tensor::from_vec(&[u], b).map_err(convnet_nn::NnError::from)?,
                    ));
                    self.set(n, x);
                    return Ok(());
                }
            }
            return self.affine(n, at);
        }
        if !consts.is_empty() || n.input.len() < 2 {
            return Err(at.err("expects two or more computed inputs".into()));
        }
        let xs = (0..n.input.len())
            .map(|i| self.materialize(n, i))
            .collect::<Result<Vec<_>>>()?;
        let (layout, perm) = (xs[0].layout, xs[0].perm);
        if xs
            .iter()
            .any(|v| v.layout != layout || v.perm != perm || v.shape != xs[0].shape)
        {
            return Err(at.err(format!(
                "its inputs differ in shape or layout ({:?}); broadcasting adds are not supported",
                xs.iter()
                    .map(|v| (v.layout, v.shape.clone()))
                    .collect::<Vec<_>>()
            )));
        }
        let src = self.push(&node_name(n), LayerSpec::Add, &xs, vec![])?;
        let shape = self.shapes[self.nodes.len() - 1].clone();
        self.set(
            n,
            Val {
                src,
                layout,
                shape,
                perm,
                pad: None,
            },
        );
        Ok(())
    }

    /// `x + c`, `x - c`, `c - x`, `x * c`, `x / c` with a constant `c` per
    /// channel (or one for all): input normalization, as a wrapper such as
    /// `(x - mean) / std` exports it. Becomes a frozen BatchNormalization
    /// with mean 0, variance 1 and epsilon 0, so that
    /// `y = x * gamma + beta` exactly (`gamma = 1 / c` for a division).
    fn affine(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[])?;
        if n.input.len() != 2 {
            return Err(at.err("expects two inputs".into()));
        }
        let ci = match (self.consts.contains_key(&n.input[0]), self.consts.contains_key(&n.input[1])) {
            (false, true) => 1,
            (true, false) if n.op_type != "Div" => 0,
            _ => return Err(at.err("only an elementwise op between a computed value and a constant per channel is supported".into())),
        };
        let mut nn = n.clone();
        nn.input.swap(0, 1 - ci);
        let x = self.materialize(&nn, 0)?;
        let (dims, v) = match &self.consts[&n.input[ci]] {
            Const::F32(d, v) => (d.clone(), v.clone()),
            Const::I64(_) => return Err(at.err("the constant must be float".into())),
        };
        let c = *x.shape.last().expect("non-empty shape");
        let ones = |d: &[usize]| d.iter().all(|&k| k == 1);
        let per_channel = v.len() == c
            && match x.layout {
                Layout::Nchw => {
                    matches!(dims.as_slice(), [k, 1, 1] if *k == c)
                        || matches!(dims.as_slice(), [1, k, 1, 1] if *k == c)
                }
                Layout::Flat => {
                    x.perm.is_none() && matches!(dims.as_slice(), [k] | [1, k] if *k == c)
                }
                Layout::Nhwc => dims.last() == Some(&c) && ones(&dims[..dims.len() - 1]),
                Layout::Pooled => false,
            };
        let v = if v.len() == 1 {
            vec![v[0]; c]
        } else if per_channel {
            v
        } else {
            return Err(at.err(format!("the constant has dims {dims:?}; expected one value or one per channel ({c}) of a {:?} value", x.layout)));
        };
        let (gamma, beta): (Vec<f32>, Vec<f32>) = match (n.op_type.as_str(), ci) {
            ("Add", _) => (vec![1.0; c], v),
            ("Sub", 1) => (vec![1.0; c], v.iter().map(|b| -b).collect()),
            ("Sub", _) => (vec![-1.0; c], v),
            ("Mul", _) => (v, vec![0.0; c]),
            _ => (v.iter().map(|d| 1.0 / d).collect(), vec![0.0; c]),
        };
        let t = |v: Vec<f32>| Tensor::from_vec(&[c], v).map_err(convnet_nn::NnError::from);
        let params = vec![
            ("gamma", t(gamma)?),
            ("beta", t(beta)?),
            ("moving_mean", t(vec![0.0; c])?),
            ("moving_variance", t(vec![1.0; c])?),
        ];
        let cfg = BatchNormConfig::new().with_epsilon(0.0);
        let layout = x.layout;
        self.simple(&nn, LayerSpec::BatchNormalization(cfg), x, layout, params)?;
        self.nodes.last_mut().expect("just pushed").trainable = false;
        Ok(())
    }

    fn concat(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["axis"])?;
        let xs = (0..n.input.len())
            .map(|i| self.materialize(n, i))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = xs.first() else {
            return Err(at.err("has no inputs".into()));
        };
        let layout = first.layout;
        let axis = at.int("axis", 1)?;
        let channel = match layout {
            Layout::Nchw => matches!(axis, 1 | -3),
            Layout::Nhwc => matches!(axis, 3 | -1),
            Layout::Flat => matches!(axis, 1 | -1) && xs.iter().all(|v| v.perm.is_none()),
            Layout::Pooled => false,
        };
        if !channel || xs.iter().any(|v| v.layout != layout) {
            return Err(at.err(format!("only a concatenation on the channel axis is supported (axis {axis} of a {layout:?} value)")));
        }
        let src = self.push(&node_name(n), LayerSpec::Concatenate, &xs, vec![])?;
        let shape = self.shapes[self.nodes.len() - 1].clone();
        self.set(
            n,
            Val {
                src,
                layout,
                shape,
                perm: None,
                pad: None,
            },
        );
        Ok(())
    }

    fn batch_norm(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["epsilon", "momentum", "training_mode", "spatial"])?;
        if at.int("training_mode", 0)? != 0
            || n.output[1..].iter().any(|o| self.readers.contains_key(o))
        {
            return Err(
                at.err("training mode is not supported (inference BatchNormalization only)".into())
            );
        }
        let x = self.materialize(n, 0)?;
        if !matches!(x.layout, Layout::Nchw | Layout::Flat) {
            return Err(at.err(format!(
                "expects NCHW or [N, F] input, found {:?}",
                x.layout
            )));
        }
        let c = *x.shape.last().expect("non-empty shape");
        let mut params = Vec::new();
        for (i, name) in [
            (1, "gamma"),
            (2, "beta"),
            (3, "moving_mean"),
            (4, "moving_variance"),
        ] {
            let (_, v) = self.weight(n, i, name)?;
            if v.len() != c {
                return Err(at.err(format!(
                    "{name} (input {i}) has {} values, the input has {c} channels",
                    v.len()
                )));
            }
            // Our feature j is ONNX's feature `from(j)` after a channel-first flatten.
            let v: Vec<f32> = match x.perm {
                None => v,
                Some([h, w, ch]) => (0..c).map(|j| v[(j % ch) * h * w + j / ch]).collect(),
            };
            params.push((
                name,
                Tensor::from_vec(&[c], v).map_err(convnet_nn::NnError::from)?,
            ));
        }
        let cfg = BatchNormConfig::new()
            .with_epsilon(at.float("epsilon", 1e-5)?)
            .with_momentum(at.float("momentum", 0.9)?);
        let layout = x.layout;
        self.simple(n, LayerSpec::BatchNormalization(cfg), x, layout, params)
    }

    fn activation(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        let a = match n.op_type.as_str() {
            "Relu" => {
                at.only(&[])?;
                Activation::Relu
            }
            "Sigmoid" => {
                at.only(&[])?;
                Activation::Sigmoid
            }
            "Tanh" => {
                at.only(&[])?;
                Activation::Tanh
            }
            "LeakyRelu" => {
                at.only(&["alpha"])?;
                Activation::LeakyRelu {
                    alpha: at.float("alpha", 0.01)?,
                }
            }
            "Elu" => {
                at.only(&["alpha"])?;
                Activation::Elu {
                    alpha: at.float("alpha", 1.0)?,
                }
            }
            _ => {
                at.only(&["axis"])?;
                let x = self.val(n, 0)?;
                let axis = at.int("axis", -1)?;
                let ok = match x.layout {
                    Layout::Flat => matches!(axis, 1 | -1) && x.perm.is_none(),
                    Layout::Nchw => matches!(axis, 1 | -3),
                    Layout::Nhwc => matches!(axis, 3 | -1),
                    Layout::Pooled => false,
                };
                if !ok {
                    return Err(at.err(format!("only a softmax over the channels is supported (axis {axis} of a {:?} value)", x.layout)));
                }
                Activation::Softmax
            }
        };
        let x = self.materialize(n, 0)?;
        if let Some(j) = self.sole_producer(n, &x) {
            let fused = match &mut self.nodes[j].layer {
                LayerSpec::Conv2D(c) if c.activation == Activation::Linear => {
                    c.activation = a;
                    true
                }
                LayerSpec::Dense(d) if d.activation == Activation::Linear => {
                    d.activation = a;
                    true
                }
                _ => false,
            };
            if fused {
                self.set(n, x);
                return Ok(());
            }
        }
        let layout = x.layout;
        self.simple(
            n,
            LayerSpec::Activation { activation: a },
            x,
            layout,
            vec![],
        )
    }

    fn pool(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        let max = n.op_type == "MaxPool";
        at.only(&[
            "kernel_shape",
            "strides",
            "pads",
            "ceil_mode",
            "auto_pad",
            "dilations",
            "count_include_pad",
            "storage_order",
        ])?;
        let x = self.materialize(n, 0)?;
        self.image(n, &x)?;
        let kernel = at.pair("kernel_shape", [0, 0]).and_then(|k| {
            if at.get("kernel_shape").is_none() {
                Err(at.err("kernel_shape is required".into()))
            } else {
                Ok(k)
            }
        })?;
        if at.pair("dilations", [1, 1])? != [1, 1] {
            return Err(at.err("dilated pooling is not supported".into()));
        }
        if max && n.output.len() > 1 && n.output[1..].iter().any(|o| self.readers.contains_key(o)) {
            return Err(at.err("its Indices output is read; not supported".into()));
        }
        let strides = at.pair("strides", [1, 1])?;
        let p = at.pads()?;
        if !max && at.int("count_include_pad", 0)? != 0 && p != [0; 4] {
            return Err(at.err("count_include_pad 1 with padding is not supported: convnet averages over the pixels inside the input (count_include_pad 0)".into()));
        }
        let padding = match at.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" if p == [0; 4] => Padding::Valid,
            "NOTSET" => Padding::Explicit(p),
            "VALID" => Padding::Valid,
            "SAME_UPPER" => Padding::Same,
            other => {
                return Err(at.err(format!(
                    "auto_pad {other} is not supported (NOTSET, VALID, SAME_UPPER are)"
                )))
            }
        };
        let mut cfg = PoolConfig::new(kernel[0])
            .with_padding(padding)
            .with_ceil_mode(at.int("ceil_mode", 0)? != 0);
        cfg.pool_size = kernel;
        cfg.strides = Some(strides);
        let layer = if max {
            LayerSpec::MaxPooling2D(cfg)
        } else {
            LayerSpec::AveragePooling2D(cfg)
        };
        self.simple(n, layer, x, Layout::Nchw, vec![])
    }

    fn pad(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["mode", "pads", "value"])?;
        let mode = at.string("mode", "constant")?;
        let value = match self.constant(n, 2)? {
            Some(Const::F32(_, v)) => v.first().copied().unwrap_or(0.0),
            Some(Const::I64(v)) => v.first().copied().unwrap_or(0) as f32,
            None => at.float("value", 0.0)?,
        };
        if mode != "constant" || value != 0.0 {
            return Err(at.err(format!(
                "only zero padding is supported (mode '{mode}', value {value})"
            )));
        }
        let pads = match (at.ints("pads")?, self.constant(n, 1)?) {
            (Some(p), _) => p,
            (None, Some(Const::I64(p))) => p.clone(),
            _ => return Err(at.err("the pads must be a constant int64 tensor".into())),
        };
        // An earlier pending pad becomes its own node first.
        let x = self.materialize(n, 0)?;
        self.image(n, &x)?;
        let [t, l, b, r] = match pads.as_slice() {
            [0, 0, t, l, 0, 0, b, r]
                if [t, l, b, r].iter().all(|&&v| (0..=1 << 16).contains(&v)) =>
            {
                [*t as usize, *l as usize, *b as usize, *r as usize]
            }
            _ => {
                return Err(at.err(format!(
                    "only non-negative padding of H and W is supported, found pads {pads:?}"
                )))
            }
        };
        let pad = [t, b, l, r];
        // With one reader it stays pending: a Conv folds it into its own
        // padding, any other reader materializes it as a ZeroPadding2D.
        if self.readers.get(&n.output[0]).copied().unwrap_or(0) == 1 {
            self.set(
                n,
                Val {
                    pad: Some(pad),
                    ..x
                },
            );
        } else {
            let layer = LayerSpec::ZeroPadding2D {
                padding: [[t, b], [l, r]],
            };
            self.simple(n, layer, x, Layout::Nchw, vec![])?;
        }
        Ok(())
    }

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
