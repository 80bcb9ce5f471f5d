//! Constant folding: a node whose inputs are all constants is computed at
//! import time, so that what an exporter spells as a small computation
//! (PyTorch's `ZeroPad2d` writes its pads as `ConstantOfShape` -> `Concat`
//! -> `Reshape` -> `Slice` -> `Transpose` -> `Reshape` -> `Cast`) reaches
//! the op that reads it as the constant it is, as onnxruntime's and
//! onnx-simplifier's constant folding would make it.
//!
//! The ops that move values (`Concat`, `Slice`, `Transpose`, `Reshape`,
//! `Squeeze`, `Unsqueeze`, `Gather`, `Identity`) compute, for every output
//! element, the flat index of the input element it copies, and apply that
//! to f32 and integer data alike; `Cast`, `ConstantOfShape`, `Shape` and
//! the elementwise `Add`, `Sub`, `Mul`, `Div`, `Neg` (with numpy's
//! broadcasting) compute values. Integer division truncates toward zero,
//! as onnxruntime's does. A folded tensor holds at most
//! [`MAX_FOLDED`] values: a file cannot make the import allocate more.

use super::*;

/// The most values one folded constant may hold (16 Mi).
pub(super) const MAX_FOLDED: usize = 1 << 24;

impl Const {
    pub(super) fn dims(&self) -> &[usize] {
        match self {
            Const::F32(d, _) | Const::I64(d, _) => d,
        }
    }

    fn len(&self) -> usize {
        match self {
            Const::F32(_, v) => v.len(),
            Const::I64(_, v) => v.len(),
        }
    }

    /// The tensor of `dims` whose element `k` is this one's element `idx[k]`.
    fn pick(&self, dims: Vec<usize>, idx: &[usize]) -> Const {
        match self {
            Const::F32(_, v) => Const::F32(dims, idx.iter().map(|&i| v[i]).collect()),
            Const::I64(_, v) => Const::I64(dims, idx.iter().map(|&i| v[i]).collect()),
        }
    }

    /// Integers, as ONNX's int64 inputs (axes, shapes, indices) are read.
    fn ints(&self) -> Option<&[i64]> {
        match self {
            Const::I64(_, v) => Some(v),
            Const::F32(..) => None,
        }
    }
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

/// Calls `f` with every multi-index of `dims` in row-major order.
fn each_index(dims: &[usize], mut f: impl FnMut(&[usize])) {
    if dims.contains(&0) {
        return;
    }
    let mut at = vec![0; dims.len()];
    loop {
        f(&at);
        let mut k = dims.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            at[k] += 1;
            if at[k] < dims[k] {
                break;
            }
            at[k] = 0;
        }
    }
}

/// An axis argument (negative counts from the end) as an index below `rank`.
fn axis(a: i64, rank: usize) -> Option<usize> {
    let a = if a < 0 { a + rank as i64 } else { a };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

impl Importer<'_> {
    /// Computes `n` now when it is one of the ops above and every input it
    /// has is a constant; returns whether it did.
    pub(super) fn fold(&mut self, n: &NodeProto, at: &Attrs) -> Result<bool> {
        const FOLDS: &[&str] = &[
            "ConstantOfShape",
            "Concat",
            "Slice",
            "Transpose",
            "Reshape",
            "Squeeze",
            "Unsqueeze",
            "Gather",
            "Cast",
            "Shape",
            "Add",
            "Sub",
            "Mul",
            "Div",
            "Neg",
        ];
        let inputs: Vec<&str> = n
            .input
            .iter()
            .filter(|i| !i.is_empty())
            .map(String::as_str)
            .collect();
        if !FOLDS.contains(&n.op_type.as_str())
            || inputs.is_empty()
            || !inputs.iter().all(|i| self.consts.contains_key(*i))
        {
            return Ok(false);
        }
        let out = match n.op_type.as_str() {
            "ConstantOfShape" | "Cast" | "Shape" | "Neg" | "Add" | "Sub" | "Mul" | "Div" => {
                self.fold_values(n, at)?
            }
            _ => self.fold_moves(n, at)?,
        };
        self.consts.insert(n.output[0].clone(), out);
        Ok(true)
    }

    /// Constant input `i` of `n` as integers (`what` names it in errors).
    fn const_ints(
        &self,
        n: &NodeProto,
        at: &Attrs,
        i: usize,
        what: &str,
    ) -> Result<Option<Vec<i64>>> {
        match self.constant(n, i)? {
            None => Ok(None),
            Some(t) => t
                .ints()
                .map(|v| Some(v.to_vec()))
                .ok_or_else(|| at.err(format!("{what} (input {i}) must be integers"))),
        }
    }

    /// The ops that move values: each output element copies one input element.
    fn fold_moves(&self, n: &NodeProto, at: &Attrs) -> Result<Const> {
        let c = |i: usize| self.constant(n, i);
        let ints = |i: usize, what: &str| self.const_ints(n, at, i, what);
        let x = c(0)?.expect("checked: the inputs are constants").clone();
        Ok(match n.op_type.as_str() {
            "Transpose" => {
                at.only(&["perm"])?;
                let r = x.dims().len();
                let perm = at
                    .ints("perm")?
                    .unwrap_or_else(|| (0..r as i64).rev().collect());
                let perm: Vec<usize> = perm.iter().filter_map(|&p| axis(p, r)).collect();
                let mut seen = perm.clone();
                seen.sort_unstable();
                if seen != (0..r).collect::<Vec<_>>() {
                    return Err(at.err(format!("perm is not a permutation of 0..{r}")));
                }
                let s = strides(x.dims());
                let dims: Vec<usize> = perm.iter().map(|&p| x.dims()[p]).collect();
                let mut idx = Vec::with_capacity(x.len());
                each_index(&dims, |o| {
                    idx.push(perm.iter().zip(o).map(|(&p, &i)| i * s[p]).sum());
                });
                x.pick(dims, &idx)
            }
            "Reshape" => {
                at.only(&["allowzero"])?;
                let shape = ints(1, "the shape")?
                    .ok_or_else(|| at.err("the shape (input 1) is missing".into()))?;
                let dims = reshaped(x.dims(), &shape, at.int("allowzero", 0)? != 0)
                    .ok_or_else(|| at.err(format!("cannot reshape {:?} to {shape:?}", x.dims())))?;
                let idx: Vec<usize> = (0..x.len()).collect();
                x.pick(dims, &idx)
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = match (at.ints("axes")?, ints(1, "the axes")?) {
                    (Some(a), _) | (None, Some(a)) => a,
                    (None, None) => vec![],
                };
                let d = x.dims();
                let dims: Vec<usize> = if n.op_type == "Squeeze" {
                    let ax: Vec<usize> = axes.iter().filter_map(|&a| axis(a, d.len())).collect();
                    if ax.len() != axes.len() || ax.iter().any(|&a| d[a] != 1) {
                        return Err(at.err(format!("cannot squeeze axes {axes:?} of {d:?}")));
                    }
                    (0..d.len())
                        .filter(|k| !(ax.contains(k) || axes.is_empty() && d[*k] == 1))
                        .map(|k| d[k])
                        .collect()
                } else {
                    let r = d.len() + axes.len();
                    let ax: Vec<usize> = axes.iter().filter_map(|&a| axis(a, r)).collect();
                    if ax.len() != axes.len() {
                        return Err(at.err(format!("cannot unsqueeze {d:?} at {axes:?}")));
                    }
                    let mut rest = d.iter();
                    (0..r)
                        .map(|k| {
                            if ax.contains(&k) {
                                1
                            } else {
                                *rest.next().unwrap_or(&1)
                            }
                        })
                        .collect()
                };
                let idx: Vec<usize> = (0..x.len()).collect();
                x.pick(dims, &idx)
            }
            "Concat" => {
                at.only(&["axis"])?;
                let parts: Vec<Const> = (0..n.input.len())
                    .filter_map(|i| c(i).transpose())
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .cloned()
                    .collect();
                self.concat_consts(at, &parts, at.int("axis", 0)?)?
            }
            "Slice" => self.slice_const(at, &x, n)?,
            "Gather" => {
                at.only(&["axis"])?;
                let d = x.dims().to_vec();
                let ax = axis(at.int("axis", 0)?, d.len())
                    .ok_or_else(|| at.err(format!("axis outside the rank of {d:?}")))?;
                let ic = c(1)?.ok_or_else(|| at.err("the indices (input 1) are missing".into()))?;
                let ind = ic
                    .ints()
                    .ok_or_else(|| at.err("the indices must be integers".into()))?
                    .to_vec();
                let ind_dims = ic.dims().to_vec();
                let ind: Vec<usize> = ind
                    .iter()
                    .map(|&i| axis(i, d[ax]))
                    .collect::<Option<_>>()
                    .ok_or_else(|| at.err(format!("an index outside 0..{}", d[ax])))?;
                let dims: Vec<usize> = d[..ax]
                    .iter()
                    .chain(&ind_dims)
                    .chain(&d[ax + 1..])
                    .copied()
                    .collect();
                self.folded_len(at, &dims)?;
                let s = strides(&d);
                let mut idx = Vec::new();
                let q = ind_dims.len();
                let ind_s = strides(&ind_dims);
                each_index(&dims, |o| {
                    let k: usize = o[ax..ax + q].iter().zip(&ind_s).map(|(a, b)| a * b).sum();
                    let src: usize = o[..ax].iter().zip(&s).map(|(a, b)| a * b).sum::<usize>()
                        + ind[k] * s[ax]
                        + o[ax + q..]
                            .iter()
                            .zip(&s[ax + 1..])
                            .map(|(a, b)| a * b)
                            .sum::<usize>();
                    idx.push(src);
                });
                x.pick(dims, &idx)
            }
            other => unreachable!("{other} is not a moving op"),
        })
    }

    /// The ops that compute values: casts, shapes, fills and arithmetic.
    fn fold_values(&self, n: &NodeProto, at: &Attrs) -> Result<Const> {
        let c = |i: usize| self.constant(n, i);
        let ints = |i: usize, what: &str| self.const_ints(n, at, i, what);
        let x = c(0)?.expect("checked: the inputs are constants").clone();
        Ok(match n.op_type.as_str() {
            "ConstantOfShape" => {
                let shape = ints(0, "the shape")?.expect("input 0");
                let dims = shape
                    .iter()
                    .map(|&d| usize::try_from(d).ok())
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| at.err(format!("negative dimension in shape {shape:?}")))?;
                let len = self.folded_len(at, &dims)?;
                let value = match at.get("value").and_then(|a| a.t.as_ref()) {
                    Some(t) => decode_tensor(self.path, t)?,
                    None => Const::F32(vec![1], vec![0.0]),
                };
                match value {
                    Const::F32(_, v) if v.len() == 1 => Const::F32(dims, vec![v[0]; len]),
                    Const::I64(_, v) if v.len() == 1 => Const::I64(dims, vec![v[0]; len]),
                    _ => return Err(at.err("'value' must hold one element".into())),
                }
            }
            "Cast" => {
                at.only(&["to", "saturate"])?;
                let to = at.int("to", 0)?;
                let dims = x.dims().to_vec();
                match (to, x) {
                    (t, Const::I64(_, v)) if t == i64::from(proto::FLOAT) => {
                        Const::F32(dims, v.iter().map(|&v| v as f32).collect())
                    }
                    (t, Const::F32(_, v)) if t == i64::from(proto::INT64) => {
                        Const::I64(dims, v.iter().map(|&v| v as i64).collect())
                    }
                    (t, same)
                        if (t == i64::from(proto::FLOAT) && matches!(same, Const::F32(..)))
                            || (t == i64::from(proto::INT64) && matches!(same, Const::I64(..))) =>
                    {
                        same
                    }
                    (t, _) => {
                        return Err(at.err(format!(
                            "a cast of a constant to type {t}; expected FLOAT (1) or INT64 (7)"
                        )))
                    }
                }
            }
            "Shape" => {
                let v: Vec<i64> = x.dims()[at.shape_range(x.dims().len())?]
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                Const::I64(vec![v.len()], v)
            }
            "Neg" => match x {
                Const::F32(d, v) => Const::F32(d, v.iter().map(|v| -v).collect()),
                Const::I64(d, v) => Const::I64(d, v.iter().map(|v| v.wrapping_neg()).collect()),
            },
            op => {
                let y = c(1)?
                    .ok_or_else(|| at.err("input 1 is missing".into()))?
                    .clone();
                self.binary(at, op, &x, &y)?
            }
        })
    }

    /// The element count of `dims`, refused past [`MAX_FOLDED`].
    fn folded_len(&self, at: &Attrs, dims: &[usize]) -> Result<usize> {
        dims.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_FOLDED)
            .ok_or_else(|| {
                at.err(format!(
                    "a constant of dims {dims:?} is larger than {MAX_FOLDED} values"
                ))
            })
    }

    fn concat_consts(&self, at: &Attrs, parts: &[Const], ax: i64) -> Result<Const> {
        let d0 = parts[0].dims().to_vec();
        let ax = axis(ax, d0.len()).ok_or_else(|| at.err(format!("axis outside {d0:?}")))?;
        let same_kind = parts
            .iter()
            .all(|p| matches!(p, Const::F32(..)) == matches!(parts[0], Const::F32(..)));
        let fits = parts.iter().all(|p| {
            p.dims().len() == d0.len() && (0..d0.len()).all(|k| k == ax || p.dims()[k] == d0[k])
        });
        if !same_kind || !fits {
            return Err(at.err(
                "the constants to concatenate differ in type or in a dimension other than the axis"
                    .into(),
            ));
        }
        let mut dims = d0.clone();
        dims[ax] = parts.iter().map(|p| p.dims()[ax]).sum();
        self.folded_len(at, &dims)?;
        let outer: usize = d0[..ax].iter().product();
        let inner: usize = d0[ax + 1..].iter().product();
        let mut f = Vec::new();
        let mut i = Vec::new();
        for o in 0..outer {
            for p in parts {
                let run = p.dims()[ax] * inner;
                match p {
                    Const::F32(_, v) => f.extend_from_slice(&v[o * run..(o + 1) * run]),
                    Const::I64(_, v) => i.extend_from_slice(&v[o * run..(o + 1) * run]),
                }
            }
        }
        Ok(match parts[0] {
            Const::F32(..) => Const::F32(dims, f),
            Const::I64(..) => Const::I64(dims, i),
        })
    }

    /// `Slice` (opset 10+: starts, ends, axes, steps as inputs; opset 1-9 as attributes).
    fn slice_const(&self, at: &Attrs, x: &Const, n: &NodeProto) -> Result<Const> {
        let get = |i: usize, name: &str| -> Result<Option<Vec<i64>>> {
            if let Some(v) = at.ints(name)? {
                return Ok(Some(v));
            }
            match self.constant(n, i)? {
                Some(t) => Ok(Some(
                    t.ints()
                        .ok_or_else(|| at.err(format!("{name} must be integers")))?
                        .to_vec(),
                )),
                None => Ok(None),
            }
        };
        let d = x.dims().to_vec();
        let starts = get(1, "starts")?.ok_or_else(|| at.err("starts are missing".into()))?;
        let ends = get(2, "ends")?.ok_or_else(|| at.err("ends are missing".into()))?;
        let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = get(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if [ends.len(), axes.len(), steps.len()] != [starts.len(); 3] {
            return Err(at.err("starts, ends, axes and steps differ in length".into()));
        }
        // Per axis: the first index and the step, and the count taken.
        let mut first = vec![0i64; d.len()];
        let mut step = vec![1i64; d.len()];
        let mut dims = d.clone();
        for k in 0..starts.len() {
            let a = axis(axes[k], d.len())
                .ok_or_else(|| at.err(format!("axis {} outside {d:?}", axes[k])))?;
            let (n_, s) = (d[a] as i64, steps[k]);
            if s == 0 {
                return Err(at.err("a step of 0".into()));
            }
            let fix = |v: i64, lo: i64, hi: i64| {
                let v = if v < 0 { v.saturating_add(n_) } else { v };
                v.clamp(lo, hi)
            };
            let (b, e) = if s > 0 {
                (fix(starts[k], 0, n_), fix(ends[k], 0, n_))
            } else {
                (fix(starts[k], -1, n_ - 1), fix(ends[k], -1, n_ - 1))
            };
            let count = if s > 0 {
                (e - b + s - 1).max(0) / s
            } else {
                (b - e - s - 1).max(0) / -s
            };
            first[a] = b;
            step[a] = s;
            dims[a] = count as usize;
        }
        let st = strides(&d);
        let mut idx = Vec::new();
        each_index(&dims, |o| {
            idx.push(
                (0..o.len())
                    .map(|k| (first[k] + o[k] as i64 * step[k]) as usize * st[k])
                    .sum(),
            );
        });
        Ok(x.pick(dims, &idx))
    }

    /// Elementwise `Add`, `Sub`, `Mul`, `Div` with numpy's broadcasting.
    fn binary(&self, at: &Attrs, op: &str, x: &Const, y: &Const) -> Result<Const> {
        let (a, b) = (x.dims(), y.dims());
        let r = a.len().max(b.len());
        let pad = |d: &[usize]| -> Vec<usize> {
            let mut p = vec![1; r - d.len()];
            p.extend_from_slice(d);
            p
        };
        let (pa, pb) = (pad(a), pad(b));
        let dims = pa
            .iter()
            .zip(&pb)
            .map(|(&p, &q)| match (p, q) {
                (p, q) if p == q => Some(p),
                (1, q) => Some(q),
                (p, 1) => Some(p),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| at.err(format!("shapes {a:?} and {b:?} do not broadcast")))?;
        self.folded_len(at, &dims)?;
        let (sa, sb) = (strides(&pa), strides(&pb));
        let mut ia = Vec::new();
        let mut ib = Vec::new();
        each_index(&dims, |o| {
            ia.push(
                (0..r)
                    .map(|k| if pa[k] == 1 { 0 } else { o[k] * sa[k] })
                    .sum(),
            );
            ib.push(
                (0..r)
                    .map(|k| if pb[k] == 1 { 0 } else { o[k] * sb[k] })
                    .sum(),
            );
        });
        Ok(
            match (x.pick(dims.clone(), &ia), y.pick(dims.clone(), &ib)) {
                (Const::F32(_, u), Const::F32(_, v)) => {
                    let f = |p: f32, q: f32| match op {
                        "Add" => p + q,
                        "Sub" => p - q,
                        "Mul" => p * q,
                        _ => p / q,
                    };
                    Const::F32(dims, u.iter().zip(&v).map(|(&p, &q)| f(p, q)).collect())
                }
                (Const::I64(_, u), Const::I64(_, v)) => {
                    if op == "Div" && v.contains(&0) {
                        return Err(at.err("an integer division by zero".into()));
                    }
                    let f = |p: i64, q: i64| match op {
                        "Add" => p.wrapping_add(q),
                        "Sub" => p.wrapping_sub(q),
                        "Mul" => p.wrapping_mul(q),
                        _ => p.wrapping_div(q),
                    };
                    Const::I64(dims, u.iter().zip(&v).map(|(&p, &q)| f(p, q)).collect())
                }
                _ => return Err(at.err("the operands differ in type (float and integer)".into())),
            },
        )
    }
}

/// ONNX Reshape's target: `0` copies the input's dimension (unless
/// `allowzero`), one `-1` takes what is left.
fn reshaped(d: &[usize], shape: &[i64], allowzero: bool) -> Option<Vec<usize>> {
    let total: usize = d.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (k, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            0 if !allowzero => out.push(*d.get(k)?),
            s => out.push(usize::try_from(s).ok()?),
        }
    }
    let known: usize = out.iter().product();
    if let Some(k) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return None;
        }
        out[k] = total / known;
    }
    (out.iter().product::<usize>() == total).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_targets_follow_onnx() {
        assert_eq!(reshaped(&[8], &[-1, 2], false), Some(vec![4, 2]));
        assert_eq!(reshaped(&[2, 3], &[0, 3], false), Some(vec![2, 3]));
        assert_eq!(reshaped(&[2, 3], &[4, -1], false), None);
        assert_eq!(reshaped(&[2, 3], &[-1, -1], false), None);
    }
}
