//! Channel ops of ShuffleNet-like nets: `Split` / `Slice` on the channel
//! axis (ChannelSlice nodes) and the channel shuffle that PyTorch writes as
//! `Reshape [N, G, C/G, H, W]` -> `Transpose (0, 2, 1, 3, 4)` -> `Reshape
//! [N, C, H, W]` (one ChannelShuffle node; the first two only relabel the
//! value, as [`Layout::Grouped`]).

use super::*;

impl Importer<'_> {
    /// Integers of input `i`: a constant, or a shape computed in the graph
    /// whose entries are all known; `None` when the input is absent.
    fn known_ints(&self, n: &NodeProto, at: &Attrs, i: usize) -> Result<Option<Vec<i64>>> {
        let Some(name) = n.input.get(i).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if let Some(dims) = self.syms.get(name) {
            return dims
                .iter()
                .map(|d| match d {
                    Dim::Int(v) => Ok(*v),
                    Dim::Batch => Err(at.err(format!("input {i} depends on the batch size"))),
                })
                .collect::<Result<_>>()
                .map(Some);
        }
        match self.constant(n, i)? {
            Some(Const::I64(_, v)) => Ok(Some(v.clone())),
            Some(Const::F32(..)) => Err(at.err(format!("input {i} must be integers"))),
            None => Ok(None),
        }
    }

    /// The channel count of `x` when `axis` is its channel axis (1 of NCHW
    /// or of `[N, F]`); an error naming the axis otherwise.
    pub(super) fn channel_axis(&self, at: &Attrs, x: &Val, axis: i64) -> Result<usize> {
        let c = *x.shape.last().expect("non-empty");
        match (x.layout, axis) {
            (Layout::Nchw, 1 | -3) => Ok(c),
            (Layout::Nhwc, 3 | -1) => Ok(c),
            (Layout::Flat, 1 | -1) if x.perm.is_none() => Ok(c),
            (l, a) => Err(at.err(format!(
                "only a slice or split of the channel axis is supported (axis {a} of a {l:?} value of shape {:?})",
                x.shape
            ))),
        }
    }

    /// A ChannelSlice node `[a, b)` of `x`, mapped to ONNX value `out`.
    fn slice_node(&mut self, name: &str, out: &str, x: &Val, a: usize, b: usize) -> Result<()> {
        let layer = LayerSpec::ChannelSlice { channels: [a, b] };
        let src = self.push(name, layer, std::slice::from_ref(x), vec![])?;
        let shape = self.shapes[self.nodes.len() - 1].clone();
        let v = Val {
            src,
            shape,
            pad: None,
            ..x.clone()
        };
        self.vals.insert(out.to_string(), v);
        Ok(())
    }

    /// `Slice` of a value: a range of its channels, step 1.
    pub(super) fn slice(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["starts", "ends", "axes"])?;
        let x = self.materialize(n, 0)?;
        // Opset 10+ takes inputs; opset 1-9 attributes.
        let list = |i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
            match self.known_ints(n, at, i)? {
                Some(v) => Ok(Some(v)),
                None => at.ints(attr),
            }
        };
        let (starts, ends) = (list(1, "starts")?, list(2, "ends")?);
        let axes = list(3, "axes")?.unwrap_or(vec![0]);
        let steps = self.known_ints(n, at, 4)?.unwrap_or(vec![1]);
        let (Some([a]), Some([b]), [axis], [1]) = (
            starts.as_deref(),
            ends.as_deref(),
            axes.as_slice(),
            steps.as_slice(),
        ) else {
            return Err(at.err(format!(
                "only a slice of one axis with step 1 is supported (starts {starts:?}, ends {ends:?}, axes {axes:?}, steps {steps:?})"
            )));
        };
        let c = self.channel_axis(at, &x, *axis)?;
        let clamp = |v: i64| (if v < 0 { v + c as i64 } else { v }).clamp(0, c as i64) as usize;
        let (a, b) = (clamp(*a), clamp(*b));
        if a == 0 && b == c {
            self.set(n, x);
            return Ok(());
        }
        if a >= b {
            return Err(at.err(format!("the slice [{a}, {b}) of {c} channels is empty")));
        }
        self.slice_node(&node_name(n), &n.output[0], &x, a, b)
    }

    /// `Split` of the channels: one ChannelSlice per output that is read.
    pub(super) fn split(&mut self, n: &NodeProto, at: &Attrs) -> Result<()> {
        at.only(&["axis", "split", "num_outputs"])?;
        let x = self.materialize(n, 0)?;
        let c = self.channel_axis(at, &x, at.int("axis", 0)?)?;
        let parts = n.output.len();
        let sizes: Vec<i64> = match (self.known_ints(n, at, 1)?, at.ints("split")?) {
            (Some(s), _) | (None, Some(s)) => s,
            // Equal parts, the last one smaller when they do not divide (opset 18).
            (None, None) => {
                let k = c.div_ceil(parts) as i64;
                (0..parts as i64)
                    .map(|i| k.min(c as i64 - i * k).max(0))
                    .collect()
            }
        };
        if sizes.len() != parts
            || sizes.iter().any(|&s| s <= 0)
            || sizes.iter().sum::<i64>() != c as i64
        {
            return Err(at.err(format!(
                "split sizes {sizes:?} must be {parts} positive sizes summing to the {c} channels"
            )));
        }
        let mut a = 0;
        for (k, (out, &s)) in n.output.iter().zip(&sizes).enumerate() {
            let b = a + s as usize;
            if self.readers.contains_key(out) {
                self.slice_node(&format!("{}/{k}", node_name(n)), out, &x, a, b)?;
            }
            a = b;
        }
        Ok(())
    }

    /// A reshape that groups or ungroups the channels of an NCHW value
    /// (`target` in ONNX dims, batch first): `Some(())` when it was one.
    pub(super) fn regroup(&mut self, n: &NodeProto, x: &Val, target: &[i64]) -> Result<bool> {
        let Some((&b, rest)) = target.split_first() else {
            return Ok(false);
        };
        if !self.batch_dim(b) {
            return Ok(false);
        }
        // One -1 among the other dims: what the rest leaves of the value.
        let total: i64 = x.shape.iter().product::<usize>() as i64;
        let known: i64 = rest.iter().filter(|&&d| d != -1).product();
        let mut dims = rest.to_vec();
        if let Some(free) = dims.iter_mut().find(|d| **d == -1) {
            if known <= 0 || total % known != 0 {
                return Ok(false);
            }
            *free = total / known;
        }
        let ints = |s: &[usize]| s.iter().map(|&v| v as i64).collect::<Vec<_>>();
        match (x.layout, x.shape.as_slice(), dims.as_slice()) {
            // [N, C, H, W] -> [N, G, C/G, H, W]: relabelled.
            (Layout::Nchw, [h, w, c], [g, k, th, tw])
                if *g > 0 && g * k == *c as i64 && [*th, *tw] == ints(&[*h, *w])[..] =>
            {
                let groups = *g as usize;
                self.set(
                    n,
                    Val {
                        layout: Layout::Grouped {
                            groups,
                            swapped: false,
                        },
                        ..x.clone()
                    },
                );
                Ok(true)
            }
            // [N, G, C/G, H, W] (or swapped) -> [N, C, H, W].
            (Layout::Grouped { groups, swapped }, [h, w, c], [tc, th, tw])
                if [*tc, *th, *tw] == ints(&[*c, *h, *w])[..] =>
            {
                let base = Val {
                    layout: Layout::Nchw,
                    ..x.clone()
                };
                if swapped {
                    let layer = LayerSpec::ChannelShuffle { groups };
                    self.simple(n, layer, base, Layout::Nchw, vec![])?;
                } else {
                    self.set(n, base);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
