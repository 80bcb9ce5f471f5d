//! Dropout (inverted): in training each value is zeroed with probability
//! `rate` and the survivors are scaled by `1 / (1 - rate)`, so inference is
//! the identity.
//!
//! ```text
//! train: y = x * m / (1 - rate),  m ~ Bernoulli(1 - rate)     dx = dy * m / (1 - rate)
//! eval:  y = x
//! ```
//!
//! The mask is drawn from the RNG that the caller passes, so training is
//! reproducible from the seed.

use crate::error::config_err;
use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::Tensor;
use rand::Rng as _;
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
        self.mask.clear();
        self.mask
            .extend((0..x.len()).map(|_| if rng.gen::<f32>() < keep { scale } else { 0.0 }));
        let mut y = x;
        y.data_mut()
            .iter_mut()
            .zip(&self.mask)
            .for_each(|(v, m)| *v *= m);
        y
    }

    fn backward(&mut self, dy: Tensor) -> Tensor {
        let mut dx = dy;
        if !self.mask.is_empty() {
            dx.data_mut()
                .iter_mut()
                .zip(&self.mask)
                .for_each(|(v, m)| *v *= m);
        }
        dx
    }
}
