//! `Model`: a built, trainable [`ModelSpec`]: one layer per node, run in
//! node order; a node's output is handed to its last reader and copied for
//! the others, and gradients flowing into a node from several readers are
//! summed in reader order.
//!
//! The model's final activation (softmax or sigmoid) is split off into a
//! "head" when the model is built: training feeds the logits to the fused
//! form of the loss, `predict` applies the head. Every other layer runs as
//! configured.

use crate::error::config_err;
use crate::graph::{ModelSpec, Source, Wiring};
use crate::kind::Role;
use crate::layer::{Layer, Mode, Param};
use crate::optim::Optimizer;
use crate::{Activation, Loss, Result, Rng};
use convnet_tensor::conv::Tail;
use convnet_tensor::{Precision, Tensor};

#[path = "inspect.rs"]
mod inspect;
pub use inspect::Inspection;

/// A built model: layers with parameters, the output head, and the RNG
/// used for dropout and shuffling.
pub struct Model {
    spec: ModelSpec,
    wiring: Wiring,
    /// Per node: whether backward must run through it (it, or a node it
    /// depends on, has weights that train). A frozen base under a new head
    /// is skipped entirely.
    needs_backward: Vec<bool>,
    pub(crate) layers: Vec<Box<dyn Layer>>,
    head: Activation,
    pub(crate) rng: Rng,
    pub(crate) training: Option<Training>,
    /// Whether forward passes may fuse neighbouring nodes (default true).
    fusion: bool,
    /// The arithmetic of the layers' products (default fp32).
    precision: Precision,
    /// Per node: a ReLU that ran in an earlier node's pass in the latest
    /// forward (training: the batch norm before it, so backward goes
    /// straight to that batch norm; inference: the convolution before the
    /// batch norm).
    fused_relu: Vec<bool>,
    /// Per node: a residual addition (and the ReLU after it) that ran in an
    /// earlier node's pass in the latest forward (training: the batch norm
    /// before it, and backward applies the ReLU's mask the batch norm kept
    /// and the sum's gradient; inference: the convolution before that).
    fused_add: Vec<bool>,
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
    /// Assembles a model from its checked description and built layers.
    pub(crate) fn from_parts(
        spec: ModelSpec,
        wiring: Wiring,
        layers: Vec<Box<dyn Layer>>,
        head: Activation,
        rng: Rng,
    ) -> Model {
        let mut m = Model {
            spec,
            wiring,
            needs_backward: Vec::new(),
            layers,
            head,
            rng,
            training: None,
            fusion: true,
            precision: Precision::Fp32,
            fused_relu: Vec::new(),
            fused_add: Vec::new(),
        };
        m.update_needs_backward();
        m
    }

    /// True for node `k` of a frozen base: frozen, and nothing at or below
    /// it trains (and for `k` past the last node). Such nodes run their
    /// inference form in training too.
    fn inference_only(&self, k: usize) -> bool {
        k >= self.layers.len() || (self.is_frozen(k) && !self.needs_backward[k])
    }

    /// Recomputes which nodes backward must visit.
    fn update_needs_backward(&mut self) {
        let n = self.layers.len();
        let mut needs = vec![false; n];
        for i in 0..n {
            let trains = !self.is_frozen(i) && self.layers[i].params().iter().any(|p| p.trainable);
            needs[i] = trains
                || self.wiring.inputs[i]
                    .iter()
                    .any(|s| matches!(*s, Source::Node(j) if needs[j]));
        }
        self.needs_backward = needs;
    }

    /// The description the model was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Node names and connections.
    pub fn wiring(&self) -> &Wiring {
        &self.wiring
    }

    /// True when node `i` is frozen (its `Node::trainable` is false).
    pub fn is_frozen(&self, i: usize) -> bool {
        !self.spec.layers[i].trainable
    }

    /// Freezes or unfreezes the layer called `name` (Keras's
    /// `layer.trainable = ...`). As in Keras, recompile afterwards: the
    /// optimizer's state belongs to the old set of trainable weights.
    pub fn set_trainable(&mut self, name: &str, trainable: bool) -> Result<()> {
        self.spec.set_trainable(name, trainable)?;
        self.update_needs_backward();
        Ok(())
    }

    /// Takes every node's trainable flag from `flags` (in node order), e.g.
    /// after `--freeze` was applied to a copy of the description.
    pub fn set_trainable_flags(&mut self, flags: impl IntoIterator<Item = bool>) {
        for (node, t) in self.spec.layers.iter_mut().zip(flags) {
            node.trainable = t;
        }
        self.update_needs_backward();
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
        self.check_input_shape(x.shape(), what)
    }

    /// Checks that `shape` is `[N, ...]` with this model's per-sample input shape.
    pub fn check_input_shape(&self, shape: &[usize], what: &str) -> Result<()> {
        if shape.len() != self.spec.input_shape.len() + 1 || shape[1..] != self.spec.input_shape[..]
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
                    shape
                ),
            ));
        }
        Ok(())
    }

    /// The inputs of node `i`: each source's output, handed over by its
    /// last reader (`left` counts the reads still to come) and copied for the others.
    fn gather(
        &self,
        i: usize,
        x: &mut Option<Tensor>,
        input_left: &mut usize,
        outs: &mut [Option<Tensor>],
        left: &mut [usize],
    ) -> Vec<Tensor> {
        let take = |slot: &mut Option<Tensor>, n: &mut usize| {
            *n -= 1;
            if *n == 0 {
                slot.take()
                    .expect("a node's output is kept until its last reader")
            } else {
                slot.as_ref().expect("kept").clone()
            }
        };
        self.wiring.inputs[i]
            .iter()
            .map(|s| match *s {
                Source::Input => take(x, input_left),
                Source::Node(j) => take(&mut outs[j], &mut left[j]),
            })
            .collect()
    }

    /// True when node `i + 1` is the only reader of node `i` and reads only it.
    fn feeds_only_next(&self, i: usize) -> bool {
        i + 1 < self.layers.len()
            && self.wiring.readers[i] == 1
            && self.wiring.inputs[i + 1] == [Source::Node(i)]
    }

    /// Turns the fusion of neighbouring nodes on or off (on by default);
    /// results are the same bit for bit, only the number of memory passes
    /// changes (for tests and benchmarks).
    pub fn set_fusion(&mut self, on: bool) {
        self.fusion = on;
    }

    /// Runs the layers' products in `precision` from now on, in training
    /// and inference ([`Precision::Bf16`]: bf16 operands, fp32 sums, where
    /// a layer has bf16 kernels; weights, optimizer state, batch-norm
    /// statistics, softmax and the loss stay fp32). Bf16 on a CPU without
    /// bf16 dot products runs the portable loop: the same sums, slowly
    /// (see [`Precision::on_this_cpu`]).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        for l in &mut self.layers {
            l.set_precision(precision);
        }
    }

    /// The arithmetic of the layers' products ([`Model::set_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// How many ReLUs the latest forward ran inside an earlier node (the
    /// batch norm in training, the convolution in inference).
    pub fn fused_relus(&self) -> usize {
        self.fused_relu.iter().filter(|&&f| f).count()
    }

    /// How many residual additions (each with its ReLU) the latest forward
    /// ran inside an earlier node (the batch norm in training, the
    /// convolution in inference).
    pub fn fused_adds(&self) -> usize {
        self.fused_add.iter().filter(|&&f| f).count()
    }

    /// When node `i + 1` sums node `i` (a node that trains, read by
    /// nothing else) and one other source, and node `i + 2` is a ReLU that
    /// alone reads that sum: the other source. Node `i` is then asked to
    /// apply the sum and the ReLU in its own pass
    /// ([`Layer::forward_train_add_relu`]; batch norm can).
    fn add_relu_triple(&self, i: usize) -> Option<Source> {
        if self.is_frozen(i) {
            return None;
        }
        self.add_relu_shortcut(i)
    }

    /// [`Model::add_relu_triple`] whether or not node `i` trains (for
    /// inference).
    fn add_relu_shortcut(&self, i: usize) -> Option<Source> {
        let w = &self.wiring;
        if i + 2 >= self.layers.len()
            || w.readers[i] != 1
            || w.readers[i + 1] != 1
            || w.inputs[i + 2] != [Source::Node(i + 1)]
        {
            return None;
        }
        let kind = |k: usize| self.spec.layers[k].layer.layer_kind();
        if !kind(i + 1).sums_inputs() || kind(i + 2).role() != Role::Activation(Activation::Relu) {
            return None;
        }
        let me = Source::Node(i);
        match w.inputs[i + 1][..] {
            [a, b] if a == me && b != me => Some(b),
            [a, b] if b == me && a != me => Some(a),
            _ => None,
        }
    }

    /// True when node `i + 1` is a ReLU that reads only node `i`, a node
    /// that trains (not frozen) read by nothing else: node `i` is asked to
    /// apply the ReLU in its own pass ([`Layer::forward_train_relu`];
    /// batch norm can).
    fn relu_pair(&self, i: usize) -> bool {
        !self.is_frozen(i) && self.relu_next(i)
    }

    /// True when node `i + 1` is a ReLU that reads only node `i`, read by
    /// nothing else.
    fn relu_next(&self, i: usize) -> bool {
        self.feeds_only_next(i)
            && self.spec.layers[i + 1].layer.layer_kind().role()
                == Role::Activation(Activation::Relu)
    }

    /// Runs the layers; the head is applied only when `with_head`.
    ///
    /// Fusions (same arithmetic, one memory pass fewer): in inference, a
    /// batch norm whose only input is a Conv2D read by nothing else is
    /// applied inside the convolution's pass, and with it the ReLU, or the
    /// residual sum and ReLU, that alone follow it; in training, a ReLU
    /// (or a residual sum and ReLU) that only reads a batch norm runs in
    /// the batch norm's pass, and its backward inside the batch norm's.
    pub fn forward(&mut self, x: &Tensor, mode: Mode, with_head: bool) -> Tensor {
        self.run_forward(x, mode, with_head, None)
    }

    /// [`Model::forward`]; with `times`, adds each node's seconds to it and
    /// does not fuse.
    fn run_forward(
        &mut self,
        x: &Tensor,
        mode: Mode,
        with_head: bool,
        mut times: Option<&mut [f64]>,
    ) -> Tensor {
        // Large buffers the last step freed are reused by this one; older
        // ones are given back (see convnet_tensor::recycle).
        convnet_tensor::recycle::new_step();
        let n = self.layers.len();
        let mut h = if n == 0 {
            x.clone()
        } else {
            let mut input = Some(x.clone());
            let mut input_left = self.wiring.input_readers;
            let mut left = self.wiring.readers.clone();
            let mut outs: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
            let fuse = self.fusion && times.is_none();
            self.fused_relu = vec![false; n];
            self.fused_add = vec![false; n];
            let mut i = 0;
            while i < n {
                let mut xs = self.gather(i, &mut input, &mut input_left, &mut outs, &mut left);
                // A frozen base runs its inference form even in training
                // (Keras's `base(x, training=False)`): nothing at or below
                // it trains, so no state is kept for a backward that never
                // comes, and the inference kernels and fusions apply.
                let node_train = mode == Mode::Train && !self.inference_only(i);
                let triple = (node_train && fuse && xs.len() == 1)
                    .then(|| self.add_relu_triple(i))
                    .flatten();
                if let Some(other) = triple {
                    let x = xs.pop().expect("one input");
                    // The shortcut is lent, and taken only once the fused pass ran.
                    let shortcut = match other {
                        Source::Input => input.as_ref(),
                        Source::Node(j) => outs[j].as_ref(),
                    }
                    .expect("the shortcut is computed before the sum");
                    match self.layers[i].forward_train_add_relu(x, shortcut, &mut self.rng) {
                        Ok(y) => {
                            release(other, (&mut input, &mut input_left), &mut outs, &mut left);
                            left[i] = 0;
                            left[i + 1] = 0;
                            outs[i + 2] = Some(y);
                            self.fused_add[i + 1] = true;
                            i += 3;
                            continue;
                        }
                        Err(x) => xs.push(x),
                    }
                }
                if node_train && fuse && xs.len() == 1 && self.relu_pair(i) {
                    let x = xs.pop().expect("one input");
                    match self.layers[i].forward_train_relu(x, &mut self.rng) {
                        Ok(y) => {
                            left[i] = 0;
                            outs[i + 1] = Some(y);
                            self.fused_relu[i + 1] = true;
                            i += 2;
                            continue;
                        }
                        Err(x) => xs.push(x),
                    }
                }
                let eval = mode == Mode::Eval || (i..i + 4).all(|k| self.inference_only(k));
                if eval && fuse && xs.len() == 1 && self.feeds_only_next(i) {
                    if let Some((scale, shift)) = self.layers[i + 1].eval_affine() {
                        // The nodes after the batch norm that join the pass:
                        // a residual sum and its ReLU, or a ReLU.
                        let sum = self.add_relu_shortcut(i + 1);
                        let relu = sum.is_none() && self.relu_next(i + 1);
                        let tail = match sum {
                            Some(Source::Input) => {
                                Tail::AddRelu(input.as_ref().expect("kept").data())
                            }
                            Some(Source::Node(j)) => {
                                Tail::AddRelu(outs[j].as_ref().expect("computed").data())
                            }
                            None if relu => Tail::Relu,
                            None => Tail::None,
                        };
                        let x = xs.pop().expect("one input");
                        match self.layers[i].forward_eval_affine(x, &scale, &shift, tail) {
                            Ok(y) => {
                                // The fused nodes' outputs are never made.
                                left[i] = 0;
                                let last = match sum {
                                    Some(other) => {
                                        release(
                                            other,
                                            (&mut input, &mut input_left),
                                            &mut outs,
                                            &mut left,
                                        );
                                        left[i + 1] = 0;
                                        left[i + 2] = 0;
                                        self.fused_add[i + 2] = true;
                                        i + 3
                                    }
                                    None if relu => {
                                        left[i + 1] = 0;
                                        self.fused_relu[i + 2] = true;
                                        i + 2
                                    }
                                    None => i + 1,
                                };
                                outs[last] = Some(y);
                                i = last + 1;
                                continue;
                            }
                            Err(x) => xs.push(x),
                        }
                    }
                }
                let t = std::time::Instant::now();
                // A frozen batch norm runs its inference form.
                let frozen_bn = self.is_frozen(i)
                    && self.spec.layers[i].layer.layer_kind().role() == Role::Normalization;
                let node_mode = if frozen_bn || !node_train {
                    Mode::Eval
                } else {
                    mode
                };
                outs[i] = Some(self.layers[i].forward_inputs(xs, node_mode, &mut self.rng));
                if let Some(times) = times.as_deref_mut() {
                    times[i] += t.elapsed().as_secs_f64();
                }
                i += 1;
            }
            outs[n - 1].take().expect("the last node is computed")
        };
        if with_head {
            let row = h.sample_len().max(1);
            self.head.forward(h.data_mut(), row);
        }
        h
    }

    /// Every node's output for a batch, in inference mode (the head is
    /// applied to the last one), for looking inside the net. Never fuses.
    pub fn trace(&mut self, x: &Tensor) -> Vec<Tensor> {
        let mut outs = self.every_output(x, Mode::Eval);
        if let Some(last) = outs.last_mut() {
            let row = last.sample_len().max(1);
            self.head.forward(last.data_mut(), row);
        }
        outs
    }

    /// Every node's output for `x` in `mode`, node by node, unfused (the
    /// head is not applied): `trace` and `inspect_forward`.
    fn every_output(&mut self, x: &Tensor, mode: Mode) -> Vec<Tensor> {
        let n = self.layers.len();
        let mut outs: Vec<Tensor> = Vec::with_capacity(n);
        for i in 0..n {
            let xs: Vec<Tensor> = self.wiring.inputs[i]
                .iter()
                .map(|s| match *s {
                    Source::Input => x.clone(),
                    Source::Node(j) => outs[j].clone(),
                })
                .collect();
            let y = self.layers[i].forward_inputs(xs, mode, &mut self.rng);
            outs.push(y);
        }
        outs
    }

    /// Backpropagates the gradient of the loss w.r.t. the logits through
    /// every node, last to first, accumulating parameter gradients. A node
    /// read by several others gets the sum of their input gradients, added
    /// in reader order.
    pub fn backward(&mut self, dlogits: Tensor) {
        self.run_backward(dlogits, None, false, None);
    }

    /// [`Model::backward`], also returning the gradient with respect to the
    /// model's input (summed over the nodes that read it), e.g. for saliency maps.
    pub fn backward_with_input(&mut self, dlogits: Tensor) -> Tensor {
        let shape = dlogits.shape().to_vec();
        self.run_backward(dlogits, None, true, None)
            .unwrap_or_else(|| Tensor::zeros(&shape))
    }

    /// [`Model::backward`]; with `times`, adds each node's seconds to it;
    /// with `want_input`, returns the input gradient; with `node_grads`
    /// (one slot per node), keeps the gradient that reached each node's
    /// output.
    fn run_backward(
        &mut self,
        dlogits: Tensor,
        mut times: Option<&mut [f64]>,
        want_input: bool,
        mut node_grads: Option<&mut [Option<Tensor>]>,
    ) -> Option<Tensor> {
        let n = self.layers.len();
        if n == 0 {
            return want_input.then_some(dlogits);
        }
        let mut dinput: Option<Tensor> = None;
        let mut grads: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        grads[n - 1] = Some(dlogits);
        for i in (0..n).rev() {
            // Every node reaches the output, so a gradient arrives unless its
            // readers were skipped (then nothing at or below it trains either).
            let Some(dy) = grads[i].take() else {
                continue;
            };
            if let Some(kept) = node_grads.as_deref_mut() {
                kept[i] = Some(dy.clone());
            }
            if !want_input && !self.needs_backward[i] {
                // Nothing at or below this node trains (a frozen base).
                continue;
            }
            let fused = |f: &[bool], k: usize| f.get(k).copied().unwrap_or(false);
            if fused(&self.fused_relu, i) || (i > 0 && fused(&self.fused_add, i - 1)) {
                // A ReLU run in the pass before it: its backward is applied
                // there (by the batch norm, or with the mask it kept).
                grads[i - 1] = Some(dy);
                continue;
            }
            let srcs = &self.wiring.inputs[i];
            let dxs = if fused(&self.fused_add, i) {
                // The ReLU's backward with the mask the batch norm kept, then
                // the sum's: the same gradient to every input, as Add's.
                let mut g = dy;
                self.layers[i - 1].mask_fused_relu(&mut g);
                let mut dxs: Vec<Tensor> = (1..srcs.len()).map(|_| g.clone()).collect();
                dxs.push(g);
                dxs
            } else {
                let t = std::time::Instant::now();
                let dxs = if !want_input && srcs.len() == 1 && srcs[0] == Source::Input {
                    // Nobody needs the gradient w.r.t. the model's input.
                    self.layers[i].backward_params(dy);
                    Vec::new()
                } else {
                    self.layers[i].backward_inputs(dy)
                };
                if let Some(times) = times.as_deref_mut() {
                    times[i] += t.elapsed().as_secs_f64();
                }
                dxs
            };
            let routes = srcs.iter().copied().zip(dxs);
            for (s, dx) in routes {
                let slot = match s {
                    Source::Node(j) => &mut grads[j],
                    Source::Input => &mut dinput,
                };
                *slot = Some(match slot.take() {
                    None => dx,
                    Some(mut g) => {
                        add_into(&mut g, &dx);
                        g
                    }
                });
            }
        }
        dinput
    }

    /// Seconds of every node's forward and backward pass in one training
    /// step on `x` (unfused; the gradient of every output is 0.01), for profiling.
    pub fn time_nodes(&mut self, x: &Tensor) -> (Vec<f64>, Vec<f64>) {
        let n = self.layers.len();
        let (mut fwd, mut bwd) = (vec![0.0; n], vec![0.0; n]);
        let z = self.run_forward(x, Mode::Train, false, Some(&mut fwd));
        self.run_backward(Tensor::full(z.shape(), 0.01), Some(&mut bwd), false, None);
        self.zero_grad();
        (fwd, bwd)
    }

    /// Seconds of every node's inference forward pass on `x` (unfused), for
    /// profiling.
    pub fn time_nodes_eval(&mut self, x: &Tensor) -> Vec<f64> {
        let mut fwd = vec![0.0; self.layers.len()];
        self.run_forward(x, Mode::Eval, false, Some(&mut fwd));
        fwd
    }

    /// Probabilities (or outputs) for a batch, in inference mode, `batch`
    /// samples at a time (fewer when an activation would pass
    /// [`crate::graph::INFERENCE_ACTIVATION_BYTES`]).
    pub fn predict(&mut self, x: &Tensor, batch: usize) -> Result<Tensor> {
        self.check_input(x, "predict")?;
        self.predict_rows(x.data(), x.batch(), batch)
    }

    /// [`Model::predict`] over `n` inputs stored one after another in `data`
    /// (a borrowed buffer, such as a numpy array's): each batch is copied
    /// out when it runs, the whole input never.
    pub fn predict_rows(&mut self, data: &[f32], n: usize, batch: usize) -> Result<Tensor> {
        let input = self.spec.input_shape.clone();
        let per_in = input.iter().product::<usize>();
        if data.len() != n * per_in {
            return Err(config_err(
                "predict",
                format!("{} values for {n} inputs of shape {input:?}", data.len()),
            ));
        }
        let per = self.output_shape().iter().product::<usize>();
        let mut out = Vec::with_capacity(n * per);
        let batch = self.spec.inference_batch(batch);
        let mut start = 0;
        while start < n {
            let end = (start + batch).min(n);
            let mut shape = vec![end - start];
            shape.extend_from_slice(&input);
            let x = Tensor::from_vec(&shape, data[start * per_in..end * per_in].to_vec())?;
            let y = self.forward(&x, Mode::Eval, true);
            out.extend_from_slice(y.data());
            start = end;
        }
        let mut shape = vec![n];
        shape.extend_from_slice(self.output_shape());
        Ok(Tensor::from_vec(&shape, out)?)
    }

    /// Every parameter with its qualified name `layer{i}.{name}` (`i` the node's position).
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

    /// `(trainable, non_trainable)` parameter counts (a frozen layer's are all non-trainable).
    pub fn param_counts(&self) -> (usize, usize) {
        let mut t = (0, 0);
        for (i, l) in self.layers.iter().enumerate() {
            for p in l.params() {
                if p.trainable && !self.is_frozen(i) {
                    t.0 += p.value.len();
                } else {
                    t.1 += p.value.len();
                }
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

    /// Each layer's [`crate::Layer::update_count`] (saved in checkpoints).
    pub fn update_counts(&self) -> Vec<Option<u64>> {
        self.layers.iter().map(|l| l.update_count()).collect()
    }

    /// Restores [`Model::update_counts`]; layers beyond `counts` (or all,
    /// for an empty slice) count as converged.
    pub fn set_update_counts(&mut self, counts: &[Option<u64>]) {
        for (i, l) in self.layers.iter_mut().enumerate() {
            l.set_update_count(counts.get(i).copied().flatten());
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

/// `g += d`, elementwise, in parallel over fixed chunks.
/// One reader of `source` is done: its tensor is dropped after the last.
fn release(
    source: Source,
    (input, input_left): (&mut Option<Tensor>, &mut usize),
    outs: &mut [Option<Tensor>],
    left: &mut [usize],
) {
    let (slot, count) = match source {
        Source::Input => (input, input_left),
        Source::Node(j) => (&mut outs[j], &mut left[j]),
    };
    *count -= 1;
    if *count == 0 {
        *slot = None;
    }
}

fn add_into(g: &mut Tensor, d: &Tensor) {
    use rayon::prelude::*;
    g.data_mut()
        .par_chunks_mut(1 << 14)
        .zip(d.data().par_chunks(1 << 14))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}
