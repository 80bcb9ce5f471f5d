//! Weight initializers, seeded, with Keras's definitions.
//!
//! For a kernel with fan-in `fi` and fan-out `fo` (for Conv2D
//! `fi = KH*KW*C_in`, `fo = KH*KW*F`; for Dense `fi = in`, `fo = units`):
//!
//! ```text
//! glorot_uniform  U(-l, l),  l = sqrt(6 / (fi + fo))        (Keras's default)
//! he_uniform      U(-l, l),  l = sqrt(6 / fi)
//! he_normal       truncated normal (cut at 2 sd), sd = sqrt(2 / fi) / 0.87962566
//! ```
//!
//! The `0.8796...` factor is the standard deviation of a unit normal cut at
//! two standard deviations; Keras divides by it so that the truncated
//! samples keep variance `2 / fi`.

use crate::Rng;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// An initializer for weights or biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Initializer {
    /// Glorot (Xavier) uniform.
    #[default]
    GlorotUniform,
    /// He normal (truncated).
    HeNormal,
    /// He uniform.
    HeUniform,
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

impl Initializer {
    /// Fills `out` for a tensor with the given fans.
    pub fn fill(&self, out: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut Rng) {
        let fi = fan_in.max(1) as f64;
        let fo = fan_out.max(1) as f64;
        match self {
            Initializer::Zeros => out.fill(0.0),
            Initializer::Ones => out.fill(1.0),
            Initializer::GlorotUniform => uniform(out, (6.0 / (fi + fo)).sqrt(), rng),
            Initializer::HeUniform => uniform(out, (6.0 / fi).sqrt(), rng),
            Initializer::HeNormal => {
                let sd = (2.0 / fi).sqrt() / 0.879_625_661_034_239_8;
                for v in out.iter_mut() {
                    let z = loop {
                        let z: f64 = StandardNormal.sample(rng);
                        if z.abs() <= 2.0 {
                            break z;
                        }
                    };
                    *v = (z * sd) as f32;
                }
            }
        }
    }
}

fn uniform(out: &mut [f32], limit: f64, rng: &mut Rng) {
    for v in out.iter_mut() {
        *v = rng.gen_range(-limit..limit) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn stats(v: &[f32]) -> (f64, f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().map(|x| x.abs() as f64).fold(0.0, f64::max);
        (mean, var, max)
    }

    #[test]
    fn variances_match_the_definitions() {
        let mut rng = Rng::seed_from_u64(0);
        let mut w = vec![0.0; 200_000];
        // Glorot uniform, fans 800 and 1600: variance l^2 / 3 = 2 / (fi + fo).
        Initializer::GlorotUniform.fill(&mut w, 800, 1600, &mut rng);
        let (m, v, max) = stats(&w);
        assert!(m.abs() < 1e-3 && (v / (2.0 / 2400.0) - 1.0).abs() < 0.02);
        assert!(max <= (6.0f64 / 2400.0).sqrt());
        Initializer::HeNormal.fill(&mut w, 800, 1600, &mut rng);
        let (_, v, max) = stats(&w);
        assert!(
            (v / (2.0 / 800.0) - 1.0).abs() < 0.02,
            "he_normal variance {v}"
        );
        assert!(max <= 2.0 * (2.0f64 / 800.0).sqrt() / 0.8796 + 1e-6);
        Initializer::HeUniform.fill(&mut w, 800, 1600, &mut rng);
        let (_, v, _) = stats(&w);
        assert!((v / (2.0 / 800.0) - 1.0).abs() < 0.02);
        Initializer::Ones.fill(&mut w, 1, 1, &mut rng);
        assert!(w.iter().all(|&x| x == 1.0));
    }

    #[test]
    fn same_seed_same_weights() {
        let draw = |seed| {
            let mut rng = Rng::seed_from_u64(seed);
            let mut w = vec![0.0; 16];
            Initializer::GlorotUniform.fill(&mut w, 4, 4, &mut rng);
            w
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
