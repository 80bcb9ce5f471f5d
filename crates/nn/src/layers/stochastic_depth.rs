//! StochasticDepth (Huang et al. 2016; torchvision's `StochasticDepth(p,
//! "row")`, EfficientNet's "drop connect"): in training, the whole residual
//! branch of a sample is dropped with probability `rate` and kept samples
//! are scaled by `1 / (1 - rate)`; inference is the identity. It sits on a
//! residual block's branch, before the `Add` with the shortcut.
//!
//! ```text
//! train: y[n] = x[n] * k[n] / (1 - rate),  k[n] ~ Bernoulli(1 - rate), one per sample
//!        dx[n] = dy[n] * k[n] / (1 - rate)
//! eval:  y = x
//! ```
//! One draw per sample from the model's RNG, in sample order: the same
//! seed gives the same mask for any thread count.

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind, TokenContext};
use crate::layer::{Layer, Mode};
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::Tensor;
use rand::Rng as _;
use rayon::prelude::*;
use ref_cast::RefCast;
use serde::Deserialize;

fn check(rate: f32) -> Result<()> {
    if !(0.0..1.0).contains(&rate) {
        return Err(config_err(
            "StochasticDepth",
            format!("rate must be in [0, 1), found {rate}"),
        ));
    }
    Ok(())
}

/// A built StochasticDepth layer.
pub struct StochasticDepth {
    rate: f32,
    shape: Vec<usize>,
    /// Each sample's factor in the last training forward (0 or
    /// `1 / (1 - rate)`); empty after an inference forward.
    factors: Vec<f32>,
}

impl StochasticDepth {
    /// Builds the layer for any input shape.
    pub fn build(rate: f32, input: &[usize]) -> Result<StochasticDepth> {
        check(rate)?;
        Ok(StochasticDepth {
            rate,
            shape: input.to_vec(),
            factors: Vec::new(),
        })
    }

    /// `v[n] *= factors[n]` over the batch.
    fn scale(&self, mut t: Tensor) -> Tensor {
        let per = t.len() / self.factors.len().max(1);
        t.data_mut()
            .par_chunks_mut(per.max(1))
            .zip(&self.factors)
            .for_each(|(v, &f)| v.iter_mut().for_each(|x| *x *= f));
        t
    }
}

impl Layer for StochasticDepth {
    fn input_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&mut self, x: Tensor, mode: Mode, rng: &mut Rng) -> Tensor {
        if !mode.trains() || self.rate == 0.0 {
            self.factors.clear();
            return x;
        }
        let keep = 1.0 - self.rate;
        self.factors = (0..x.batch())
            .map(|_| {
                if rng.gen::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        self.scale(x)
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        if self.factors.is_empty() {
            return dy;
        }
        self.scale(dy)
    }
}

/// StochasticDepth's kind: its one setting.
#[derive(Deserialize, RefCast)]
#[serde(deny_unknown_fields)]
#[repr(transparent)]
pub struct StochasticDepthSpec {
    /// Probability that a sample's branch is dropped, in `[0, 1)`.
    pub rate: f32,
}

impl LayerKind for StochasticDepthSpec {
    fn name(&self) -> &'static str {
        "StochasticDepth"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        check(self.rate)?;
        crate::kind::same_shape("StochasticDepth", input)
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| StochasticDepth::build(self.rate, x))
    }
    /// `SDr`, e.g. `SD0.2`.
    fn notation(&self) -> Option<String> {
        Some(format!("SD{}", self.rate))
    }
    fn parse_token(
        token: &str,
        _ctx: &TokenContext,
    ) -> Option<std::result::Result<LayerSpec, String>> {
        let rate = token.strip_prefix("SD")?;
        Some(match rate.parse::<f32>() {
            Ok(r) if (0.0..1.0).contains(&r) => Ok(LayerSpec::StochasticDepth { rate: r }),
            _ => Err(format!(
                "'{token}': stochastic depth is SDr with a rate in [0, 1), e.g. SD0.2"
            )),
        })
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn whole_samples_are_dropped_or_scaled_and_backward_uses_the_same_choice() {
        let (n, len) = (400, 6);
        let mut layer = StochasticDepth::build(0.25, &[2, 3]).unwrap();
        let mut rng = Rng::seed_from_u64(3);
        let ones = Tensor::from_vec(&[n, 2, 3], vec![1.0; n * len]).unwrap();
        let y = layer.forward(ones.clone(), Mode::Train, &mut rng);
        let scale = 1.0 / 0.75f32;
        let mut dropped = 0;
        for s in y.data().chunks(len) {
            assert!(s.iter().all(|&v| v == s[0]) && (s[0] == 0.0 || s[0] == scale));
            dropped += usize::from(s[0] == 0.0);
        }
        assert!((70..=130).contains(&dropped), "dropped {dropped} of {n}");
        assert_eq!(layer.backward(ones.clone()).data(), y.data());
        assert_eq!(
            layer.forward(ones.clone(), Mode::Eval, &mut rng).data(),
            ones.data()
        );
        assert!(StochasticDepth::build(1.0, &[2]).is_err());
    }
}
