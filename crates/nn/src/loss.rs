//! Losses with their gradients, numerically stable, with Keras's formulas.
//!
//! Every loss is a mean over the rows (samples) of a per-row value; for
//! binary cross-entropy and MSE the per-row value is itself a mean over the
//! last axis, as in Keras. `eps = 1e-7` is Keras's `epsilon()`.
//!
//! ```text
//! categorical_crossentropy (probabilities p, one-hot or soft y):
//!     q = p / sum p,  l = -sum_i y_i log(clip(q_i, eps, 1 - eps))
//! ... from logits z:  l = sum(y) logsumexp(z) - sum_i y_i z_i,   dl/dz = softmax(z) sum(y) - y
//! sparse_categorical_crossentropy: the same with y = one_hot(label)
//! binary_crossentropy (probabilities):
//!     c = clip(p, eps, 1 - eps),  l = -mean_k [y log(c + eps) + (1 - y) log(1 - c + eps)]
//! ... from logits z:  l = mean_k [max(z, 0) - z y + log(1 + e^-|z|)],  dl/dz = (sigmoid(z) - y) / K
//! mean_squared_error: l = mean_k (p - y)^2,  dl/dp = 2 (p - y) / K
//! ```
//!
//! A softmax (or sigmoid) output followed by the matching cross-entropy is
//! trained through the fused "from logits" form (see [`Loss::fused_with`]),
//! whose gradient `softmax(z) - y` needs no division by small probabilities.

use crate::error::config_err;
use crate::Result;
use convnet_tensor::activation::{sigmoid, Activation};
use convnet_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Keras's fuzz factor.
pub const EPSILON: f32 = 1e-7;

/// A loss function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Cross-entropy of probabilities against one-hot (or soft) targets.
    CategoricalCrossentropy,
    /// Cross-entropy of logits against one-hot targets.
    CategoricalCrossentropyFromLogits,
    /// Cross-entropy of probabilities against integer labels `[N]`.
    SparseCategoricalCrossentropy,
    /// Cross-entropy of logits against integer labels `[N]`.
    SparseCategoricalCrossentropyFromLogits,
    /// Binary cross-entropy of probabilities.
    BinaryCrossentropy,
    /// Binary cross-entropy of logits.
    BinaryCrossentropyFromLogits,
    /// Mean squared error.
    MeanSquaredError,
}

impl Loss {
    /// The Keras name (`categorical_crossentropy`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::CategoricalCrossentropyFromLogits => "categorical_crossentropy_from_logits",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            Loss::SparseCategoricalCrossentropyFromLogits => {
                "sparse_categorical_crossentropy_from_logits"
            }
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::BinaryCrossentropyFromLogits => "binary_crossentropy_from_logits",
            Loss::MeanSquaredError => "mean_squared_error",
        }
    }

    /// Parses a Keras name (also `mse`).
    pub fn from_name(name: &str) -> Option<Loss> {
        let all = [
            Loss::CategoricalCrossentropy,
            Loss::CategoricalCrossentropyFromLogits,
            Loss::SparseCategoricalCrossentropy,
            Loss::SparseCategoricalCrossentropyFromLogits,
            Loss::BinaryCrossentropy,
            Loss::BinaryCrossentropyFromLogits,
            Loss::MeanSquaredError,
        ];
        if name == "mse" {
            return Some(Loss::MeanSquaredError);
        }
        all.into_iter().find(|l| l.name() == name)
    }

    /// Whether targets are integer labels `[N]` rather than `[N, K]`.
    pub fn is_sparse(&self) -> bool {
        matches!(
            self,
            Loss::SparseCategoricalCrossentropy | Loss::SparseCategoricalCrossentropyFromLogits
        )
    }

    /// The logits form of this loss when the model's output activation is
    /// `act` (softmax + categorical, sigmoid + binary), for fused training.
    pub fn fused_with(&self, act: Activation) -> Option<Loss> {
        match (self, act) {
            (Loss::CategoricalCrossentropy, Activation::Softmax) => {
                Some(Loss::CategoricalCrossentropyFromLogits)
            }
            (Loss::SparseCategoricalCrossentropy, Activation::Softmax) => {
                Some(Loss::SparseCategoricalCrossentropyFromLogits)
            }
            (Loss::BinaryCrossentropy, Activation::Sigmoid) => {
                Some(Loss::BinaryCrossentropyFromLogits)
            }
            _ => None,
        }
    }

    /// Checks that `target` fits `pred [N, K]`.
    pub fn check_targets(&self, pred: &[usize], target: &[usize]) -> Result<()> {
        let ok = if self.is_sparse() {
            target == [pred[0]] || target == [pred[0], 1]
        } else {
            target == pred
        };
        if ok {
            Ok(())
        } else {
            let want = if self.is_sparse() {
                format!("[{}] integer labels", pred[0])
            } else {
                format!("{pred:?}")
            };
            Err(config_err(
                self.name(),
                format!(
                    "targets must have shape {want} for predictions {pred:?}, found {target:?}"
                ),
            ))
        }
    }

    /// The mean loss over the batch and its gradient with respect to `pred`.
    ///
    /// Panics if the shapes disagree; call [`Loss::check_targets`] first.
    pub fn compute(&self, pred: &Tensor, target: &Tensor) -> (f32, Tensor) {
        let n = pred.batch().max(1);
        let k = pred.len() / n;
        let mut grad = Tensor::zeros(pred.shape());
        let mut total = 0.0f64;
        let rows = pred
            .data()
            .chunks_exact(k)
            .zip(grad.data_mut().chunks_exact_mut(k));
        for (r, (p, g)) in rows.enumerate() {
            total += match self {
                Loss::CategoricalCrossentropy => {
                    cce_probs(p, &target.data()[r * k..(r + 1) * k], g)
                }
                Loss::CategoricalCrossentropyFromLogits => {
                    cce_logits(p, &target.data()[r * k..(r + 1) * k], g)
                }
                Loss::SparseCategoricalCrossentropy => {
                    cce_probs(p, &one_hot(target.data()[r], k), g)
                }
                Loss::SparseCategoricalCrossentropyFromLogits => {
                    cce_logits(p, &one_hot(target.data()[r], k), g)
                }
                Loss::BinaryCrossentropy => bce_probs(p, &target.data()[r * k..(r + 1) * k], g),
                Loss::BinaryCrossentropyFromLogits => {
                    bce_logits(p, &target.data()[r * k..(r + 1) * k], g)
                }
                Loss::MeanSquaredError => mse(p, &target.data()[r * k..(r + 1) * k], g),
            };
        }
        let inv = 1.0 / n as f32;
        grad.data_mut().iter_mut().for_each(|g| *g *= inv);
        ((total / n as f64) as f32, grad)
    }
}

fn one_hot(label: f32, k: usize) -> Vec<f32> {
    let mut y = vec![0.0; k];
    let i = label as usize;
    assert!(
        label >= 0.0 && i < k && label.fract() == 0.0,
        "label {label} is not an integer in 0..{k}"
    );
    y[i] = 1.0;
    y
}

fn cce_probs(p: &[f32], y: &[f32], g: &mut [f32]) -> f64 {
    let s: f64 = p.iter().map(|&v| v as f64).sum();
    let mut loss = 0.0;
    let mut dot = 0.0;
    for i in 0..p.len() {
        let q = p[i] as f64 / s;
        let c = q.clamp(EPSILON as f64, 1.0 - EPSILON as f64);
        loss -= y[i] as f64 * c.ln();
        // d l / d q_i, zero where the clip is active.
        let gq = if q > EPSILON as f64 && q < 1.0 - EPSILON as f64 {
            -y[i] as f64 / q
        } else {
            0.0
        };
        g[i] = gq as f32;
        dot += gq * q;
    }
    // q = p / s  =>  dl/dp_j = (dl/dq_j - sum_i dl/dq_i q_i) / s.
    for v in g.iter_mut() {
        *v = ((*v as f64 - dot) / s) as f32;
    }
    loss
}

fn cce_logits(z: &[f32], y: &[f32], g: &mut [f32]) -> f64 {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum_exp: f64 = z.iter().map(|&v| (v as f64 - m).exp()).sum();
    let lse = m + sum_exp.ln();
    let sum_y: f64 = y.iter().map(|&v| v as f64).sum();
    let mut loss = sum_y * lse;
    for i in 0..z.len() {
        loss -= y[i] as f64 * z[i] as f64;
        let soft = (z[i] as f64 - lse).exp();
        g[i] = (soft * sum_y - y[i] as f64) as f32;
    }
    loss
}

fn bce_probs(p: &[f32], y: &[f32], g: &mut [f32]) -> f64 {
    let k = p.len() as f64;
    let e = EPSILON as f64;
    let mut loss = 0.0;
    for i in 0..p.len() {
        let (pi, yi) = (p[i] as f64, y[i] as f64);
        let c = pi.clamp(e, 1.0 - e);
        loss -= yi * (c + e).ln() + (1.0 - yi) * (1.0 - c + e).ln();
        g[i] = if pi > e && pi < 1.0 - e {
            ((-yi / (c + e) + (1.0 - yi) / (1.0 - c + e)) / k) as f32
        } else {
            0.0
        };
    }
    loss / k
}

fn bce_logits(z: &[f32], y: &[f32], g: &mut [f32]) -> f64 {
    let k = z.len() as f64;
    let mut loss = 0.0;
    for i in 0..z.len() {
        let (zi, yi) = (z[i] as f64, y[i] as f64);
        loss += zi.max(0.0) - zi * yi + (-zi.abs()).exp().ln_1p();
        g[i] = ((sigmoid(z[i]) as f64 - yi) / k) as f32;
    }
    loss / k
}

fn mse(p: &[f32], y: &[f32], g: &mut [f32]) -> f64 {
    let k = p.len() as f64;
    let mut loss = 0.0;
    for i in 0..p.len() {
        let d = p[i] as f64 - y[i] as f64;
        loss += d * d;
        g[i] = (2.0 * d / k) as f32;
    }
    loss / k
}

/// Counts correct predictions for the accuracy that fits `loss`.
pub(crate) fn count_correct(loss: Loss, p: &Tensor, y: &Tensor) -> (usize, usize) {
    let k = p.sample_len().max(1);
    let n = p.batch();
    let binary = matches!(
        loss,
        Loss::BinaryCrossentropy | Loss::BinaryCrossentropyFromLogits
    ) || (loss == Loss::MeanSquaredError && k == 1);
    if binary {
        let hits = p
            .data()
            .iter()
            .zip(y.data())
            .filter(|(a, b)| (**a > 0.5) == (**b > 0.5))
            .count();
        return (hits, p.len());
    }
    let pred = p.argmax_rows();
    let truth: Vec<usize> = if loss.is_sparse() {
        y.data().iter().map(|&v| v as usize).collect()
    } else {
        y.argmax_rows()
    };
    let hits = pred.iter().zip(&truth).filter(|(a, b)| a == b).count();
    (hits, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_form_equals_probability_form() {
        let z = Tensor::from_vec(&[2, 3], vec![1.0, -2.0, 0.5, 3.0, 0.0, -1.0]).unwrap();
        let y = Tensor::from_vec(&[2, 3], vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]).unwrap();
        let mut p = z.clone();
        Activation::Softmax.forward(p.data_mut(), 3);
        let (a, _) = Loss::CategoricalCrossentropy.compute(&p, &y);
        let (b, _) = Loss::CategoricalCrossentropyFromLogits.compute(&z, &y);
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        let labels = Tensor::from_vec(&[2], vec![2.0, 0.0]).unwrap();
        let (c, _) = Loss::SparseCategoricalCrossentropy.compute(&p, &labels);
        assert!((a - c).abs() < 1e-6);
    }

    #[test]
    fn stable_at_extreme_logits() {
        let z = Tensor::from_vec(&[1, 2], vec![1000.0, -1000.0]).unwrap();
        let y = Tensor::from_vec(&[1, 2], vec![0.0, 1.0]).unwrap();
        let (l, g) = Loss::CategoricalCrossentropyFromLogits.compute(&z, &y);
        assert!((l - 2000.0).abs() < 1e-2 && g.data().iter().all(|v| v.is_finite()));
        let (l, _) = Loss::BinaryCrossentropyFromLogits.compute(&z, &y);
        assert!((l - 1000.0).abs() < 1e-2, "{l}");
    }

    #[test]
    fn target_shapes_are_checked() {
        let err = Loss::CategoricalCrossentropy
            .check_targets(&[4, 10], &[4])
            .unwrap_err();
        assert!(err.to_string().contains("[4, 10]"), "{err}");
        assert!(Loss::SparseCategoricalCrossentropy
            .check_targets(&[4, 10], &[4])
            .is_ok());
        assert_eq!(Loss::from_name("mse"), Some(Loss::MeanSquaredError));
    }
}
