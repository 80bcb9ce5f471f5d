//! Normalization, as in Keras's `ImageDataGenerator`: rescaling,
//! feature-wise (per channel, statistics fitted on training data) and
//! sample-wise (per image) centering and standardization.
//!
//! ```text
//! featurewise: x <- (x - mean_c) / (std_c + 1e-6)     mean_c, std_c over all training pixels of channel c
//! samplewise:  x <- (x - mean(x)) / (std(x) + 1e-6)   over one image
//! ```

use convnet_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Per-channel statistics fitted on training images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeaturewiseStats {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl FeaturewiseStats {
    /// Fits on `[N, H, W, C]` (or any `[..., C]`) images.
    pub fn fit(x: &Tensor) -> Self {
        let c = *x.shape().last().unwrap_or(&1);
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        for px in x.data().chunks_exact(c) {
            for ((s, q), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(px) {
                *s += v as f64;
                *q += (v as f64).powi(2);
            }
        }
        let n = (x.len() / c).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        FeaturewiseStats {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: sq
                .iter()
                .zip(&mean)
                .map(|(s, m)| ((s / n - m * m).max(0.0)).sqrt() as f32)
                .collect(),
        }
    }

    /// Centers (and, when `scale`, divides by the deviation) in place.
    pub fn apply(&self, x: &mut Tensor, scale: bool) {
        let c = self.mean.len();
        for px in x.data_mut().chunks_exact_mut(c) {
            for ((v, m), s) in px.iter_mut().zip(&self.mean).zip(&self.std) {
                *v -= m;
                if scale {
                    *v /= s + 1e-6;
                }
            }
        }
    }
}

/// Multiplies every value by `factor` (Keras's `rescale`, e.g. 1/255).
pub fn rescale(x: &mut Tensor, factor: f32) {
    x.data_mut().iter_mut().for_each(|v| *v *= factor);
}

/// Centers each sample (and divides by its deviation when `scale`).
pub fn samplewise(x: &mut Tensor, scale: bool) {
    let per = x.sample_len().max(1);
    for s in x.data_mut().chunks_exact_mut(per) {
        let n = per as f64;
        let mean = s.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (s.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        for v in s.iter_mut() {
            *v -= mean as f32;
            if scale {
                *v /= std as f32 + 1e-6;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn featurewise_and_samplewise_standardize() {
        let mut x = Tensor::from_vec(
            &[2, 1, 2, 2],
            vec![0.0, 10.0, 2.0, 10.0, 4.0, 30.0, 6.0, 30.0],
        )
        .unwrap();
        let st = FeaturewiseStats::fit(&x);
        assert_eq!(st.mean, vec![3.0, 20.0]);
        assert!((st.std[0] - 5.0f32.sqrt()).abs() < 1e-6 && (st.std[1] - 10.0).abs() < 1e-6);
        st.apply(&mut x, true);
        let again = FeaturewiseStats::fit(&x);
        assert!(again.mean.iter().all(|m| m.abs() < 1e-6));
        assert!(again.std.iter().all(|s| (s - 1.0).abs() < 1e-4));
        let mut y = Tensor::from_vec(&[1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        samplewise(&mut y, true);
        let m: f32 = y.data().iter().sum::<f32>() / 4.0;
        assert!(m.abs() < 1e-6);
        let mut z = Tensor::from_vec(&[1, 2], vec![255.0, 51.0]).unwrap();
        rescale(&mut z, 1.0 / 255.0);
        assert!((z.data()[1] - 0.2).abs() < 1e-6);
    }
}
