//! Element-wise activations and softmax, forward and backward.
//!
//! Every derivative here is written in terms of the activation's *output*
//! `y`, so a layer only has to keep `y` for its backward pass:
//!
//! ```text
//! relu       y = max(x, 0)                 dy/dx = [y > 0]
//! relu6      y = min(max(x, 0), 6)         dy/dx = [0 < y < 6]
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
    /// `min(max(x, 0), 6)` (MobileNet's; ONNX `Clip(0, 6)`).
    Relu6,
    /// Logistic sigmoid.
    Sigmoid,
    /// `x * sigmoid(x)` (Keras's `swish`, PyTorch's `SiLU`; EfficientNet's).
    /// Its derivative `s + x s (1 - s)` (`s = sigmoid(x)`) needs the input,
    /// which the output does not determine, so it keeps its input for
    /// backward ([`Activation::saves_input`]).
    Swish,
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
            Activation::Relu6 => "relu6",
            Activation::Sigmoid => "sigmoid",
            Activation::Swish => "swish",
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
            "relu6" => Activation::Relu6,
            "sigmoid" => Activation::Sigmoid,
            "swish" | "silu" => Activation::Swish,
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

    /// Whether backward needs the input rather than the output (Swish).
    pub fn saves_input(&self) -> bool {
        matches!(self, Activation::Swish)
    }

    /// Turns `dy` (gradient w.r.t. the output) into the gradient w.r.t. the
    /// input, in place, given the forward output `y` (the input `x` for the
    /// activations that [save it](Activation::saves_input)); parallel when long.
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

/// What an activation's backward pass needs from its forward output `y`.
///
/// ReLU needs only where `y` is positive, so it keeps one bit per value
/// (32x less memory than a copy, and its backward reads 32x less); the other
/// activations keep a copy of `y`, except Swish, which keeps a copy of its
/// input `x` ([`Activation::saves_input`]).
#[derive(Clone, Debug)]
pub enum SavedOutput {
    /// Bit `i % 64` of word `i / 64` is set where `!(y[i] <= 0)` (NaN counts
    /// as set, so NaN gradients pass through as in PyTorch).
    ReluMask(Vec<u64>),
    /// A copy of `y`.
    Values(Vec<f32>),
}

impl Activation {
    /// Applies the activation to `x` in place and keeps in `slot` what
    /// [`Activation::backward_saved`] needs: the output (as
    /// [`Activation::save_output`]), or a copy of the input for the
    /// activations that [need it](Activation::saves_input).
    pub fn forward_saving(&self, x: &mut [f32], row: usize, slot: &mut Option<SavedOutput>) {
        if self.saves_input() {
            copy_into(x, slot);
            self.forward(x, row);
        } else {
            self.forward(x, row);
            self.save_output(x, slot);
        }
    }

    /// Keeps what [`Activation::backward_saved`] needs from the output `y`,
    /// reusing the buffer already in `slot`. Nothing is kept for `Linear`.
    ///
    /// # Panics
    /// For an activation that keeps its input instead (Swish): use
    /// [`Activation::forward_saving`].
    pub fn save_output(&self, y: &[f32], slot: &mut Option<SavedOutput>) {
        assert!(
            !self.saves_input(),
            "{} keeps its input for backward: use forward_saving",
            self.name()
        );
        match self {
            Activation::Linear => *slot = None,
            Activation::Relu => {
                let words = y.len().div_ceil(64);
                let mut mask = match slot.take() {
                    Some(SavedOutput::ReluMask(m)) => m,
                    _ => Vec::new(),
                };
                mask.resize(words, 0);
                mask.par_chunks_mut(PAR_MIN / 64)
                    .zip(y.par_chunks(PAR_MIN))
                    .for_each(|(m, y)| pack_positive(y, m));
                *slot = Some(SavedOutput::ReluMask(mask));
            }
            _ => copy_into(y, slot),
        }
    }

    /// [`Activation::backward`] from what [`Activation::save_output`] kept.
    pub fn backward_saved(&self, saved: &SavedOutput, dy: &mut [f32], row: usize) {
        match saved {
            SavedOutput::ReluMask(mask) => {
                assert!(mask.len() * 64 >= dy.len(), "backward_saved: mask length");
                apply_mask_par(mask, dy);
            }
            SavedOutput::Values(y) => self.backward(y, dy, row),
        }
    }
}

/// A copy of `v` in `slot`, reusing the buffer there.
fn copy_into(v: &[f32], slot: &mut Option<SavedOutput>) {
    let mut values = match slot.take() {
        Some(SavedOutput::Values(v)) => v,
        _ => Vec::new(),
    };
    values.resize(v.len(), 0.0);
    values
        .par_chunks_mut(PAR_MIN)
        .zip(v.par_chunks(PAR_MIN))
        .for_each(|(d, s)| d.copy_from_slice(s));
    *slot = Some(SavedOutput::Values(values));
}

/// Packs `!(y <= 0)` into bits, 64 values per word.
#[multiversion(targets = "simd")]
pub(crate) fn pack_positive(y: &[f32], mask: &mut [u64]) {
    for (w, block) in mask.iter_mut().zip(y.chunks(64)) {
        let mut bits = 0u64;
        for (i, &v) in block.iter().enumerate() {
            bits |= u64::from(v > 0.0 || v.is_nan()) << i;
        }
        *w = bits;
    }
}

/// [`apply_mask`] over all threads.
pub(crate) fn apply_mask_par(mask: &[u64], dy: &mut [f32]) {
    dy.par_chunks_mut(PAR_MIN)
        .zip(mask.par_chunks(PAR_MIN / 64))
        .for_each(|(d, m)| apply_mask(m, d));
}

/// Zeroes `dy` where the mask bit is clear.
#[multiversion(targets = "simd")]
pub(crate) fn apply_mask(mask: &[u64], dy: &mut [f32]) {
    for (&w, block) in mask.iter().zip(dy.chunks_mut(64)) {
        for (i, d) in block.iter_mut().enumerate() {
            if (w >> i) & 1 == 0 {
                *d = 0.0;
            }
        }
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
        // NaN passes through, as in PyTorch's hardtanh.
        Activation::Relu6 => x.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
        Activation::Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Activation::Swish => x.iter_mut().for_each(|v| *v *= sigmoid(*v)),
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
        // Zero at and beyond both ends (and for NaN), as PyTorch's.
        Activation::Relu6 => dy.iter_mut().zip(y).for_each(|(d, &y)| {
            if !(y > 0.0 && y < 6.0) {
                *d = 0.0
            }
        }),
        Activation::Sigmoid => dy.iter_mut().zip(y).for_each(|(d, &y)| *d *= y * (1.0 - y)),
        // `y` is the input x here: d/dx x s(x) = s + x s (1 - s).
        Activation::Swish => dy.iter_mut().zip(y).for_each(|(d, &x)| {
            let s = sigmoid(x);
            *d *= s + x * s * (1.0 - s)
        }),
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
    fn saved_outputs_give_the_same_gradients() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Lengths around word and parallel-block boundaries, with zeros and NaN.
        for len in [1, 63, 64, 65, 1000, 2 * PAR_MIN + 77] {
            for act in [
                Activation::Relu,
                Activation::Tanh,
                Activation::Elu { alpha: 1.0 },
            ] {
                let mut y: Vec<f32> = (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect();
                act.forward(&mut y, 1);
                y[0] = 0.0;
                if len > 5 {
                    y[5] = f32::NAN;
                }
                let dy: Vec<f32> = (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let mut want = dy.clone();
                act.backward(&y, &mut want, 1);
                let mut slot = Some(SavedOutput::ReluMask(vec![u64::MAX; 3]));
                act.save_output(&y, &mut slot);
                let mut got = dy.clone();
                act.backward_saved(slot.as_ref().unwrap(), &mut got, 1);
                for (g, w) in got.iter().zip(&want) {
                    assert!(g.to_bits() == w.to_bits(), "{act:?} len {len}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for a in [
            Activation::Linear,
            Activation::Relu,
            Activation::Relu6,
            Activation::Sigmoid,
            Activation::Swish,
            Activation::Tanh,
            Activation::Softmax,
            Activation::LeakyRelu { alpha: 0.2 },
            Activation::Elu { alpha: 1.0 },
        ] {
            assert_eq!(Activation::from_name(a.name()), Some(a));
        }
        assert_eq!(Activation::from_name("silu"), Some(Activation::Swish));
        assert_eq!(Activation::from_name("swishy"), None);
    }

    #[test]
    fn swish_keeps_its_input_and_differentiates_from_it() {
        let x: Vec<f32> = vec![-6.0, -1.278_464_5, -0.5, 0.0, 0.5, 3.0, 20.0];
        let mut y = x.clone();
        let mut slot = None;
        Activation::Swish.forward_saving(&mut y, 1, &mut slot);
        let Some(SavedOutput::Values(kept)) = &slot else {
            panic!("no copy kept")
        };
        assert_eq!(kept, &x, "the input, not the output");
        for (&x, &y) in x.iter().zip(&y) {
            let want = f64::from(x) / (1.0 + (-f64::from(x)).exp());
            assert!(
                (f64::from(y) - want).abs() < 1e-6,
                "swish({x}) = {y}, want {want}"
            );
        }
        // d/dx x s(x) = s (1 + x (1 - s)): 0 at the minimum (x = -1.2785),
        // 1/2 at 0, towards 1 for large x; from the saved input.
        let mut dy = vec![1.0; x.len()];
        Activation::Swish.backward_saved(slot.as_ref().unwrap(), &mut dy, 1);
        for (&x, &d) in x.iter().zip(&dy) {
            let s = 1.0 / (1.0 + (-f64::from(x)).exp());
            let want = s * (1.0 + f64::from(x) * (1.0 - s));
            assert!(
                (f64::from(d) - want).abs() < 1e-6,
                "swish'({x}) = {d}, want {want}"
            );
        }
        assert!(dy[1].abs() < 1e-6 && dy[3] == 0.5);
    }

    #[test]
    #[should_panic(expected = "swish keeps its input for backward")]
    fn swish_refuses_to_save_its_output() {
        Activation::Swish.save_output(&[1.0], &mut None);
    }

    #[test]
    fn relu6_clips_both_ends_and_passes_nan_through() {
        let mut x = [-1.0, 0.0, 3.5, 6.0, 7.25, f32::NAN, f32::INFINITY];
        Activation::Relu6.forward(&mut x, 1);
        assert_eq!(x[..5], [0.0, 0.0, 3.5, 6.0, 6.0]);
        assert!(x[5].is_nan());
        assert_eq!(x[6], 6.0);
        // dy/dx = 1 strictly between the ends, 0 at them, beyond them and for NaN.
        let mut dy = [1.0; 7];
        Activation::Relu6.backward(&x, &mut dy, 1);
        assert_eq!(dy, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
