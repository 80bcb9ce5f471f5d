//! Dropout (inverted): in training each value is zeroed with probability
//! `rate` and the survivors are scaled by `1 / (1 - rate)`, so inference is
//! the identity.
//!
//! ```text
//! train: y = x * m / (1 - rate),  m ~ Bernoulli(1 - rate)     dx = dy * m / (1 - rate)
//! eval:  y = x
//! ```
//!
//! The mask is drawn from the RNG that the caller passes (one draw seeds
//! fixed blocks that are filled in parallel), so training is reproducible
//! from the seed whatever the thread count. The blocks use xoshiro256++
//! (`rand_xoshiro`), a fast generator that is plenty for a mask: ChaCha8
//! took most of the layer's time on large activations.

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind, TokenContext};
use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::Tensor;
use multiversion::multiversion;
use rand::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use serde::{Deserialize, Serialize};

/// Values per independently seeded block of the dropout mask (a multiple of 64).
const MASK_BLOCK: usize = 1 << 14;

/// Configuration of a Dropout layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropoutConfig {
    /// Fraction of values dropped, in `[0, 1)`.
    pub rate: f32,
}

impl DropoutConfig {
    /// Dropout with the given rate.
    pub fn new(rate: f32) -> Self {
        DropoutConfig { rate }
    }

    /// Builds the layer, checking the rate.
    pub fn build(&self, input: &[usize]) -> Result<Dropout> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(config_err(
                "Dropout",
                format!("rate must be in [0, 1), found {}", self.rate),
            ));
        }
        Ok(Dropout {
            rate: self.rate,
            shape: input.to_vec(),
            mask: Vec::new(),
        })
    }
}

/// A built Dropout layer.
pub struct Dropout {
    rate: f32,
    shape: Vec<usize>,
    /// The kept values of the last training batch, one bit per value
    /// (bit `i % 64` of word `i / 64`); empty after an inference forward.
    mask: Vec<u64>,
}

impl Layer for Dropout {
    fn input_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, x: Tensor, mode: Mode, rng: &mut Rng) -> Tensor {
        if !mode.trains() || self.rate == 0.0 {
            self.mask.clear();
            return x;
        }
        let keep = 1.0 - self.rate;
        let scale = 1.0 / keep;
        // P(u < threshold) = keep for u uniform on 0..2^32 (to 2^-32).
        let threshold = (f64::from(keep) * 4_294_967_296.0).round() as u64;
        // One draw from the model's RNG seeds every block of the mask, so
        // the blocks are filled in parallel and the result does not depend
        // on the thread count.
        let base: u64 = rng.gen();
        self.mask.resize(x.len().div_ceil(64), 0);
        let mut y = x;
        y.data_mut()
            .par_chunks_mut(MASK_BLOCK)
            .zip(self.mask.par_chunks_mut(MASK_BLOCK / 64))
            .enumerate()
            .for_each(|(i, (v, m))| {
                let mut r = Xoshiro256PlusPlus::seed_from_u64(
                    base ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                let mut draws = [0u32; 64];
                for (w, vals) in m.iter_mut().zip(v.chunks(64)) {
                    // 64 uniform u32 at a time, bulk-generated; a value is
                    // kept when its draw falls below keep * 2^32.
                    r.fill(&mut draws[..]);
                    *w = keep_bits(&draws[..vals.len()], threshold);
                }
                apply_mask(m, scale, v);
            });
        y
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let mut dx = dy;
        if !self.mask.is_empty() {
            let scale = 1.0 / (1.0 - self.rate);
            dx.data_mut()
                .par_chunks_mut(MASK_BLOCK)
                .zip(self.mask.par_chunks(MASK_BLOCK / 64))
                .for_each(|(v, m)| apply_mask(m, scale, v));
        }
        dx
    }
}

/// Bit `j` set where `draws[j] < threshold` (at most 64 draws).
#[multiversion(targets = "simd")]
fn keep_bits(draws: &[u32], threshold: u64) -> u64 {
    let mut bits = 0u64;
    for (j, &d) in draws.iter().enumerate() {
        bits |= u64::from(u64::from(d) < threshold) << j;
    }
    bits
}

/// `v *= scale` where the mask bit is set, `v *= 0` where it is clear.
#[multiversion(targets = "simd")]
fn apply_mask(mask: &[u64], scale: f32, v: &mut [f32]) {
    for (&w, vals) in mask.iter().zip(v.chunks_mut(64)) {
        for (j, x) in vals.iter_mut().enumerate() {
            *x *= if (w >> j) & 1 == 1 { scale } else { 0.0 };
        }
    }
}

impl LayerKind for DropoutConfig {
    fn name(&self) -> &'static str {
        "Dropout"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(config_err(
                "Dropout",
                format!("rate must be in [0, 1), found {}", self.rate),
            ));
        }
        Ok(input.to_vec())
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| DropoutConfig::build(self, x))
    }
    /// `Dr`, e.g. `D0.4`.
    fn notation(&self) -> Option<String> {
        Some(format!("D{}", self.rate))
    }
    fn parse_token(
        token: &str,
        _ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        let rate = token.strip_prefix('D')?;
        Some(match rate.parse::<f32>() {
            Err(_) => Err(format!("'{token}': dropout needs a rate, e.g. D0.4")),
            Ok(r) if !(0.0..1.0).contains(&r) => {
                Err(format!("'{token}': dropout rate must be in [0, 1)"))
            }
            Ok(r) => Ok(LayerSpec::Dropout(DropoutConfig::new(r))),
        })
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_drops_the_rate_and_backward_uses_the_same_mask() {
        // Several mask blocks and a length that is not a multiple of 64.
        let len = 3 * MASK_BLOCK + 77;
        let mut layer = DropoutConfig::new(0.3).build(&[len]).unwrap();
        let mut rng = Rng::seed_from_u64(1);
        let ones = Tensor::from_vec(&[1, len], vec![1.0; len]).unwrap();
        let y = layer.forward(ones.clone(), Mode::Train, &mut rng);
        let scale = 1.0 / 0.7f32;
        assert!(y.data().iter().all(|&v| v == 0.0 || v == scale));
        let dropped = y.data().iter().filter(|&&v| v == 0.0).count() as f64 / len as f64;
        assert!((dropped - 0.3).abs() < 0.01, "dropped {dropped}");
        let dx = layer.backward(ones.clone());
        assert_eq!(dx.data(), y.data());
        // Inference is the identity.
        let e = layer.forward(ones.clone(), Mode::Eval, &mut rng);
        assert_eq!(e.data(), ones.data());
    }
}
