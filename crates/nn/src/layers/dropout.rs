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
//! from the seed whatever the thread count.

use crate::error::config_err;
use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::Tensor;
use rand::{Rng as _, SeedableRng};
use rayon::prelude::*;

/// Values per independently seeded block of the dropout mask.
const MASK_BLOCK: usize = 1 << 14;
use serde::{Deserialize, Serialize};

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
    /// `0` or `1 / (1 - rate)` per value of the last training batch.
    mask: Vec<f32>,
}

impl Layer for Dropout {
    fn spec(&self) -> LayerSpec {
        LayerSpec::Dropout(DropoutConfig::new(self.rate))
    }
    fn input_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, x: Tensor, mode: Mode, rng: &mut Rng) -> Tensor {
        if mode == Mode::Eval || self.rate == 0.0 {
            self.mask.clear();
            return x;
        }
        let keep = 1.0 - self.rate;
        let scale = 1.0 / keep;
        // One draw from the model's RNG seeds every block of the mask, so
        // the blocks are filled in parallel and the result does not depend
        // on the thread count.
        let base: u64 = rng.gen();
        self.mask.resize(x.len(), 0.0);
        self.mask
            .par_chunks_mut(MASK_BLOCK)
            .enumerate()
            .for_each(|(i, block)| {
                let mut r =
                    Rng::seed_from_u64(base ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                for m in block.iter_mut() {
                    *m = if r.gen::<f32>() < keep { scale } else { 0.0 };
                }
            });
        let mut y = x;
        y.data_mut()
            .par_chunks_mut(MASK_BLOCK)
            .zip(self.mask.par_chunks(MASK_BLOCK))
            .for_each(|(v, m)| v.iter_mut().zip(m).for_each(|(v, m)| *v *= m));
        y
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let mut dx = dy;
        if !self.mask.is_empty() {
            dx.data_mut()
                .par_chunks_mut(MASK_BLOCK)
                .zip(self.mask.par_chunks(MASK_BLOCK))
                .for_each(|(v, m)| v.iter_mut().zip(m).for_each(|(v, m)| *v *= m));
        }
        dx
    }
}
