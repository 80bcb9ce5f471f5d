//! The one gradient-check helper: central differences against the analytic
//! gradients of a layer or a loss.
//!
//! For a layer `y = f(x; θ)` we check the scalar `L = sum_i r_i y_i` with a
//! fixed random `r`, so `dL/dy = r` is what backward receives. Each checked
//! coordinate `v` of `x` or `θ` gets
//!
//! ```text
//! numeric = (L(v + eps) - L(v - eps)) / (2 eps)
//! ```
//!
//! with `L` accumulated in `f64`. A coordinate passes when
//! `|analytic - numeric| <= tol * (1 + max(|analytic|, |numeric|))`.
//! On failure the report names the tensor, the worst index and both values.

use crate::layer::{Layer, Mode};
use crate::{Loss, Model, Rng};
use convnet_tensor::Tensor;
use rand::{Rng as _, SeedableRng};

/// At most this many coordinates of each tensor are checked (evenly spread).
const MAX_CHECKS: usize = 400;

/// Indices to check: all of them, or an even spread of [`MAX_CHECKS`].
fn sample(len: usize) -> Vec<usize> {
    if len <= MAX_CHECKS {
        (0..len).collect()
    } else {
        (0..MAX_CHECKS).map(|i| i * len / MAX_CHECKS).collect()
    }
}

/// Compares analytic and numeric values, reporting the worst coordinate.
fn compare(
    what: &str,
    idx: &[usize],
    analytic: &[f64],
    numeric: &[f64],
    tol: f64,
) -> Result<(), String> {
    let mut worst: Option<(usize, f64)> = None;
    for (j, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let excess = (a - n).abs() / (1.0 + a.abs().max(n.abs()));
        if worst.is_none_or(|(_, w)| excess > w) {
            worst = Some((j, excess));
        }
    }
    match worst {
        Some((j, e)) if e > tol || !e.is_finite() => Err(format!(
            "gradient of {what} differs at index {}: analytic {} vs numeric {} (relative error {e:.2e} > {tol:.0e})",
            idx[j], analytic[j], numeric[j]
        )),
        _ => Ok(()),
    }
}

/// Checks one tensor's analytic gradient `grad` against central differences
/// `(L(v_i + eps) - L(v_i - eps)) / 2 eps` at the sampled indices, where
/// `loss_with(i, d)` is the loss with coordinate `i` moved by `d` (and put
/// back afterwards); `what` names the tensor in the report.
fn check_coordinates(
    what: &str,
    grad: &[f32],
    eps: f32,
    tol: f64,
    mut loss_with: impl FnMut(usize, f32) -> f64,
) -> Result<(), String> {
    let idx = sample(grad.len());
    let numeric: Vec<f64> = idx
        .iter()
        .map(|&i| (loss_with(i, eps) - loss_with(i, -eps)) / (2.0 * eps as f64))
        .collect();
    let analytic: Vec<f64> = idx.iter().map(|&i| grad[i] as f64).collect();
    compare(what, &idx, &analytic, &numeric, tol)
}

/// `sum_i r_i y_i` in f64.
fn dot(r: &[f32], y: &[f32]) -> f64 {
    r.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Checks a layer's input gradient and every trainable parameter gradient
/// at input `x`. The forward runs in `Mode::Train` with an RNG reseeded from
/// `seed` each time, so dropout masks repeat.
pub fn check_layer(
    layer: &mut dyn Layer,
    x: &Tensor,
    seed: u64,
    eps: f32,
    tol: f64,
) -> Result<(), String> {
    check_layer_inputs(layer, std::slice::from_ref(x), seed, eps, tol)
}

/// [`check_layer`] for a layer of several inputs (a merge): every input's
/// gradient and every trainable parameter's.
pub fn check_layer_inputs(
    layer: &mut dyn Layer,
    xs: &[Tensor],
    seed: u64,
    eps: f32,
    tol: f64,
) -> Result<(), String> {
    let forward = |layer: &mut dyn Layer, xs: &[Tensor]| {
        let mut rng = Rng::seed_from_u64(seed);
        layer.forward_inputs(xs.to_vec(), Mode::Train, &mut rng)
    };
    let y = forward(layer, xs);
    let mut rng = Rng::seed_from_u64(seed ^ 0x9e37_79b9);
    let r: Vec<f32> = (0..y.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let r_t = Tensor::from_vec(y.shape(), r.clone()).unwrap();

    for p in layer.params_mut() {
        p.grad.data_mut().fill(0.0);
    }
    forward(layer, xs);
    let dxs = layer.backward_inputs(r_t);
    if dxs.len() != xs.len() {
        return Err(format!(
            "backward returned {} input gradients for {} inputs",
            dxs.len(),
            xs.len()
        ));
    }

    // Input gradients.
    for (k, dx) in dxs.iter().enumerate() {
        let what = if xs.len() == 1 {
            "the input".to_string()
        } else {
            format!("input {k}")
        };
        check_coordinates(&what, dx.data(), eps, tol, |i, d| {
            let mut xp = xs.to_vec();
            xp[k].data_mut()[i] += d;
            dot(&r, forward(layer, &xp).data())
        })?;
    }

    // Parameter gradients.
    let count = layer.params().len();
    for pi in 0..count {
        let (name, trainable, grad) = {
            let p = &layer.params()[pi];
            (p.name, p.trainable, p.grad.clone())
        };
        if !trainable {
            continue;
        }
        check_coordinates(
            &format!("parameter '{name}'"),
            grad.data(),
            eps,
            tol,
            |i, d| {
                let orig = layer.params()[pi].value.data()[i];
                layer.params_mut()[pi].value.data_mut()[i] = orig + d;
                let l = dot(&r, forward(layer, xs).data());
                layer.params_mut()[pi].value.data_mut()[i] = orig;
                l
            },
        )?;
    }
    Ok(())
}

/// Checks every trainable parameter gradient of a whole model (so the
/// graph's wiring: fan-out gradients summed, merges split) at input `x`,
/// for `L = sum_i r_i z_i` over the logits `z`. Dropout masks repeat
/// (the model's RNG is restored before every forward).
pub fn check_model(model: &mut Model, x: &Tensor, eps: f32, tol: f64) -> Result<(), String> {
    let rng0 = model.rng().clone();
    let forward = |model: &mut Model| {
        model.set_rng(rng0.clone());
        model.forward(x, Mode::Train, false)
    };
    let z = forward(model);
    let mut rng = Rng::seed_from_u64(0x5eed);
    let r: Vec<f32> = (0..z.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    model.zero_grad();
    forward(model);
    model.backward(Tensor::from_vec(z.shape(), r.clone()).unwrap());
    // Frozen layers' weights are constants of the loss here.
    let frozen: Vec<bool> = (0..model.layers().len())
        .flat_map(|i| vec![model.is_frozen(i); model.layers()[i].params().len()])
        .collect();
    let named: Vec<(String, bool, Tensor)> = model
        .named_params()
        .into_iter()
        .zip(frozen)
        .map(|((n, p), f)| (n, p.trainable && !f, p.grad.clone()))
        .collect();
    for (pi, (name, trainable, grad)) in named.into_iter().enumerate() {
        if !trainable {
            continue;
        }
        check_coordinates(
            &format!("parameter '{name}'"),
            grad.data(),
            eps,
            tol,
            |i, d| {
                let orig = model.params_mut()[pi].value.data()[i];
                model.params_mut()[pi].value.data_mut()[i] = orig + d;
                let l = dot(&r, forward(model).data());
                model.params_mut()[pi].value.data_mut()[i] = orig;
                l
            },
        )?;
    }
    model.zero_grad();
    Ok(())
}

/// Checks a loss's gradient with respect to its predictions.
pub fn check_loss(
    loss: Loss,
    pred: &Tensor,
    target: &Tensor,
    eps: f32,
    tol: f64,
) -> Result<(), String> {
    let (_, grad) = loss.compute(pred, target);
    check_coordinates(loss.name(), grad.data(), eps, tol, |i, d| {
        let mut p = pred.clone();
        p.data_mut()[i] += d;
        loss.compute(&p, target).0 as f64
    })
}
