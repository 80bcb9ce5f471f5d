//! `ModelSpec`: the description of a model, a graph of named layers, and
//! its two builders: Keras's Sequential (each layer takes the one before)
//! and Keras's Functional API (each layer takes the nodes it is applied to).
//!
//! ```text
//! Sequential::new(&[28, 28, 1])              a chain: input shape without the batch axis, NHWC
//!     .conv2d(Conv2dConfig::new(32, 5).with_padding(Padding::Same).with_activation(Activation::Relu))
//!     .max_pool(PoolConfig::new(2))
//!     .flatten()
//!     .dense(DenseConfig::new(10).with_activation(Activation::Softmax))
//!     .build(seed)?                         -> Model
//!
//! let mut g = ModelSpec::new(&[32, 32, 16]);  a graph: a residual block
//! let x = g.input();
//! let h = g.apply(LayerSpec::Conv2D(conv3x3), &[&x]);
//! let h = g.apply(LayerSpec::Conv2D(conv3x3_linear), &[&h]);
//! let s = g.apply(LayerSpec::Add, &[&h, &x]);
//! g.apply(LayerSpec::Activation { activation: Activation::Relu }, &[&s]);
//! g.build(seed)?                              -> Model
//! ```
//!
//! There is one description and one model type: a chain is the graph whose
//! nodes all leave `inputs` unset (each takes the node before it, the first
//! takes the model's input). Nodes are listed in an order where every input
//! comes before the node that reads it (Keras's `get_config()` order), the
//! last node is the model's output, and every other node's output is read
//! by some later node. In files a node is its layer's fields plus an
//! optional `name` and `inputs` (names of earlier nodes, or `input`).

use crate::error::config_err;
use crate::layer::Layer;
use crate::spec::checked_sum;
use crate::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, DropoutConfig, LayerSpec, Model,
    NnError, PoolConfig, Result, Rng,
};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The name by which nodes refer to the model's input.
pub const INPUT: &str = "input";

/// The most bytes one activation may take in `evaluate` and `predict`:
/// 16 MiB, e.g. 8 images through a 128x128x3 net's first 32-filter
/// convolution (256 would be a 520 MB activation), 163 through the MNIST
/// net's first (28x28x32); per-image work is large enough there that
/// smaller batches cost no measurable speed.
pub const INFERENCE_ACTIVATION_BYTES: usize = 16 << 20;

/// One layer of a model and where its inputs come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique name; `None` takes Keras's automatic name (`conv2d`, `conv2d_1`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Names of the nodes it reads (or `input`); `None` means the node before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// False for a frozen layer (Keras's `trainable=False`): its weights do not
    /// change in training, and a frozen BatchNormalization runs in inference
    /// mode (moving statistics, no update).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub trainable: bool,
    /// The layer.
    #[serde(flatten)]
    pub layer: LayerSpec,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Node {
    /// A node that takes the node before it.
    pub fn chained(layer: LayerSpec) -> Node {
        Node {
            name: None,
            inputs: None,
            trainable: true,
            layer,
        }
    }
}

/// A model description: the input shape and the nodes, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Per-sample input shape: `[H, W, C]` or `[F]`.
    pub input_shape: Vec<usize>,
    /// The nodes, inputs before the nodes that read them; the last is the output.
    pub layers: Vec<Node>,
}

/// Keras's name for a chain builder: the same type as [`ModelSpec`].
pub type Sequential = ModelSpec;

/// Where a node's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The model's input.
    Input,
    /// The output of node `i`.
    Node(usize),
}

/// The resolved connections of a [`ModelSpec`].
#[derive(Clone, Debug, PartialEq)]
pub struct Wiring {
    /// Every node's name (given or automatic).
    pub names: Vec<String>,
    /// Every node's inputs.
    pub inputs: Vec<Vec<Source>>,
    /// How many node inputs read each node's output.
    pub readers: Vec<usize>,
    /// How many node inputs read the model's input.
    pub input_readers: usize,
}

impl Wiring {
    /// True when every node reads only the node before it (or the input, for the first).
    pub fn is_chain(&self) -> bool {
        self.inputs.iter().enumerate().all(|(i, s)| {
            s.len() == 1
                && s[0]
                    == if i == 0 {
                        Source::Input
                    } else {
                        Source::Node(i - 1)
                    }
        })
    }

    /// The name of a source.
    pub fn source_name(&self, s: Source) -> &str {
        match s {
            Source::Input => INPUT,
            Source::Node(i) => &self.names[i],
        }
    }
}

/// Keras's automatic name stem for a layer kind, its `to_snake_case`: an
/// underscore before each capital that starts a word or follows a small
/// letter, then lower case (`Conv2D` -> `conv2d`, `MaxPooling2D` ->
/// `max_pooling2d`, `DepthwiseConv2D` -> `depthwise_conv2d`).
pub(crate) fn snake(kind: &str) -> String {
    let c: Vec<char> = kind.chars().collect();
    let mut out = String::with_capacity(kind.len() + 4);
    for (i, &ch) in c.iter().enumerate() {
        let starts_word = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let after_small = i > 0 && c[i - 1].is_ascii_lowercase();
        if i > 0 && ch.is_ascii_uppercase() && (starts_word || after_small) {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// `base`, `base_1`, `base_2`, ...: the first not in `taken`.
pub(crate) fn fresh_name(base: &str, taken: &std::collections::HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (1..)
        .map(|k| format!("{base}_{k}"))
        .find(|n| !taken.contains(n))
        .expect("an unused name exists")
}

impl ModelSpec {
    /// An empty model for inputs of `input_shape` (no batch axis).
    pub fn new(input_shape: &[usize]) -> Self {
        ModelSpec {
            input_shape: input_shape.to_vec(),
            layers: Vec::new(),
        }
    }

    /// Appends a layer that takes the node before it (Keras's `model.add`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: LayerSpec) -> Self {
        self.layers.push(Node::chained(layer));
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

    /// The model's input, to apply layers to (Functional API).
    pub fn input(&self) -> String {
        INPUT.to_string()
    }

    /// Applies `layer` to the nodes named `inputs` (Keras's `layer(x)` or
    /// `Add()([a, b])`) and returns the new node's automatic name.
    pub fn apply(&mut self, layer: LayerSpec, inputs: &[&str]) -> String {
        let taken: std::collections::HashSet<String> = self.wiring_names().into_iter().collect();
        let name = fresh_name(&snake(layer.kind()), &taken);
        self.apply_named(&name, layer, inputs)
    }

    /// Like [`ModelSpec::apply`], with a given name.
    pub fn apply_named(&mut self, name: &str, layer: LayerSpec, inputs: &[&str]) -> String {
        self.layers.push(Node {
            name: Some(name.to_string()),
            inputs: Some(inputs.iter().map(|s| s.to_string()).collect()),
            trainable: true,
            layer,
        });
        name.to_string()
    }

    /// The position of the node called `name` (given or automatic), or an
    /// error listing the names.
    pub fn position(&self, name: &str) -> Result<usize> {
        let names = self.wiring_names();
        names.iter().position(|n| n == name).ok_or_else(|| {
            let shown: Vec<&str> = names.iter().map(|s| s.as_str()).take(12).collect();
            config_err(
                "layer",
                format!(
                    "no layer is called '{name}'; the layers are {}{}",
                    shown.join(", "),
                    if names.len() > 12 { ", ..." } else { "" }
                ),
            )
        })
    }

    /// Freezes (or unfreezes) the layer called `name`.
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> Result<()> {
        let i = self.position(name)?;
        self.layers[i].trainable = trainable;
        Ok(())
    }

    /// Freezes the first `n` layers (in node order) and unfreezes the rest.
    pub fn freeze_first(&mut self, n: usize) {
        for (i, node) in self.layers.iter_mut().enumerate() {
            node.trainable = i >= n;
        }
    }

    /// Freezes every layer up to and including `name`, and unfreezes the rest.
    pub fn freeze_through(&mut self, name: &str) -> Result<()> {
        let i = self.position(name)?;
        self.freeze_first(i + 1);
        Ok(())
    }

    /// Every node's name: the given one, or Keras's automatic one (per
    /// kind, `conv2d`, `conv2d_1`, ..., skipping names given elsewhere).
    fn wiring_names(&self) -> Vec<String> {
        let mut taken: std::collections::HashSet<String> =
            self.layers.iter().filter_map(|n| n.name.clone()).collect();
        taken.insert(INPUT.to_string());
        self.layers
            .iter()
            .map(|n| match &n.name {
                Some(name) => name.clone(),
                None => {
                    let name = fresh_name(&snake(n.layer.kind()), &taken);
                    taken.insert(name.clone());
                    name
                }
            })
            .collect()
    }

    /// Resolves the names into connections, rejecting duplicate names,
    /// inputs that name no node (dangling), inputs that name a later node
    /// (a cycle, or nodes out of order), unread nodes, and merges or
    /// single-input layers with the wrong number of inputs. Errors name the layer.
    pub fn wiring(&self) -> Result<Wiring> {
        let names = self.wiring_names();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            if n == INPUT || index.insert(n.as_str(), i).is_some() {
                return Err(self.node_err(i, &names, format!("the name '{n}' is used twice")));
            }
        }
        let mut inputs = Vec::with_capacity(self.layers.len());
        for (i, node) in self.layers.iter().enumerate() {
            let srcs: Vec<Source> = match &node.inputs {
                None if i == 0 => vec![Source::Input],
                None => vec![Source::Node(i - 1)],
                Some(list) => {
                    let mut v = Vec::with_capacity(list.len());
                    for s in list {
                        if s == INPUT {
                            v.push(Source::Input);
                            continue;
                        }
                        match index.get(s.as_str()) {
                            Some(&j) if j < i => v.push(Source::Node(j)),
                            Some(&j) => {
                                let what = if self.reaches(j, i, &index) {
                                    format!("input '{s}' depends on this layer's output: a cycle")
                                } else {
                                    format!(
                                        "input '{s}' is listed after this layer: list every \
                                         layer after the layers it reads"
                                    )
                                };
                                let _ = j;
                                return Err(self.node_err(i, &names, what));
                            }
                            None => {
                                return Err(self.node_err(
                                    i,
                                    &names,
                                    format!(
                                        "input '{s}' is not a layer of this model (nor '{INPUT}')"
                                    ),
                                ))
                            }
                        }
                    }
                    v
                }
            };
            let merge = node.layer.is_merge();
            if srcs.is_empty() || (merge && srcs.len() < 2) || (!merge && srcs.len() != 1) {
                let want = if merge {
                    "at least 2 inputs"
                } else {
                    "exactly 1 input"
                };
                return Err(self.node_err(
                    i,
                    &names,
                    format!("takes {want}, found {}", srcs.len()),
                ));
            }
            inputs.push(srcs);
        }
        let mut readers = vec![0; self.layers.len()];
        let mut input_readers = 0;
        for s in inputs.iter().flatten() {
            match *s {
                Source::Input => input_readers += 1,
                Source::Node(j) => readers[j] += 1,
            }
        }
        if let Some(i) = (0..self.layers.len().saturating_sub(1)).find(|&i| readers[i] == 0) {
            return Err(self.node_err(
                i,
                &names,
                "its output is never used (only the last layer is the model's output)".into(),
            ));
        }
        Ok(Wiring {
            names,
            inputs,
            readers,
            input_readers,
        })
    }

    /// True when node `from`'s inputs lead (through any chain of inputs) to node `to`.
    fn reaches(&self, from: usize, to: usize, index: &HashMap<&str, usize>) -> bool {
        let mut stack = vec![from];
        let mut seen = vec![false; self.layers.len()];
        while let Some(k) = stack.pop() {
            if k == to {
                return true;
            }
            if std::mem::replace(&mut seen[k], true) {
                continue;
            }
            match &self.layers[k].inputs {
                None if k > 0 => stack.push(k - 1),
                None => {}
                Some(list) => stack.extend(list.iter().filter_map(|s| index.get(s.as_str()))),
            }
        }
        false
    }

    fn node_err(&self, i: usize, names: &[String], msg: String) -> NnError {
        NnError::Shape {
            index: i,
            layer: format!("{} '{}'", self.layers[i].layer.kind(), names[i]),
            msg,
        }
    }

    /// The per-sample output shape of every node, checking each one; the
    /// error names the first layer that cannot take its inputs.
    pub fn output_shapes(&self) -> Result<Vec<Vec<usize>>> {
        Ok(self.checked()?.1)
    }

    /// The wiring and every node's output shape, checked.
    pub fn checked(&self) -> Result<(Wiring, Vec<Vec<usize>>)> {
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
        let wiring = self.wiring()?;
        let chain = wiring.is_chain();
        let mut out: Vec<Vec<usize>> = Vec::with_capacity(self.layers.len());
        // Parameter counts are checked too, so that every model that passes
        // has a summary (found by the notation fuzzer: a stack of huge
        // Dense layers whose total overflowed).
        let mut params = 0usize;
        for (i, node) in self.layers.iter().enumerate() {
            let ins: Vec<&[usize]> = wiring.inputs[i]
                .iter()
                .map(|s| match *s {
                    Source::Input => self.input_shape.as_slice(),
                    Source::Node(j) => out[j].as_slice(),
                })
                .collect();
            let at = |e: NnError| {
                let shapes = if ins.len() == 1 {
                    format!("input {:?}", ins[0])
                } else {
                    let parts: Vec<String> = wiring.inputs[i]
                        .iter()
                        .zip(&ins)
                        .map(|(s, sh)| format!("{sh:?} from '{}'", wiring.source_name(*s)))
                        .collect();
                    format!("inputs {}", parts.join(", "))
                };
                NnError::Shape {
                    index: i,
                    layer: if chain {
                        node.layer.kind().into()
                    } else {
                        format!("{} '{}'", node.layer.kind(), wiring.names[i])
                    },
                    msg: format!("{shapes}: {e}"),
                }
            };
            let next = node.layer.output_shape_of(&ins).map_err(at)?;
            let (t, nt) = node.layer.param_counts(ins[0]).map_err(at)?;
            params = checked_sum(params, t)
                .and_then(|p| checked_sum(p, nt))
                .map_err(at)?;
            out.push(next);
        }
        Ok((wiring, out))
    }

    /// The name of the last node whose output is an image `[H, W, C]`: where
    /// the classifier starts (transfer learning's default cut).
    pub fn default_cut(&self) -> Result<String> {
        let (wiring, shapes) = self.checked()?;
        shapes
            .iter()
            .rposition(|s| s.len() == 3)
            .map(|i| wiring.names[i].clone())
            .ok_or_else(|| config_err("cut", "the model has no layer with an image output"))
    }

    /// The final output shape.
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        Ok(self
            .output_shapes()?
            .pop()
            .unwrap_or_else(|| self.input_shape.clone()))
    }

    /// The per-sample shape of node `i`'s first input, given every node's output shape.
    pub(crate) fn first_input_shape<'a>(
        &'a self,
        wiring: &Wiring,
        shapes: &'a [Vec<usize>],
        i: usize,
    ) -> &'a [usize] {
        match wiring.inputs[i][0] {
            Source::Input => &self.input_shape,
            Source::Node(j) => &shapes[j],
        }
    }

    /// Bytes a training step with batches of `batch` samples needs, roughly:
    /// parameters four times (values, gradients, two optimizer slots) plus,
    /// per sample, every layer's output kept for backward three times
    /// (output, cached copy, gradient) and the largest im2col buffer.
    pub fn training_bytes(&self, batch: usize) -> Result<u128> {
        let (wiring, shapes) = self.checked()?;
        let mut params = 0u128;
        let mut acts = self
            .input_shape
            .iter()
            .map(|&d| d as u128)
            .product::<u128>();
        let mut cols = 0u128;
        for (i, (node, out)) in self.layers.iter().zip(&shapes).enumerate() {
            let input = self.first_input_shape(&wiring, &shapes, i);
            let (t, nt) = node.layer.param_counts(input)?;
            params += (t + nt) as u128;
            let n_out = out.iter().map(|&d| d as u128).product::<u128>();
            acts += n_out;
            cols = cols.max(node.layer.layer_kind().scratch_elements(input, out));
        }
        let per_sample = acts.saturating_mul(3).saturating_add(cols);
        Ok(params
            .saturating_mul(16)
            .saturating_add((batch as u128).saturating_mul(per_sample).saturating_mul(4)))
    }

    /// Bytes of the largest single activation (or convolution patch
    /// matrix) one sample produces in inference: what bounds the batch of
    /// `evaluate` and `predict` (see [`INFERENCE_ACTIVATION_BYTES`]).
    pub fn largest_activation_bytes(&self) -> Result<u128> {
        let (wiring, shapes) = self.checked()?;
        let mut largest = self
            .input_shape
            .iter()
            .map(|&d| d as u128)
            .product::<u128>();
        for (i, (node, out)) in self.layers.iter().zip(&shapes).enumerate() {
            let n_out = out.iter().map(|&d| d as u128).product::<u128>();
            largest = largest.max(n_out);
            let input = self.first_input_shape(&wiring, &shapes, i);
            largest = largest.max(node.layer.layer_kind().scratch_elements(input, out));
        }
        Ok(largest * 4)
    }

    /// The batch for inference: `requested`, lowered so that no activation
    /// exceeds [`INFERENCE_ACTIVATION_BYTES`] (at least 1).
    pub fn inference_batch(&self, requested: usize) -> usize {
        let per = self.largest_activation_bytes().unwrap_or(1).max(1);
        let fits = (INFERENCE_ACTIVATION_BYTES as u128 / per).max(1);
        requested.clamp(1, fits.min(usize::MAX as u128) as usize)
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

    /// Builds the model, drawing initial weights from `seed` (nodes in order).
    pub fn build(&self, seed: u64) -> Result<Model> {
        let (wiring, shapes) = self.checked()?;
        let mut rng = Rng::seed_from_u64(seed);
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(self.layers.len());
        let mut head = Activation::Linear;
        for (i, node) in self.layers.iter().enumerate() {
            let mut spec = node.layer.clone();
            if i + 1 == self.layers.len() {
                head = split_activation(&mut spec);
            }
            let ins: Vec<&[usize]> = wiring.inputs[i]
                .iter()
                .map(|s| match *s {
                    Source::Input => self.input_shape.as_slice(),
                    Source::Node(j) => shapes[j].as_slice(),
                })
                .collect();
            let layer = spec.build_of(&ins, &mut rng).map_err(|e| NnError::Shape {
                index: i,
                layer: spec.kind().into(),
                msg: e.to_string(),
            })?;
            layers.push(layer);
        }
        Ok(Model::from_parts(
            self.clone(),
            wiring,
            layers,
            head,
            Rng::seed_from_u64(seed.wrapping_add(1)),
        ))
    }
}

/// Moves a softmax or sigmoid out of the final layer, returning it.
fn split_activation(spec: &mut LayerSpec) -> Activation {
    let kind = spec.layer_kind();
    match kind.activation() {
        Some(a @ (Activation::Softmax | Activation::Sigmoid)) => {
            *spec = kind
                .with_activation(Activation::Linear)
                .expect("a kind with an activation can replace it");
            a
        }
        _ => Activation::Linear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_names_are_keras_s() {
        // Keras 3.15.1's `layer.name` for a layer of each kind (the last two,
        // which Keras lacks, named by the same rule).
        let keras = "Dense=dense BatchNormalization=batch_normalization Flatten=flatten \
            GlobalAveragePooling2D=global_average_pooling2d GlobalMaxPooling2D=global_max_pooling2d \
            DepthwiseConv2D=depthwise_conv2d Dropout=dropout StochasticDepth=stochastic_depth SeparableConv2D=separable_conv2d Conv2D=conv2d \
            MaxPooling2D=max_pooling2d AveragePooling2D=average_pooling2d Activation=activation \
            ZeroPadding2D=zero_padding2d Add=add Concatenate=concatenate Multiply=multiply \
            ChannelShuffle=channel_shuffle ChannelSlice=channel_slice";
        let pairs: Vec<(&str, &str)> = keras
            .split_whitespace()
            .map(|p| p.split_once('=').unwrap())
            .collect();
        assert_eq!(
            pairs.len(),
            crate::KIND_NAMES.len(),
            "a kind without its Keras name here"
        );
        for (kind, name) in pairs {
            assert!(crate::KIND_NAMES.contains(&kind), "{kind}");
            assert_eq!(snake(kind), name);
        }
    }
    use crate::Padding;

    fn conv(f: usize) -> LayerSpec {
        LayerSpec::Conv2D(
            Conv2dConfig::new(f, 3)
                .with_padding(Padding::Same)
                .with_activation(Activation::Relu),
        )
    }

    fn residual() -> ModelSpec {
        let mut g = ModelSpec::new(&[8, 8, 4]);
        let x = g.input();
        let h = g.apply(conv(4), &[&x]);
        let h = g.apply(conv(4), &[&h]);
        let s = g.apply(LayerSpec::Add, &[&h, &x]);
        g.apply(LayerSpec::GlobalAveragePooling2D, &[&s]);
        g
    }

    #[test]
    fn functional_api_names_and_wires_nodes() {
        let g = residual();
        let w = g.wiring().unwrap();
        assert_eq!(
            w.names,
            ["conv2d", "conv2d_1", "add", "global_average_pooling2d"]
        );
        assert_eq!(w.inputs[2], [Source::Node(1), Source::Input]);
        assert_eq!((w.readers.clone(), w.input_readers), (vec![1, 1, 1, 0], 2));
        assert!(!w.is_chain());
        assert_eq!(g.output_shape().unwrap(), vec![4]);
        let chain = Sequential::new(&[4])
            .dense(DenseConfig::new(3))
            .dense(DenseConfig::new(2));
        assert!(chain.wiring().unwrap().is_chain());
    }

    #[test]
    fn bad_graphs_are_rejected_naming_the_layer() {
        let err = |g: &ModelSpec| g.output_shapes().unwrap_err().to_string();
        // Dangling input.
        let mut g = residual();
        g.layers[2].inputs = Some(vec!["conv2d_1".into(), "nowhere".into()]);
        let e = err(&g);
        assert!(
            e.contains("Add 'add'") && e.contains("'nowhere' is not a layer"),
            "{e}"
        );
        // A cycle: conv2d reads add, which reads conv2d_1, which reads conv2d.
        let mut g = residual();
        g.layers[0].inputs = Some(vec!["add".into()]);
        let e = err(&g);
        assert!(
            e.contains("Conv2D 'conv2d'") && e.contains("a cycle"),
            "{e}"
        );
        // Shape mismatch at an Add.
        let mut g = residual();
        g.layers[1].layer = conv(8);
        let e = err(&g);
        assert!(
            e.contains("Add 'add'")
                && e.contains("[8, 8, 8] from 'conv2d_1'")
                && e.contains("[8, 8, 4] from 'input'"),
            "{e}"
        );
        // A merge with one input, an unread node, a duplicate name.
        let mut g = residual();
        g.layers[2].inputs = Some(vec!["conv2d_1".into()]);
        assert!(err(&g).contains("at least 2 inputs"), "{}", err(&g));
        let mut g = residual();
        g.layers[2].inputs = Some(vec!["conv2d".into(), "input".into()]);
        assert!(
            err(&g).contains("'conv2d_1'") && err(&g).contains("never used"),
            "{}",
            err(&g)
        );
        let mut g = residual();
        g.layers[1].name = Some("conv2d".into());
        assert!(err(&g).contains("used twice"), "{}", err(&g));
    }

    #[test]
    fn graph_files_round_trip_exactly() {
        let g = residual();
        let json = serde_json::to_string(&g).unwrap();
        assert!(
            json.contains(r#""name":"add","inputs":["conv2d_1","input"],"type":"Add""#),
            "{json}"
        );
        let back: ModelSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, g);
        let toml_text = toml::to_string(&g).unwrap();
        let back: ModelSpec = toml::from_str(&toml_text).unwrap();
        assert_eq!(back, g);
        // A chain file (no names, no inputs) stays a chain.
        let chain: ModelSpec = serde_json::from_str(
            r#"{"input_shape":[4],"layers":[{"type":"Dense","units":3},{"type":"Dense","units":2}]}"#,
        )
        .unwrap();
        assert!(chain.wiring().unwrap().is_chain());
        assert!(!serde_json::to_string(&chain).unwrap().contains("inputs"));
    }
}
