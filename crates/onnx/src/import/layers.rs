//! Ops that become layers with weights or windows: Conv, Gemm / MatMul,
//! BatchNormalization, activations, pooling, Pad.

use super::*;

impl Importer<'_> {
    pub(super) fn conv(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[
            "kernel_shape",
            "strides",
            "dilations",
            "pads",
            "group",
            "auto_pad",
        ])?;
        let group = at.int("group", 1)?;
        let mut x = self.val(n, 0)?;
        let (d, w) = self.weight(n, 1, "W")?;
        if x.layout == Layout::Pooled {
            return self.conv_on_pooled(n, at, x, d, w, group);
        }
        self.image(n, &x)?;
        let [f, c, kh, kw] = match d.as_slice() {
            [f, c, kh, kw] => [*f, *c, *kh, *kw],
            _ => return Err(at.err(format!("W has dims {d:?}; expected [F, C, KH, KW]"))),
        };
        let channels = x.shape[2];
        // Depthwise: one group per input channel, each with F/C filters;
        // grouped: `group` groups of C/group channels and F/group filters.
        let depthwise = group != 1 && group == channels as i64 && c == 1 && f % channels == 0;
        let groups = usize::try_from(group).unwrap_or(0);
        if group != 1 && !depthwise && (groups == 0 || c * groups != channels || f % groups != 0) {
            return Err(at.err(format!(
                "group {group}: the input's {channels} channels and W's {f} filters must split \
                 into {group} groups of W's {c} channels (W [F, C/group, KH, KW]); W has dims {d:?}"
            )));
        }
        if group == 1 && c != channels {
            return Err(at.err(format!(
                "W has {c} input channels, its input has {channels}"
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
        if depthwise {
            let mut cfg = DepthwiseConv2dConfig::new(kh)
                .with_kernel(kh, kw)
                .with_padding(padding)
                .with_depth_multiplier(f / channels)
                .with_bias(bias.is_some());
            cfg.strides = strides;
            cfg.dilation_rate = dilations;
            // [C*M, 1, KH, KW] -> [KH, KW, C*M] = [KH, KW, C, M]
            let mut k = vec![0.0; w.len()];
            for fi in 0..f {
                for t in 0..kh * kw {
                    k[t * f + fi] = w[fi * kh * kw + t];
                }
            }
            let shape = [kh, kw, channels, f / channels];
            let mut weights = vec![(
                "depthwise_kernel",
                Tensor::from_vec(&shape, k).map_err(convnet_nn::NnError::from)?,
            )];
            if let Some(b) = bias {
                weights.push((
                    "bias",
                    Tensor::from_vec(&[f], b).map_err(convnet_nn::NnError::from)?,
                ));
            }
            let spec = LayerSpec::DepthwiseConv2D(cfg);
            return self.simple(n, spec, x, Layout::Nchw, weights);
        }
        let mut cfg = Conv2dConfig::new(f, kh)
            .with_kernel(kh, kw)
            .with_padding(padding)
            .with_groups(groups);
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

    /// A 1x1 Conv of a globally pooled `[N, C, 1, 1]` value (squeeze-and-
    /// excitation's layers): a Dense, whose output stays `[N, F, 1, 1]`.
    fn conv_on_pooled(
        &mut self,
        n: &NodeProto,
        at: &Attrs,
        x: Val,
        d: Vec<usize>,
        w: Vec<f32>,
        group: i64,
    ) -> Result<()> {
        let [f, c] = match d.as_slice() {
            [f, c, 1, 1] if group == 1 && at.pads()? == [0; 4] => [*f, *c],
            _ => {
                return Err(at.err(format!(
                    "a conv of a pooled [N, C, 1, 1] value must be 1x1, group 1, unpadded; W has dims {d:?}"
                )))
            }
        };
        let bias = match self.constant(n, 2)? {
            None => None,
            Some(Const::F32(_, b)) => Some(b.clone()),
            Some(_) => return Err(at.err("B must be float".into())),
        };
        let flat = Val {
            layout: Layout::Flat,
            ..x
        };
        self.dense(n, flat, vec![f, c], w, true, 1.0, bias)?;
        let v = self.vals[&n.output[0]].clone();
        self.set(
            n,
            Val {
                layout: Layout::Pooled,
                ..v
            },
        );
        Ok(())
    }

    pub(super) fn gemm(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
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
    pub(super) fn dense(
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

    pub(super) fn batch_norm(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
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

    /// Node `j` with activation `a` in its own pass, when it is a linear
    /// conv (plain or depthwise) or dense layer, which take one.
    pub(super) fn with_fused(&self, j: usize, a: Activation) -> Option<LayerSpec> {
        let kind = self.nodes[j].layer.layer_kind();
        let takes = matches!(kind.role(), Role::Filters | Role::Product)
            && kind.activation() == Some(Activation::Linear);
        kind.with_activation(a).filter(|_| takes)
    }

    pub(super) fn activation(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        let a = match n.op_type.as_str() {
            "Relu" => {
                at.only(&[])?;
                Activation::Relu
            }
            "Clip" => self.clip_bounds(n, at)?,
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
                    Layout::Pooled | Layout::Grouped { .. } => false,
                };
                if !ok {
                    return Err(at.err(format!("only a softmax over the channels is supported (axis {axis} of a {:?} value)", x.layout)));
                }
                Activation::Softmax
            }
        };
        let x = self.materialize(n, 0)?;
        if let Some(j) = self.sole_producer(n, &x) {
            if let Some(spec) = self.with_fused(j, a) {
                self.nodes[j].layer = spec;
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

    /// `Clip(0, 6)` is ReLU6 and `Clip(0)` ReLU; the bounds are constant
    /// inputs 1 and 2 (opset 11 on) or attributes `min` / `max` (before).
    fn clip_bounds(&self, n: &NodeProto, at: &Attrs) -> Result<Activation> {
        at.only(&["min", "max"])?;
        let bound = |i: usize, attr: &str| -> Result<Option<f32>> {
            match self.constant(n, i)? {
                None if at.get(attr).is_some() => Ok(Some(at.float(attr, 0.0)?)),
                None => Ok(None),
                Some(Const::F32(_, v)) if v.len() == 1 => Ok(Some(v[0])),
                Some(_) => Err(at.err(format!("input {i} ({attr}) must be one float"))),
            }
        };
        match (bound(1, "min")?, bound(2, "max")?) {
            (Some(0.0), Some(6.0)) => Ok(Activation::Relu6),
            (Some(0.0), None) => Ok(Activation::Relu),
            (lo, hi) => {
                let say = |b: Option<f32>| b.map_or("none".to_string(), |v| v.to_string());
                Err(at.err(format!(
                    "Clip(min {}, max {}): only Clip(0, 6) (ReLU6) and Clip(0) (ReLU) are supported",
                    say(lo),
                    say(hi)
                )))
            }
        }
    }

    pub(super) fn pool(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
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

    pub(super) fn pad(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["mode", "pads", "value"])?;
        let mode = at.string("mode", "constant")?;
        let value = match self.constant(n, 2)? {
            Some(Const::F32(_, v)) => v.first().copied().unwrap_or(0.0),
            Some(Const::I64(_, v)) => v.first().copied().unwrap_or(0) as f32,
            None => at.float("value", 0.0)?,
        };
        if mode != "constant" || value != 0.0 {
            return Err(at.err(format!(
                "only zero padding is supported (mode '{mode}', value {value})"
            )));
        }
        let pads = match (at.ints("pads")?, self.constant(n, 1)?) {
            (Some(p), _) => p,
            (None, Some(Const::I64(_, p))) => p.clone(),
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

    /// ReduceMean / ReduceMax over H and W: global pooling.
    pub(super) fn reduce(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        // Over H and W: global pooling (PyTorch 2's exporter writes
        // adaptive_avg_pool2d(1) this way).
        at.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
        let x = self.materialize(n, 0)?;
        let axes = match (at.ints("axes")?, self.constant(n, 1)?) {
            (Some(a), _) => a,
            (None, Some(Const::I64(_, v))) => v.clone(),
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
        Ok(())
    }
}
