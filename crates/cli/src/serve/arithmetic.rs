//! The arithmetic of one output value, as CNN Explainer shows it:
//!
//! - a Conv2D unit `(y, x)` of filter `f`: the input patch its window reads
//!   (zeros where the window hangs over the padding), the filter's weights,
//!   their products, the sum plus the bias (`z`), then the activation;
//!   window rows `y * s - p + ky * d` (likewise columns), as
//!   `convnet_tensor::shape::axis_geometry` places them. With `groups` G the
//!   filter reads its group's channels only (`k*c .. (k+1)*c` for filter
//!   `f` in group `k = f / (F/G)`); a DepthwiseConv2D unit of map `c*M + m`
//!   reads channel `c` with kernel `[.., c, m]`. `channels` names them;
//! - a Dense unit `u` of a vector: `sum_i x_i w_iu + b_u` and the activation,
//!   the largest products by size listed and the rest summed;
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
    let kind = m.spec().layers[u.node].layer.layer_kind();
    if kind.name() == "Dense" && os.len() == 1 {
        return dense_unit(m, u, source.data(), out.data(), kind.activation());
    }
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
        (Role::Filters, name @ ("Conv2D" | "DepthwiseConv2D")) => {
            let params = m.layers()[u.node].params();
            let param = |n: &str| params.iter().find(|p| p.name == n).map(|p| &p.value);
            let kernel = param(if name == "Conv2D" {
                "kernel"
            } else {
                "depthwise_kernel"
            })
            .ok_or_else(|| not_shown("a convolution without a kernel"))?;
            let ks = kernel.shape().to_vec(); // [KH, KW, c, F] or [KH, KW, C, M]
            let (taps, last) = (ks[0] * ks[1], ks[3]);
            // The input channels map u.map reads, and the kernel's column for it.
            let (channels, column): (Vec<usize>, usize) = if name == "Conv2D" {
                let groups = ins[2] / ks[2];
                let group = u.map / (os[2] / groups);
                ((group * ks[2]..(group + 1) * ks[2]).collect(), u.map)
            } else {
                (vec![u.map / last], u.map % last)
            };
            let bias = param("bias").map(|b| b.data()[u.map]).unwrap_or(0.0);
            let mut patch = Vec::with_capacity(taps * channels.len());
            let mut weights = Vec::with_capacity(taps * channels.len());
            for (ky, &r) in rows.iter().enumerate() {
                for (kx, &cc) in cols.iter().enumerate() {
                    for (j, &ch) in channels.iter().enumerate() {
                        patch.push(value(r, cc, ch));
                        // Conv2D: the group's j-th channel; depthwise: channel ch itself.
                        let k = if name == "Conv2D" { j } else { ch };
                        weights
                            .push(kernel.data()[((ky * ks[1] + kx) * ks[2] + k) * last + column]);
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
            Ok(json!({"kind": "conv", "rows": rows, "cols": cols,
                      "shape": [ks[0], ks[1], channels.len()], "channels": channels,
                      "patch": patch, "weights": weights, "sum": sum, "bias": bias,
                      "z": z, "activation": act.name(), "result": y[0],
                      "model_output": model_output, "geometry": geometry}))
        }
        (_, name) => Err(not_shown(name)),
    }
}

fn not_shown(what: &str) -> Reply {
    Reply::error(
        404,
        format!(
            "the arithmetic is shown for Conv2D, DepthwiseConv2D, pooling, Dense and the \
             softmax output, not {what}"
        ),
    )
}

/// How many of a Dense unit's products are listed (the largest by size).
const DENSE_SHOWN: usize = 12;

/// A Dense unit: z = sum_i x_i w_iu + b_u over the input vector x [I]
/// (kernel [I, U]), then the activation; the DENSE_SHOWN largest products
/// |x_i w_iu| listed with i, the others summed.
fn dense_unit(
    m: &Model,
    u: &Unit,
    x: &[f32],
    out: &[f32],
    act: Option<Activation>,
) -> Result<Value, Reply> {
    if u.map >= out.len() || u.y != 0 || u.x != 0 {
        return Err(Reply::error(
            404,
            format!(
                "layer {} has no unit {} (it has {})",
                u.node,
                u.map,
                out.len()
            ),
        ));
    }
    let params = m.layers()[u.node].params();
    let param = |n: &str| params.iter().find(|p| p.name == n).map(|p| &p.value);
    let kernel = param("kernel").ok_or_else(|| not_shown("a Dense layer without a kernel"))?;
    let units = out.len();
    let bias = param("bias").map(|b| b.data()[u.map]).unwrap_or(0.0);
    let products: Vec<f64> = (0..x.len())
        .map(|i| x[i] as f64 * kernel.data()[i * units + u.map] as f64)
        .collect();
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| {
        products[b]
            .abs()
            .total_cmp(&products[a].abs())
            .then(a.cmp(&b))
    });
    let shown = &order[..DENSE_SHOWN.min(order.len())];
    let terms: Vec<Value> = shown
        .iter()
        .map(|&i| json!({"i": i, "x": x[i], "w": kernel.data()[i * units + u.map], "product": products[i]}))
        .collect();
    let sum: f64 = products.iter().sum();
    let shown_sum: f64 = shown.iter().map(|&i| products[i]).sum();
    let z = (sum + bias as f64) as f32;
    let act = act.unwrap_or(Activation::Linear);
    let mut y = [z];
    act.forward(&mut y, 1);
    Ok(json!({"kind": "dense", "inputs": x.len(), "terms": terms,
              "rest": sum - shown_sum, "sum": sum, "bias": bias, "z": z,
              "activation": act.name(), "result": y[0], "model_output": out[u.map]}))
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

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_nn::{
        Conv2dConfig, DenseConfig, DepthwiseConv2dConfig, LayerSpec, ModelSpec, Padding,
    };

    /// 6x6x4 -> grouped conv (2 groups, 6 filters, relu) -> depthwise 3x3
    /// (multiplier 2, stride 2, same) -> flatten -> dense 5 (relu) -> dense 3;
    /// every bias non-zero, so that a bias read from the wrong filter shows.
    fn model() -> (Model, Tensor) {
        let mut g = ModelSpec::new(&[6, 6, 4]);
        let x = g.input();
        let conv = Conv2dConfig::new(6, 3)
            .with_groups(2)
            .with_padding(Padding::Same)
            .with_activation(Activation::Relu);
        let h = g.apply(LayerSpec::Conv2D(conv), &[&x]);
        let dw = DepthwiseConv2dConfig::new(3)
            .with_depth_multiplier(2)
            .with_stride(2)
            .with_padding(Padding::Same);
        let h = g.apply(LayerSpec::DepthwiseConv2D(dw), &[&h]);
        let h = g.apply(LayerSpec::Flatten, &[&h]);
        let dense = DenseConfig::new(5).with_activation(Activation::Relu);
        let h = g.apply(LayerSpec::Dense(dense), &[&h]);
        g.apply(LayerSpec::Dense(DenseConfig::new(3)), &[&h]);
        let mut m = g.build(7).unwrap();
        for (k, p) in m.params_mut().into_iter().enumerate() {
            if p.name == "bias" {
                for (i, b) in p.value.data_mut().iter_mut().enumerate() {
                    *b = 0.05 * (i as f32 + 1.0) * if k % 2 == 0 { 1.0 } else { -1.0 };
                }
            }
        }
        let x = Tensor::from_vec(
            &[1, 6, 6, 4],
            (0..144)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect(),
        )
        .unwrap();
        (m, x)
    }

    fn check(m: &mut Model, x: &Tensor, node: usize, map: usize, y: usize, xx: usize) -> Value {
        let u = Unit {
            node,
            map,
            y,
            x: xx,
        };
        let v = arithmetic(m, x, &u).unwrap_or_else(|_| panic!("node {node} map {map}"));
        let (got, want) = (
            v["result"].as_f64().unwrap(),
            v["model_output"].as_f64().unwrap(),
        );
        assert!(
            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "node {node} map {map} ({y}, {xx}): {got} vs the model's {want}: {v}"
        );
        v
    }

    #[test]
    fn grouped_and_depthwise_units_read_their_own_channels() {
        let (mut m, x) = model();
        for map in 0..6 {
            for (y, xx) in [(0, 0), (2, 3), (5, 5)] {
                let v = check(&mut m, &x, 0, map, y, xx);
                // Filters 0-2 read channels 0-1, filters 3-5 channels 2-3.
                let first = if map < 3 { 0 } else { 2 };
                assert_eq!(v["channels"], json!([first, first + 1]), "{v}");
                assert_eq!(v["shape"], json!([3, 3, 2]));
            }
        }
        for map in 0..12 {
            let v = check(&mut m, &x, 1, map, 1, 2);
            // Map c*2 + m reads channel c.
            assert_eq!(v["channels"], json!([map / 2]), "{v}");
            assert_eq!(v["patch"].as_array().unwrap().len(), 9);
        }
    }

    #[test]
    fn a_dense_unit_is_its_largest_products_and_the_rest() {
        let (mut m, x) = model();
        for unit in 0..5 {
            let v = check(&mut m, &x, 3, unit, 0, 0);
            assert_eq!(v["kind"], "dense");
            assert_eq!(v["inputs"], 3 * 3 * 12);
            let terms = v["terms"].as_array().unwrap();
            assert_eq!(terms.len(), DENSE_SHOWN);
            let sizes: Vec<f64> = terms
                .iter()
                .map(|t| t["product"].as_f64().unwrap().abs())
                .collect();
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
            let listed: f64 = terms.iter().map(|t| t["product"].as_f64().unwrap()).sum();
            let (rest, sum) = (v["rest"].as_f64().unwrap(), v["sum"].as_f64().unwrap());
            assert!((listed + rest - sum).abs() < 1e-9 * (1.0 + sum.abs()));
            // The smallest listed product is at least any unlisted one: the
            // rest is below (inputs - shown) times it in size.
            assert!(rest.abs() <= sizes[DENSE_SHOWN - 1] * (v["inputs"].as_f64().unwrap()));
        }
        let bad = Unit {
            node: 3,
            map: 5,
            y: 0,
            x: 0,
        };
        assert!(arithmetic(&mut m, &x, &bad).is_err());
    }
}
