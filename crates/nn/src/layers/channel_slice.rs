//! ChannelSlice: a contiguous range of channels (`x[..., a:b]`), one part
//! of PyTorch's `x.chunk(2, dim=1)` / ONNX's `Split` and `Slice` on axis 1.
//!
//! ```text
//! x  [N, ...S, C] -> y [N, ...S, b - a],   y[..., j] = x[..., a + j]   (0 <= a < b <= C)
//! dx [N, ...S, C]:  dx[..., a + j] = dy[..., j], 0 on the other channels
//! ```
//! A split into k parts is k of these reading one input (the graph sums
//! their gradients). Not a Keras class: Keras writes it as a `Lambda`.

use crate::error::config_err;
use crate::kind::{settings_error_of, single, LayerKind};
use crate::layer::{batched, Layer, Mode};
use crate::{Result, Rng};
use convnet_tensor::Tensor;
use rayon::prelude::*;
use ref_cast::RefCast;
use serde::Deserialize;

/// Output shape for channels `[a, b)` of `input`.
pub fn output_shape(channels: [usize; 2], input: &[usize]) -> Result<Vec<usize>> {
    let [a, b] = channels;
    let c = *input
        .last()
        .ok_or_else(|| config_err("ChannelSlice", "needs a non-empty input shape"))?;
    if a >= b || b > c {
        return Err(config_err(
            "ChannelSlice",
            format!("channels [{a}, {b}) must be a non-empty range within the input's {c}"),
        ));
    }
    let mut out = input.to_vec();
    *out.last_mut().expect("non-empty") = b - a;
    Ok(out)
}

/// A built ChannelSlice layer.
pub struct ChannelSlice {
    channels: [usize; 2],
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
}

impl ChannelSlice {
    /// Builds the layer for an input `[..., C]`.
    pub fn build(channels: [usize; 2], input: &[usize]) -> Result<ChannelSlice> {
        Ok(ChannelSlice {
            channels,
            output_shape: output_shape(channels, input)?,
            input_shape: input.to_vec(),
        })
    }

    /// Rows of the input's and the output's channels.
    fn widths(&self) -> (usize, usize) {
        let c = *self.input_shape.last().expect("checked");
        (c, self.channels[1] - self.channels[0])
    }
}

impl Layer for ChannelSlice {
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    fn forward(&mut self, x: Tensor, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let ((c, k), a) = (self.widths(), self.channels[0]);
        let mut y = Tensor::for_overwrite(&batched(x.batch(), &self.output_shape));
        y.data_mut()
            .par_chunks_mut(k * 64)
            .zip(x.data().par_chunks(c * 64))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_exact_mut(k).zip(x.chunks_exact(c)) {
                    y.copy_from_slice(&x[a..a + k]);
                }
            });
        y
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        let ((c, k), a) = (self.widths(), self.channels[0]);
        let mut dx = Tensor::zeros(&batched(dy.batch(), &self.input_shape));
        dx.data_mut()
            .par_chunks_mut(c * 64)
            .zip(dy.data().par_chunks(k * 64))
            .for_each(|(dx, dy)| {
                for (dx, dy) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(k)) {
                    dx[a..a + k].copy_from_slice(dy);
                }
            });
        dx
    }
}

/// ChannelSlice's kind: its one setting.
#[derive(Deserialize, RefCast)]
#[serde(deny_unknown_fields)]
#[repr(transparent)]
pub struct ChannelSliceSpec {
    /// `[start, end)`: the channels kept.
    pub channels: [usize; 2],
}

impl LayerKind for ChannelSliceSpec {
    fn name(&self) -> &'static str {
        "ChannelSlice"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        output_shape(self.channels, input)
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| ChannelSlice::build(self.channels, x))
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
    fn keeps_its_channels_and_hands_the_gradient_back_to_them() {
        let x = Tensor::from_vec(&[1, 2, 4], (0..8).map(|v| v as f32).collect()).unwrap();
        let mut s = ChannelSlice::build([1, 3], &[2, 4]).unwrap();
        let y = s.forward(x, Mode::Train, &mut Rng::seed_from_u64(0));
        assert_eq!(y.shape(), [1, 2, 2]);
        assert_eq!(y.data(), [1., 2., 5., 6.]);
        let dx = s.backward(Tensor::from_vec(&[1, 2, 2], vec![1., 2., 3., 4.]).unwrap());
        assert_eq!(dx.data(), [0., 1., 2., 0., 0., 3., 4., 0.]);
        for bad in [[2, 2], [3, 1], [0, 5]] {
            let e = output_shape(bad, &[2, 4]).unwrap_err().to_string();
            assert!(e.contains("non-empty range within the input's 4"), "{e}");
        }
    }
}
