//! The arithmetic of one output value, as CNN Explainer shows it:
//!
//! - a Conv2D unit `(y, x)` of filter `f`: the input patch its window reads
//!   (zeros where the window hangs over the padding), the filter's weights,
//!   their products, the sum plus the bias (`z`), then the activation;
//!   window rows `y * s - p + ky * d` (likewise columns), as
//!   `convnet_tensor::shape::axis_geometry` places them;
//! - a pooling unit: the window of its channel and its maximum or mean;
//! - the output: the logits, their exponentials (shifted by the largest
//!   logit, as the softmax is computed) and the division by their sum.
//!
//! Every answer carries the model's own value for the unit
//! (`model_output`), so the page and the tests see that the arithmetic
//! shown is the arithmetic done.

use convnet_nn::{Activation, Model, Role, Source};
use convnet_tensor::shape::axis_geometry;
use convnet_tensor::Tensor;
use serde_json::{json, Value};

/// What was asked: node, output channel, position.
pub struct Unit {
    pub node: usize,
    pub map: usize,
    pub y: usize,
    pub x: usize,
}

type Reply = super::Reply;

/// The arithmetic of `u` for the input `x` (`[1, H, W, C]`).
pub fn arithmetic(m: &mut Model, x: &Tensor, u: &Unit) -> Result<Value, Reply> {
    let n = m.layers().len();
    if u.node >= n {
        return Err(Reply::error(
            404,
            format!("layer {}: the model has {n}", u.node),
        ));
    }
    let inspection = m.inspect_forward(x);
    let outs = &inspection.outputs;
    if u.node == n - 1 && m.head() == Activation::Softmax {
        return Ok(softmax(outs[n - 1].data(), inspection.probabilities.data()));
    }
    let source = match m.wiring().inputs[u.node].first() {
        Some(Source::Node(j)) => &outs[*j],
        _ => x,
    };
    let out = &outs[u.node];
    let (ins, os) = (&source.shape()[1..], &out.shape()[1..]);
    if ins.len() != 3 || os.len() != 3 || u.y >= os[0] || u.x >= os[1] || u.map >= os[2] {
        return Err(Reply::error(
            404,
            format!(
                "layer {} has no unit ({}, {}) of map {} (its output is {:?})",
                u.node, u.y, u.x, u.map, os
            ),
        ));
    }
    let model_output = out.data()[(u.y * os[1] + u.x) * os[2] + u.map];
    let kind = m.spec().layers[u.node].layer.layer_kind();
    let window = kind.window().ok_or_else(|| not_shown(kind.name()))?;
    // Each axis: the input rows (columns) of the window's taps; None: padding.
    let mut taps = [Vec::new(), Vec::new()];
    let mut pads = [0usize; 2];
    for (axis, t) in taps.iter_mut().enumerate() {
        let g = axis_geometry(
            ins[axis],
            window.kernel[axis],
            window.strides[axis],
            window.dilation[axis],
            window.padding.axis(axis),
            window.ceil_mode,
        )
        .map_err(|e| Reply::error(500, e.to_string()))?;
        pads[axis] = g.pad_before;
        let at = [u.y, u.x][axis];
        *t = (0..window.kernel[axis])
            .map(|k| {
                let i = (at * window.strides[axis] + k * window.dilation[axis]) as i64
                    - g.pad_before as i64;
                (0..ins[axis] as i64).contains(&i).then_some(i as usize)
            })
            .collect::<Vec<Option<usize>>>();
    }
    let value = |r: Option<usize>, c: Option<usize>, ch: usize| match (r, c) {
        (Some(r), Some(c)) => source.data()[(r * ins[1] + c) * ins[2] + ch],
        _ => 0.0,
    };
    let rows: Vec<Option<usize>> = taps[0].clone();
    let cols: Vec<Option<usize>> = taps[1].clone();
    // For the page's sliding window: where the window of any unit lies.
    let geometry = json!({"strides": window.strides, "dilation": window.dilation,
                          "pad": pads, "kernel": window.kernel, "input": ins});
    match (kind.role(), kind.name()) {
        (Role::Pooling, name) => {
            let vals: Vec<f32> = rows
                .iter()
                .flat_map(|&r| cols.iter().map(move |&c| (r, c)))
                .filter(|(r, c)| r.is_some() && c.is_some())
                .map(|(r, c)| value(r, c, u.map))
                .collect();
            let max = name.starts_with("Max");
            let result = if max {
                vals.iter().copied().fold(f32::NEG_INFINITY, f32::max)
            } else {
                vals.iter().sum::<f32>() / vals.len().max(1) as f32
            };
            Ok(
                json!({"kind": if max { "max" } else { "average" }, "rows": rows, "cols": cols,
                      "window": rows.iter().map(|&r| cols.iter().map(|&c| (r.is_some() && c.is_some()).then(|| value(r, c, u.map))).collect::<Vec<_>>()).collect::<Vec<_>>(),
                      "result": result, "model_output": model_output, "geometry": geometry}),
            )
        }
        (Role::Filters, "Conv2D") => {
            let params = m.layers()[u.node].params();
            let kernel = params
                .iter()
                .find(|p| p.name == "kernel")
                .map(|p| p.value.clone())
                .ok_or_else(|| not_shown("a convolution without a kernel"))?;
            let ks = kernel.shape().to_vec(); // [KH, KW, C_in, F]
            if ks[2] != ins[2] {
                return Err(not_shown("a grouped Conv2D"));
            }
            let bias = params
                .iter()
                .find(|p| p.name == "bias")
                .map(|p| p.value.data()[u.map])
                .unwrap_or(0.0);
            let (kh, kw, c) = (ks[0], ks[1], ks[2]);
            let mut patch = Vec::with_capacity(kh * kw * c);
            let mut weights = Vec::with_capacity(kh * kw * c);
            for (ky, &r) in rows.iter().enumerate() {
                for (kx, &cc) in cols.iter().enumerate() {
                    for ch in 0..c {
                        patch.push(value(r, cc, ch));
                        weights.push(kernel.data()[((ky * kw + kx) * c + ch) * ks[3] + u.map]);
                    }
                }
            }
            // Sums in f64: the page shows the exact sum of what it shows.
            let sum: f64 = patch
                .iter()
                .zip(&weights)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            let z = (sum + bias as f64) as f32;
            let act = kind.activation().unwrap_or(Activation::Linear);
            let mut y = [z];
            act.forward(&mut y, 1);
            Ok(
                json!({"kind": "conv", "rows": rows, "cols": cols, "shape": [kh, kw, c],
                      "patch": patch, "weights": weights, "sum": sum, "bias": bias,
                      "z": z, "activation": act.name(), "result": y[0],
                      "model_output": model_output, "geometry": geometry}),
            )
        }
        (_, name) => Err(not_shown(name)),
    }
}

fn not_shown(what: &str) -> Reply {
    Reply::error(
        404,
        format!("the arithmetic is shown for Conv2D, pooling and the softmax output, not {what}"),
    )
}

/// Softmax, step by step: p_k = exp(z_k - max z) / sum_j exp(z_j - max z).
fn softmax(logits: &[f32], probs: &[f32]) -> Value {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&z| ((z - top) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    let result: Vec<f64> = exps.iter().map(|e| e / sum).collect();
    json!({"kind": "softmax", "logits": logits, "max": top, "exps": exps, "sum": sum,
           "result": result, "model_output": probs})
}
