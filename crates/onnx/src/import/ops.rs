//! Ops without weights: constants, relabellings of a value's layout,
//! shapes, and the layers they become (global pooling, flatten, dropout).

use super::*;

impl Importer<'_> {
    /// `Constant`: a tensor known at import time.
    pub(super) fn constant_op(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
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

        Ok(())
    }

    /// `Identity`: a constant stays one; a value passes through.
    pub(super) fn identity(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[])?;
        match n.input.first().and_then(|i| self.consts.get(i)).cloned() {
            Some(c) => {
                self.consts.insert(n.output[0].clone(), c);
            }
            None => match self.drop_paths.get(&n.output[0]).copied() {
                // Our export's StochasticDepth.
                Some(rate) => {
                    let x = self.materialize(n, 0)?;
                    let layout = x.layout;
                    let layer = LayerSpec::StochasticDepth { rate };
                    self.simple(n, layer, x, layout, vec![])?;
                }
                None => {
                    let x = self.val(n, 0)?;
                    self.set(n, x);
                }
            },
        }

        Ok(())
    }

    /// `MatMul` by a weight: a Dense without bias (a following `Add` adds it).
    pub(super) fn matmul(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[])?;
        let x = self.materialize(n, 0)?;
        let (d, w) = self.weight(n, 1, "B")?;
        self.dense(n, x, d, w, false, 1.0, None)?;

        Ok(())
    }

    /// `GlobalAveragePool` / `GlobalMaxPool`: ONNX keeps `[N, C, 1, 1]`, ours `[N, C]`.
    pub(super) fn global_pool(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&[])?;
        let x = self.materialize(n, 0)?;
        self.image(n, &x)?;
        let layer = if n.op_type == "GlobalAveragePool" {
            LayerSpec::GlobalAveragePooling2D
        } else {
            LayerSpec::GlobalMaxPooling2D
        };
        self.simple(n, layer, x, Layout::Pooled, vec![])?;

        Ok(())
    }

    /// `Flatten` on axis 1.
    pub(super) fn flatten_op(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["axis"])?;
        if at.int("axis", 1)? != 1 {
            return Err(at.err("only axis 1 is supported".into()));
        }
        self.flatten(n)?;

        Ok(())
    }

    /// `Shape`: the value's ONNX dimensions, for shape arithmetic.
    pub(super) fn shape_of(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        let x = self.val(n, 0)?;
        let d = |v: usize| Dim::Int(v as i64);
        let mut dims = vec![Dim::Batch];
        dims.extend(match (x.layout, x.shape.as_slice()) {
            (Layout::Nchw, [h, w, c]) => vec![d(*c), d(*h), d(*w)],
            (Layout::Pooled, [c]) => vec![d(*c), d(1), d(1)],
            (Layout::Grouped { .. }, _) => {
                return Err(at.err("the shape of a value with grouped channels".into()))
            }
            (_, shape) => shape.iter().map(|&v| d(v)).collect(),
        });
        let range = at.shape_range(dims.len())?;
        self.syms.insert(n.output[0].clone(), dims[range].to_vec());

        Ok(())
    }

    /// `Cast` to float of a computed value: nothing to do.
    pub(super) fn cast(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["to", "saturate"])?;
        if at.int("to", 0)? != i64::from(proto::FLOAT) {
            return Err(at.err("only a cast to float of a computed value is supported".into()));
        }
        let x = self.val(n, 0)?;
        self.set(n, x);

        Ok(())
    }

    /// `Squeeze` of axes 2, 3 after global pooling: a relabelling.
    pub(super) fn squeeze(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        let x = self.val(n, 0)?;
        let axes = match (at.ints("axes")?, self.constant(n, 1)?) {
            (Some(a), _) => a,
            (None, Some(Const::I64(_, v))) => v.clone(),
            _ => vec![],
        };
        if x.layout != Layout::Pooled || !(axes == [2, 3] || axes == [-2, -1] || axes == [3, 2]) {
            return Err(
                at.err("only the squeeze of axes 2, 3 after global pooling is supported".into())
            );
        }
        self.set(
            n,
            Val {
                layout: Layout::Flat,
                ..x
            },
        );

        Ok(())
    }

    /// `Transpose` between NHWC and NCHW: a relabelling.
    pub(super) fn transpose(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["perm"])?;
        let x = self.val(n, 0)?;
        let perm = at.ints("perm")?.unwrap_or_default();
        let layout = match (x.layout, perm.as_slice()) {
            (Layout::Nhwc, [0, 3, 1, 2]) => Layout::Nchw,
            (Layout::Nchw, [0, 2, 3, 1]) => Layout::Nhwc,
            // A channel shuffle's swap of the group axes.
            (Layout::Grouped { groups, swapped }, [0, 2, 1, 3, 4]) => Layout::Grouped {
                groups,
                swapped: !swapped,
            },
            (l, p) => {
                return Err(at.err(format!(
                    "only NHWC <-> NCHW transposes and a channel shuffle's are supported; found perm {p:?} on a {l:?} value"
                )))
            }
        };
        self.set(n, Val { layout, ..x });

        Ok(())
    }

    /// `Dropout` in inference, its rate from the ratio input, our metadata or the attribute.
    pub(super) fn dropout(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["ratio", "seed"])?;
        if n.output.len() > 1 && n.output[1..].iter().any(|o| self.readers.contains_key(o)) {
            return Err(
                at.err("its mask output is read; only inference Dropout is supported".into())
            );
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

        Ok(())
    }
}
