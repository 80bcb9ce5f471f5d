//! ChannelShuffle: ShuffleNet's interleaving of channel groups, so that the
//! next grouped convolution mixes information across the groups.
//!
//! ```text
//! x [N, ...S, C], G groups of K = C / G channels: channel g*K + j of x
//! y [N, ...S, C]                y[..., j*G + g] = x[..., g*K + j]
//! dx[..., g*K + j] = dy[..., j*G + g]            (a permutation: its inverse)
//! ```
//! PyTorch writes it as `x.view(N, G, K, H, W).transpose(1, 2).reshape(N, C, H, W)`;
//! the ONNX importer turns that Reshape-Transpose-Reshape into this layer
//! and the exporter writes it back. Not a Keras class (Keras has none).

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind};
use crate::layer::{batched, Layer, Mode};
use crate::{Result, Rng};
use convnet_tensor::Tensor;
use rayon::prelude::*;
use ref_cast::RefCast;
use serde::Deserialize;

/// Output shape: the input's, whose last axis `groups` must divide.
pub fn output_shape(groups: usize, input: &[usize]) -> Result<Vec<usize>> {
    let c = *input
        .last()
        .ok_or_else(|| config_err("ChannelShuffle", "needs a non-empty input shape"))?;
    if groups == 0 || c % groups != 0 {
        return Err(config_err(
            "ChannelShuffle",
            format!("groups {groups} must be at least 1 and divide the {c} channels"),
        ));
    }
    Ok(input.to_vec())
}

/// A built ChannelShuffle layer.
pub struct ChannelShuffle {
    groups: usize,
    shape: Vec<usize>,
}

impl ChannelShuffle {
    /// Builds the layer for an input `[..., C]`.
    pub fn build(groups: usize, input: &[usize]) -> Result<ChannelShuffle> {
        Ok(ChannelShuffle {
            groups,
            shape: output_shape(groups, input)?,
        })
    }

    /// `dst = shuffle(src)` (`inverse`: the backward's un-shuffle) over
    /// every pixel's channel row.
    fn permute(&self, src: &Tensor, inverse: bool) -> Tensor {
        let c = *self.shape.last().expect("checked");
        let (g, k) = (self.groups, c / self.groups);
        let mut dst = Tensor::for_overwrite(&batched(src.batch(), &self.shape));
        dst.data_mut()
            .par_chunks_mut(c * 64)
            .zip(src.data().par_chunks(c * 64))
            .for_each(|(d, s)| {
                for (d, s) in d.chunks_exact_mut(c).zip(s.chunks_exact(c)) {
                    for gi in 0..g {
                        for j in 0..k {
                            let (shuffled, grouped) = (j * g + gi, gi * k + j);
                            if inverse {
                                d[grouped] = s[shuffled];
                            } else {
                                d[shuffled] = s[grouped];
                            }
                        }
                    }
                }
            });
        dst
    }
}

impl Layer for ChannelShuffle {
    fn input_shape(&self) -> &[usize] {
        &self.shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&mut self, x: Tensor, _mode: Mode, _rng: &mut Rng) -> Tensor {
        self.permute(&x, false)
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        self.permute(&dy, true)
    }
}

/// ChannelShuffle's kind: its one setting.
#[derive(Deserialize, RefCast)]
#[serde(deny_unknown_fields)]
#[repr(transparent)]
pub struct ChannelShuffleSpec {
    /// Number of channel groups interleaved.
    pub groups: usize,
}

impl LayerKind for ChannelShuffleSpec {
    fn name(&self) -> &'static str {
        "ChannelShuffle"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        output_shape(self.groups, input)
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| ChannelShuffle::build(self.groups, x))
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
    fn groups_interleave_as_pytorch_s_view_transpose_view() {
        // C = 6, G = 2: groups [0 1 2] [3 4 5] -> 0 3 1 4 2 5; G = 3: 0 2 4 1 3 5.
        let x = Tensor::from_vec(&[1, 2, 6], (0..12).map(|v| v as f32).collect()).unwrap();
        let mut rng = Rng::seed_from_u64(0);
        let mut two = ChannelShuffle::build(2, &[2, 6]).unwrap();
        let y = two.forward(x.clone(), Mode::Train, &mut rng);
        assert_eq!(y.data()[..6], [0., 3., 1., 4., 2., 5.]);
        assert_eq!(y.data()[6..], [6., 9., 7., 10., 8., 11.]);
        assert_eq!(two.backward(y).data(), x.data());
        let mut three = ChannelShuffle::build(3, &[2, 6]).unwrap();
        let y = three.forward(x.clone(), Mode::Eval, &mut rng);
        assert_eq!(y.data()[..6], [0., 2., 4., 1., 3., 5.]);
        let e = output_shape(4, &[3, 3, 6]).unwrap_err().to_string();
        assert!(e.contains("divide the 6 channels"), "{e}");
    }
}
