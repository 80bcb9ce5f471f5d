//! Element-wise activations and softmax, forward and backward.
//!
//! Every derivative here is written in terms of the activation's *output*
//! `y`, so a layer only has to keep `y` for its backward pass:
//!
//! ```text
//! relu       y = max(x, 0)                 dy/dx = [y > 0]
//! sigmoid    y = 1 / (1 + e^-x)            dy/dx = y (1 - y)
//! tanh       y = tanh x                    dy/dx = 1 - y^2
//! leaky_relu y = x if x > 0 else a x       dy/dx = 1 if y > 0 else a      (a > 0)
//! elu        y = x if x > 0 else a(e^x-1)  dy/dx = 1 if y > 0 else y + a
//! softmax    y_i = e^x_i / sum_j e^x_j     dx_i = y_i (dy_i - sum_j dy_j y_j)   (per row)
//! ```

use multiversion::multiversion;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Slices at least this long are processed in parallel blocks.
const PAR_MIN: usize = 1 << 15;

/// An activation function, as Keras names them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Activation {
    /// Identity.
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// `x` for positive `x`, `alpha * x` otherwise (`alpha > 0`).
    LeakyRelu {
        /// Slope for negative inputs (Keras's default 0.2).
        alpha: f32,
    },
    /// `x` for positive `x`, `alpha * (e^x - 1)` otherwise.
    Elu {
        /// Saturation value for negative inputs (Keras's default 1.0).
        alpha: f32,
    },
}

impl Activation {
    /// The Keras name (`relu`, `softmax`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
        }
    }

    /// Parses a Keras name with default parameters.
    pub fn from_name(name: &str) -> Option<Activation> {
        Some(match name {
            "linear" | "none" => Activation::Linear,
            "relu" => Activation::Relu,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "softmax" => Activation::Softmax,
            "leaky_relu" => Activation::LeakyRelu { alpha: 0.2 },
            "elu" => Activation::Elu { alpha: 1.0 },
            _ => return None,
        })
    }

    /// Applies the activation in place; `row` is the softmax axis length.
    /// Long slices are split into blocks of whole rows and run in parallel.
    pub fn forward(&self, x: &mut [f32], row: usize) {
        if *self == Activation::Linear {
            return;
        }
        let block = par_block(x.len(), row);
        if block < x.len() {
            x.par_chunks_mut(block)
                .for_each(|b| self.forward_serial(b, row));
        } else {
            self.forward_serial(x, row);
        }
    }

    /// Turns `dy` (gradient w.r.t. the output) into the gradient w.r.t. the
    /// input, in place, given the forward output `y`; parallel when long.
    pub fn backward(&self, y: &[f32], dy: &mut [f32], row: usize) {
        if *self == Activation::Linear {
            return;
        }
        let block = par_block(dy.len(), row);
        if block < dy.len() {
            dy.par_chunks_mut(block)
                .zip(y.par_chunks(block))
                .for_each(|(d, y)| self.backward_serial(y, d, row));
        } else {
            self.backward_serial(y, dy, row);
        }
    }

    /// [`Activation::forward`] on the calling thread.
    pub fn forward_serial(&self, x: &mut [f32], row: usize) {
        forward_kernel(*self, x, row)
    }

    /// [`Activation::backward`] on the calling thread.
    pub fn backward_serial(&self, y: &[f32], dy: &mut [f32], row: usize) {
        backward_kernel(*self, y, dy, row)
    }
}

/// The body of [`Activation::forward_serial`], compiled for each SIMD level
/// and picked at run time (the same arithmetic in every version).
#[multiversion(targets = "simd")]
fn forward_kernel(act: Activation, x: &mut [f32], row: usize) {
    match act {
        Activation::Linear => {}
        // `if v < 0` rather than `max`, so that NaN propagates as in PyTorch.
        Activation::Relu => x.iter_mut().for_each(|v| {
            if *v < 0.0 {
                *v = 0.0
            }
        }),
        Activation::Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Activation::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::LeakyRelu { alpha } => x.iter_mut().for_each(|v| {
            if *v <= 0.0 {
                *v *= alpha
            }
        }),
        Activation::Elu { alpha } => x.iter_mut().for_each(|v| {
            if *v <= 0.0 {
                *v = alpha * v.exp_m1()
            }
        }),
        Activation::Softmax => x.chunks_exact_mut(row).for_each(softmax_row),
    }
}

/// The body of [`Activation::backward_serial`], one version per SIMD level.
#[multiversion(targets = "simd")]
fn backward_kernel(act: Activation, y: &[f32], dy: &mut [f32], row: usize) {
    match act {
        Activation::Linear => {}
        Activation::Relu => dy.iter_mut().zip(y).for_each(|(d, &y)| {
            if y <= 0.0 {
                *d = 0.0
            }
        }),
        Activation::Sigmoid => dy.iter_mut().zip(y).for_each(|(d, &y)| *d *= y * (1.0 - y)),
        Activation::Tanh => dy.iter_mut().zip(y).for_each(|(d, &y)| *d *= 1.0 - y * y),
        Activation::LeakyRelu { alpha } => dy.iter_mut().zip(y).for_each(|(d, &y)| {
            if y <= 0.0 {
                *d *= alpha
            }
        }),
        Activation::Elu { alpha } => dy.iter_mut().zip(y).for_each(|(d, &y)| {
            if y <= 0.0 {
                *d *= y + alpha
            }
        }),
        Activation::Softmax => {
            for (d, y) in dy.chunks_exact_mut(row).zip(y.chunks_exact(row)) {
                let dot: f32 = d.iter().zip(y).map(|(a, b)| a * b).sum();
                d.iter_mut().zip(y).for_each(|(d, &y)| *d = y * (*d - dot));
            }
        }
    }
}

/// Block length for parallel element-wise work: a multiple of `row`, at
/// least [`PAR_MIN`] values (or the whole slice when it is shorter).
fn par_block(len: usize, row: usize) -> usize {
    let row = row.max(1);
    if len < 2 * PAR_MIN {
        return len.max(1);
    }
    PAR_MIN.div_ceil(row) * row
}

/// Numerically stable logistic sigmoid.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Softmax of one row in place, shifted by the row's maximum for stability.
pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_normalized() {
        let mut row = [1000.0, 1000.0, -1000.0];
        softmax_row(&mut row);
        assert!((row[0] - 0.5).abs() < 1e-6 && row[2] == 0.0);
        assert!((sigmoid(-100.0)).is_finite() && sigmoid(100.0) == 1.0);
    }

    #[test]
    fn names_round_trip() {
        for a in [
            Activation::Linear,
            Activation::Relu,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Softmax,
            Activation::LeakyRelu { alpha: 0.2 },
            Activation::Elu { alpha: 1.0 },
        ] {
            assert_eq!(Activation::from_name(a.name()), Some(a));
        }
        assert_eq!(Activation::from_name("swishy"), None);
    }
}
