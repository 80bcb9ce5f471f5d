//! ZeroPadding2D: zero rows and columns around every image.
//!
//! ```text
//! x [N, H, W, C] -> y [N, T + H + B, L + W + R, C],  y[n, T + i, L + j, c] = x[n, i, j, c], else 0
//! dx[n, i, j, c] = dy[n, T + i, L + j, c]
//! ```

use crate::layer::{batched, Layer, Mode};
use crate::layers::pooling::image_shape;
use crate::{LayerSpec, Result, Rng};
use convnet_tensor::Tensor;
use rayon::prelude::*;

/// Output shape for padding `[[top, bottom], [left, right]]` (Keras's order).
pub fn output_shape(padding: [[usize; 2]; 2], input: &[usize]) -> Result<Vec<usize>> {
    let [h, w, c] = image_shape("ZeroPadding2D", input)?;
    let grow = |n: usize, p: [usize; 2]| n.checked_add(p[0]).and_then(|v| v.checked_add(p[1]));
    let (oh, ow) = grow(h, padding[0])
        .zip(grow(w, padding[1]))
        .ok_or_else(|| crate::error::config_err("ZeroPadding2D", "padding too large"))?;
    convnet_tensor::shape::checked_product(&[oh, ow, c], "ZeroPadding2D")?;
    Ok(vec![oh, ow, c])
}

/// A built ZeroPadding2D layer.
pub struct ZeroPadding2d {
    padding: [[usize; 2]; 2],
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
}

impl ZeroPadding2d {
    /// Builds the layer for an input `[H, W, C]`.
    pub fn build(padding: [[usize; 2]; 2], input: &[usize]) -> Result<ZeroPadding2d> {
        Ok(ZeroPadding2d {
            padding,
            output_shape: output_shape(padding, input)?,
            input_shape: input.to_vec(),
        })
    }
}

impl Layer for ZeroPadding2d {
    fn spec(&self) -> LayerSpec {
        LayerSpec::ZeroPadding2D {
            padding: self.padding,
        }
    }
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    fn forward(&mut self, x: Tensor, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let [h, w, c] = [
            self.input_shape[0],
            self.input_shape[1],
            self.input_shape[2],
        ];
        let [oh, ow] = [self.output_shape[0], self.output_shape[1]];
        let [[top, _], [left, _]] = self.padding;
        let mut y = Tensor::zeros(&batched(x.batch(), &self.output_shape));
        y.data_mut()
            .par_chunks_mut(oh * ow * c)
            .zip(x.data().par_chunks(h * w * c))
            .for_each(|(yb, xb)| {
                for i in 0..h {
                    let dst = ((top + i) * ow + left) * c;
                    yb[dst..dst + w * c].copy_from_slice(&xb[i * w * c..(i + 1) * w * c]);
                }
            });
        y
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        let [h, w, c] = [
            self.input_shape[0],
            self.input_shape[1],
            self.input_shape[2],
        ];
        let [oh, ow] = [self.output_shape[0], self.output_shape[1]];
        let [[top, _], [left, _]] = self.padding;
        let mut dx = Tensor::for_overwrite(&batched(dy.batch(), &self.input_shape));
        dx.data_mut()
            .par_chunks_mut(h * w * c)
            .zip(dy.data().par_chunks(oh * ow * c))
            .for_each(|(xb, yb)| {
                for i in 0..h {
                    let src = ((top + i) * ow + left) * c;
                    xb[i * w * c..(i + 1) * w * c].copy_from_slice(&yb[src..src + w * c]);
                }
            });
        dx
    }
}
