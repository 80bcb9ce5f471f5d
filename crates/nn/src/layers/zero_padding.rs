//! ZeroPadding2D: zero rows and columns around every image.
//!
//! ```text
//! x [N, H, W, C] -> y [N, T + H + B, L + W + R, C],  y[n, T + i, L + j, c] = x[n, i, j, c], else 0
//! dx[n, i, j, c] = dy[n, T + i, L + j, c]
//! ```

use crate::kind::{settings_error_of, single, LayerKind};
use crate::layer::{batched, Layer, Mode};
use crate::layers::pooling::image_shape;
use crate::{Result, Rng};
use convnet_tensor::Tensor;
use rayon::prelude::*;
use ref_cast::RefCast;
use serde::Deserialize;

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
    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    fn forward(&mut self, x: Tensor, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let mut y = Tensor::zeros(&batched(x.batch(), &self.output_shape));
        self.copy_rows(y.data_mut(), x.data(), true);
        y
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        let mut dx = Tensor::for_overwrite(&batched(dy.batch(), &self.input_shape));
        self.copy_rows(dx.data_mut(), dy.data(), false);
        dx
    }
}

impl ZeroPadding2d {
    /// Copies every input row to its place in the padded image (`pad`), or
    /// back from it: the forward writes `y`'s interior, the backward reads it.
    fn copy_rows(&self, dst: &mut [f32], src: &[f32], pad: bool) {
        let [h, w, c] = [
            self.input_shape[0],
            self.input_shape[1],
            self.input_shape[2],
        ];
        let [oh, ow] = [self.output_shape[0], self.output_shape[1]];
        let [[top, _], [left, _]] = self.padding;
        let (inner, outer) = (h * w * c, oh * ow * c);
        let (dst_img, src_img) = if pad { (outer, inner) } else { (inner, outer) };
        dst.par_chunks_mut(dst_img)
            .zip(src.par_chunks(src_img))
            .for_each(|(d, s)| {
                for i in 0..h {
                    let padded = ((top + i) * ow + left) * c;
                    let plain = i * w * c;
                    if pad {
                        d[padded..padded + w * c].copy_from_slice(&s[plain..plain + w * c]);
                    } else {
                        d[plain..plain + w * c].copy_from_slice(&s[padded..padded + w * c]);
                    }
                }
            });
    }
}

/// ZeroPadding2D's kind: its one setting.
#[derive(Deserialize, RefCast)]
#[serde(deny_unknown_fields)]
#[repr(transparent)]
pub struct ZeroPaddingSpec {
    /// `[[top, bottom], [left, right]]`.
    pub padding: [[usize; 2]; 2],
}

impl LayerKind for ZeroPaddingSpec {
    fn name(&self) -> &'static str {
        "ZeroPadding2D"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        output_shape(self.padding, input)
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        single(self, inputs, |x| ZeroPadding2d::build(self.padding, x))
    }
    fn offset(&self) -> Option<[usize; 2]> {
        Some([self.padding[0][0], self.padding[1][0]])
    }
    fn settings_error(fields: &serde_json::Value) -> Option<String> {
        settings_error_of::<Self>(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Different padding on every side: each value lands where Keras puts
    /// it (`((top, bottom), (left, right))`), and the backward reads it back.
    #[test]
    fn each_side_gets_its_own_padding() {
        // 2x3 image, top 1, bottom 0, left 0, right 2 -> 3x5.
        let mut layer = ZeroPadding2d::build([[1, 0], [0, 2]], &[2, 3, 1]).unwrap();
        assert_eq!(layer.output_shape(), &[3, 5, 1]);
        let x = Tensor::from_vec(&[1, 2, 3, 1], vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let y = layer.forward(x, Mode::Eval, &mut Rng::seed_from_u64(0));
        #[rustfmt::skip]
        let want = vec![
            0., 0., 0., 0., 0.,
            1., 2., 3., 0., 0.,
            4., 5., 6., 0., 0.,
        ];
        assert_eq!(y.data(), &want[..]);
        let dy = Tensor::from_vec(&[1, 3, 5, 1], (0..15).map(|v| v as f32).collect()).unwrap();
        let dx = layer.backward(dy);
        assert_eq!(dx.data(), &[5., 6., 7., 10., 11., 12.]);
    }
}
