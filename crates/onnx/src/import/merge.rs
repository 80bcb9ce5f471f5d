//! Ops on whole values: Add / Sum, per-channel affine constants, Concat,
//! Flatten and the shape arithmetic that feeds a Reshape.

use super::*;

impl Importer<'_> {
    pub(super) fn add(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
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
    /// `Mul(x, Sigmoid(x))` (either order; PyTorch's SiLU, Keras's swish):
    /// the Sigmoid node becomes a Swish, or, when the layer computing `x` is
    /// a linear conv or dense read by nothing else, that layer's activation.
    /// Returns whether `n` was that.
    fn swish(&mut self, n: &NodeProto) -> Result<bool> {
        if n.op_type != "Mul" || n.input.iter().any(|i| self.consts.contains_key(i)) {
            return Ok(false);
        }
        for (si, xi) in [(0, 1), (1, 0)] {
            let (s, x) = (self.val(n, si)?, self.val(n, xi)?);
            let Source::Node(j) = s.src else { continue };
            let sigmoid = LayerSpec::Activation {
                activation: Activation::Sigmoid,
            };
            let x_name = match x.src {
                Source::Input => INPUT.to_string(),
                Source::Node(k) => self.nodes[k].name.clone().expect("named"),
            };
            if self.nodes[j].layer != sigmoid
                || self.nodes[j].inputs.as_deref() != Some(std::slice::from_ref(&x_name))
                || x.pad.is_some()
                || self.readers.get(&n.input[si]).copied() != Some(1)
            {
                continue;
            }
            // Fused into the layer before when the Sigmoid and this Mul are
            // that layer's only readers and the Sigmoid is the newest node.
            let xs_readers = self.readers.get(&n.input[xi]).copied();
            if let Source::Node(k) = x.src {
                let next = j + 1 == self.nodes.len() && k + 1 == j && xs_readers == Some(2);
                if let Some(spec) = self.with_fused(k, Activation::Swish).filter(|_| next) {
                    let gone = self.nodes.pop().expect("the sigmoid").name;
                    self.taken.remove(&gone.expect("named"));
                    self.shapes.pop();
                    self.weights.pop();
                    self.nodes[k].layer = spec;
                    self.set(n, x);
                    return Ok(true);
                }
            }
            // Named after the Mul, which computes the swish's output.
            let old = self.nodes[j].name.take().expect("named");
            self.taken.remove(&old);
            self.nodes[j].name = Some(self.claim(&node_name(n)));
            self.nodes[j].layer = LayerSpec::Activation {
                activation: Activation::Swish,
            };
            self.set(n, s);
            return Ok(true);
        }
        Ok(false)
    }

    /// `Mul` of two computed values: a Multiply of maps of one shape, or of
    /// a map and a vector of its channels (`[N, C, 1, 1]`, e.g. a
    /// squeeze-and-excitation gate).
    fn multiply(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        let xs = [self.materialize(n, 0)?, self.materialize(n, 1)?];
        let fits = |a: &Val, b: &Val| {
            (a.layout == b.layout && a.shape == b.shape && a.perm == b.perm)
                || (a.layout == Layout::Nchw
                    && b.layout == Layout::Pooled
                    && a.shape.last() == b.shape.last())
        };
        let big = if fits(&xs[0], &xs[1]) {
            0
        } else if fits(&xs[1], &xs[0]) {
            1
        } else {
            return Err(at.err(format!(
                "only a product of values of one shape, or of an NCHW map and [N, C, 1, 1]                  channel values, is supported; found {:?} {:?} and {:?} {:?}",
                xs[0].layout, xs[0].shape, xs[1].layout, xs[1].shape
            )));
        };
        let src = self.push(&node_name(n), LayerSpec::Multiply, &xs, vec![])?;
        let shape = self.shapes[self.nodes.len() - 1].clone();
        let out = Val {
            src,
            shape,
            pad: None,
            ..xs[big].clone()
        };
        self.set(n, out);
        Ok(())
    }

    pub(super) fn affine(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[])?;
        if n.input.len() != 2 {
            return Err(at.err("expects two inputs".into()));
        }
        if self.swish(n)? {
            return Ok(());
        }
        if n.op_type == "Mul" && !n.input.iter().any(|i| self.consts.contains_key(i)) {
            return self.multiply(n, at);
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
            Const::I64(..) => return Err(at.err("the constant must be float".into())),
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
                Layout::Pooled | Layout::Grouped { .. } => false,
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
        // y = x * gamma + beta right after another such layer: fold into it
        // (tf2onnx writes a folded Keras batch norm as Mul, then Add).
        if let Some(j) = self.sole_producer(&nn, &x) {
            let node = &self.nodes[j];
            if matches!(&node.layer, LayerSpec::BatchNormalization(b) if b.epsilon == 0.0)
                && !node.trainable
            {
                let w = &mut self.weights[j];
                let (g0, b0) = (w[0].1.data().to_vec(), w[1].1.data().to_vec());
                let g: Vec<f32> = g0.iter().zip(&gamma).map(|(a, b)| a * b).collect();
                let b: Vec<f32> = b0
                    .iter()
                    .zip(&gamma)
                    .zip(&beta)
                    .map(|((a, g), b)| a * g + b)
                    .collect();
                w[0].1 = Tensor::from_vec(&[c], g).map_err(convnet_nn::NnError::from)?;
                w[1].1 = Tensor::from_vec(&[c], b).map_err(convnet_nn::NnError::from)?;
                self.set(n, x);
                return Ok(());
            }
        }
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

    pub(super) fn concat(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["axis"])?;
        // One input (TorchScript writes four in densenet121): the value itself.
        if n.input.iter().filter(|i| !i.is_empty()).count() == 1 {
            let x = self.val(n, 0)?;
            self.set(n, x);
            return Ok(());
        }
        let xs = (0..n.input.len())
            .map(|i| self.materialize(n, i))
            .collect::<Result<Vec<_>>>()?;
        let Some(first) = xs.first() else {
            return Err(at.err("has no inputs".into()));
        };
        let layout = first.layout;
        let axis = at.int("axis", 1)?;
        let channel = xs.iter().all(|v| self.channel_axis(at, v, axis).is_ok());
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

    pub(super) fn shape_op(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        let ints = |i: usize| -> Result<Option<Vec<i64>>> {
            match self.constant(n, i)? {
                Some(Const::I64(_, v)) => Ok(Some(v.clone())),
                Some(_) => Err(at.err(format!("input {i} must be integers"))),
                None => Ok(None),
            }
        };
        let sym = |i: usize| -> Result<Vec<Dim>> {
            match n.input.get(i).and_then(|x| self.syms.get(x)) {
                Some(d) => Ok(d.clone()),
                None => Ok(ints(i)?
                    .ok_or_else(|| at.err(format!("input {i} is neither a shape nor a constant")))?
                    .into_iter()
                    .map(Dim::Int)
                    .collect()),
            }
        };
        let out: Vec<Dim> = match n.op_type.as_str() {
            "Gather" => {
                at.only(&["axis"])?;
                let d = sym(0)?;
                let idx = ints(1)?.ok_or_else(|| at.err("the indices must be constant".into()))?;
                idx.iter()
                    .map(|&k| {
                        let k = if k < 0 { k + d.len() as i64 } else { k };
                        usize::try_from(k)
                            .ok()
                            .and_then(|k| d.get(k).copied())
                            .ok_or_else(|| {
                                at.err(format!("index {k} outside a shape of {} values", d.len()))
                            })
                    })
                    .collect::<Result<_>>()?
            }
            "Slice" => {
                let d = sym(0)?;
                let r = d.len() as i64;
                let one = |i: usize, default: i64| -> Result<i64> {
                    Ok(match ints(i)?.as_deref() {
                        None => default,
                        Some([v]) => *v,
                        Some(v) => {
                            return Err(at.err(format!(
                                "input {i} is {v:?}; expected one value (1-D shapes)"
                            )))
                        }
                    })
                };
                if one(3, 0)? != 0 || one(4, 1)? != 1 {
                    return Err(at.err("only a slice of axis 0 with step 1 is supported".into()));
                }
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (a, b) = (clamp(one(1, 0)?), clamp(one(2, r)?));
                d[a..b.max(a)].to_vec()
            }
            "Concat" => {
                if at.int("axis", 0)? != 0 {
                    return Err(at.err("shapes concatenate on axis 0".into()));
                }
                let mut all = Vec::new();
                for i in 0..n.input.len() {
                    all.extend(sym(i)?);
                }
                all
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let (x, y) = (sym(0)?, sym(1)?);
                if x.len() != y.len() && x.len() != 1 && y.len() != 1 {
                    return Err(at.err(format!("shapes of {} and {} values", x.len(), y.len())));
                }
                (0..x.len().max(y.len()))
                    .map(|k| {
                        let (a, b) = (x[k.min(x.len() - 1)], y[k.min(y.len() - 1)]);
                        let (Dim::Int(a), Dim::Int(b)) = (a, b) else {
                            return Err(at.err("arithmetic on the batch size".into()));
                        };
                        // int64 arithmetic as ONNX's (division truncates).
                        match n.op_type.as_str() {
                            "Add" => a.checked_add(b),
                            "Sub" => a.checked_sub(b),
                            "Mul" => a.checked_mul(b),
                            _ => a.checked_div(b),
                        }
                        .map(Dim::Int)
                        .ok_or_else(|| {
                            at.err(format!("{a} {} {b} overflows or divides by 0", n.op_type))
                        })
                    })
                    .collect::<Result<_>>()?
            }
            // Cast, Unsqueeze, Squeeze: a scalar and a one-value list are the same here.
            _ => sym(0)?,
        };
        self.syms.insert(n.output[0].clone(), out);
        Ok(())
    }

    pub(super) fn flatten(&mut self, n: &NodeProto) -> Result<()> {
        let x = self.materialize(n, 0)?;
        match x.layout {
            Layout::Grouped { .. } => {
                return Err(unsupported(
                    self.path,
                    n,
                    "a flatten of a value with grouped channels ([N, G, C/G, H, W])".into(),
                ))
            }
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

    /// A Reshape: a flatten, or a relabelling of a one-channel layout.
    pub(super) fn reshape(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["allowzero"])?;
        let x = self.val(n, 0)?;
        let target: Vec<i64> = match (
            self.constant(n, 1),
            n.input.get(1).and_then(|t| self.syms.get(t)),
        ) {
            (Ok(Some(Const::I64(_, v))), _) => v.clone(),
            (_, Some(dims)) => dims
                .iter()
                .enumerate()
                .map(|(k, d)| match d {
                    Dim::Int(v) => Ok(*v),
                    Dim::Batch if k == 0 => Ok(0),
                    Dim::Batch => Err(at.err("the batch size moves to another axis".into())),
                })
                .collect::<Result<_>>()?,
            _ => {
                return Err(at.err(
                    "the shape must be a constant int64 tensor or computed from Shape".into(),
                ))
            }
        };
        if self.regroup(n, &x, &target)? {
            return Ok(());
        }
        let batch = |d: i64| self.batch_dim(d);
        // A vector of channels [N, C] as [N, C, 1, 1] (to scale a map): ours stays [N, C].
        if let ([c], [b, t, 1, 1], Layout::Flat, None) =
            (x.shape.as_slice(), target.as_slice(), x.layout, x.perm)
        {
            if batch(*b) && *t == *c as i64 {
                self.set(
                    n,
                    Val {
                        layout: Layout::Pooled,
                        ..x
                    },
                );
                return Ok(());
            }
        }
        // With one channel, [N, H, W, 1] <-> [N, 1, H, W] only relabels the layout.
        if let ([h, w, 1], [b, t1, t2, t3]) = (x.shape.as_slice(), target.as_slice()) {
            let (h, w) = (*h as i64, *w as i64);
            let layout = match x.layout {
                Layout::Nhwc if batch(*b) && [*t1, *t2, *t3] == [1, h, w] => Some(Layout::Nchw),
                Layout::Nchw if batch(*b) && [*t1, *t2, *t3] == [h, w, 1] => Some(Layout::Nhwc),
                _ => None,
            };
            if let Some(layout) = layout {
                self.set(n, Val { layout, ..x });
                return Ok(());
            }
        }
        let total: usize = x.shape.iter().product();
        // [N, F], [-1, F], [0, F], [N, -1], [0, -1], with N the
        // exported batch size (PyTorch 2 writes the example's).
        let flattens = match target.as_slice() {
            [b, f] => {
                (batch(*b) && *f == total as i64)
                    || ((*b == 0 || Some(*b) == self.batch) && *f == -1)
            }
            _ => false,
        };
        if !flattens {
            return Err(at.err(format!(
                "only a reshape to [N, {total}] (a flatten) is supported, found {target:?}"
            )));
        }
        self.flatten(n)?;
        Ok(())
    }
}
