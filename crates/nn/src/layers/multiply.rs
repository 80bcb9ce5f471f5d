//! `Multiply` (Keras's merge): the elementwise product of two or more
//! inputs, where an input may also be a per-channel vector that scales every
//! pixel (squeeze-and-excitation's gate, Keras's `multiply([x, se])` after a
//! `Reshape((1, 1, C))`).
//!
//! ```text
//! x_i  [N, ...S] or [N, C] / [N, 1, ..., 1, C] with C = S's last axis
//! y    [N, ...S]            y = x_1 * ... * x_k (a vector repeated over S's leading axes)
//! dx_i = dy * prod_{j != i} x_j, summed over the pixels a vector input was repeated on
//! ```
//! The products run in input order and the pixel sums in pixel order, one
//! sample per task, so the results do not depend on the thread count.

use crate::error::config_err;
use crate::kind::{LayerKind, Role};
use crate::layer::{Layer, Mode};
use crate::{Result, Rng};
use convnet_tensor::Tensor;
use rayon::prelude::*;

/// How an input lines up with the output: its values per sample (the whole
/// output's, or `C` for a vector repeated over the pixels).
fn per_sample(input: &[usize]) -> usize {
    input.iter().product()
}

/// Output shape of `Multiply`: the largest input's; every other input has
/// that shape or is a vector of its channels (`[C]`, or `[1, ..., 1, C]`).
pub fn multiply_output_shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    if inputs.len() < 2 {
        return Err(config_err(
            "Multiply",
            format!("takes at least 2 inputs, found {}", inputs.len()),
        ));
    }
    let out = *inputs
        .iter()
        .max_by_key(|s| per_sample(s))
        .expect("at least two");
    let c = *out.last().unwrap_or(&0);
    for s in inputs {
        let vector = s.last() == Some(&c) && s[..s.len() - 1].iter().all(|&d| d == 1);
        if *s != out && !vector {
            return Err(config_err(
                "Multiply",
                format!(
                    "every input must have the shape {out:?} or be a vector of its {c} channels ([{c}] or [1, 1, {c}]), found {s:?}"
                ),
            ));
        }
    }
    Ok(out.to_vec())
}

/// A built `Multiply` layer.
pub struct Multiply {
    input_shapes: Vec<Vec<usize>>,
    shape: Vec<usize>,
    /// The inputs of the last training forward, for backward.
    saved: Vec<Tensor>,
}

impl Multiply {
    /// Builds the layer for its input shapes.
    pub fn build(inputs: &[&[usize]]) -> Result<Multiply> {
        Ok(Multiply {
            shape: multiply_output_shape(inputs)?,
            input_shapes: inputs.iter().map(|s| s.to_vec()).collect(),
            saved: Vec::new(),
        })
    }

    /// Values per sample of the output, and of input `i`.
    fn sizes(&self, i: usize) -> (usize, usize) {
        (per_sample(&self.shape), per_sample(&self.input_shapes[i]))
    }
}

/// `out[k] *= x[k % len]` over one sample (`len` = the sample's length for
/// a full input, `C` for a vector).
fn scale(out: &mut [f32], x: &[f32]) {
    for row in out.chunks_exact_mut(x.len()) {
        row.iter_mut().zip(x).for_each(|(o, v)| *o *= v);
    }
}

impl Layer for Multiply {
    fn input_shape(&self) -> &[usize] {
        &self.input_shapes[0]
    }
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn forward(&mut self, x: Tensor, mode: Mode, rng: &mut Rng) -> Tensor {
        self.forward_inputs(vec![x], mode, rng)
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        dy
    }
    fn forward_inputs(&mut self, xs: Vec<Tensor>, mode: Mode, _rng: &mut Rng) -> Tensor {
        let n = xs[0].batch();
        let out_len = per_sample(&self.shape);
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        let mut y = Tensor::for_overwrite(&shape);
        y.data_mut()
            .par_chunks_mut(out_len.max(1))
            .enumerate()
            .for_each(|(b, ys)| {
                ys.fill(1.0);
                for x in &xs {
                    let len = x.len() / n;
                    scale(ys, &x.data()[b * len..(b + 1) * len]);
                }
            });
        self.saved = if mode.keeps_state() { xs } else { Vec::new() };
        y
    }
    fn backward_inputs(&mut self, dy: Tensor) -> Vec<Tensor> {
        assert!(
            !self.saved.is_empty(),
            "Multiply backward before a training forward"
        );
        let n = dy.batch();
        let xs = std::mem::take(&mut self.saved);
        (0..xs.len())
            .map(|i| {
                let (out_len, len) = self.sizes(i);
                let mut dx = Tensor::zeros(xs[i].shape());
                dx.data_mut()
                    .par_chunks_mut(len.max(1))
                    .enumerate()
                    // One scratch sample per thread, not per sample.
                    .for_each_init(Vec::new, |g, (b, d)| {
                        // dy * the other inputs, then summed onto this input's shape.
                        g.clear();
                        g.extend_from_slice(&dy.data()[b * out_len..(b + 1) * out_len]);
                        for (j, x) in xs.iter().enumerate().filter(|(j, _)| *j != i) {
                            let l = self.sizes(j).1;
                            scale(g, &x.data()[b * l..(b + 1) * l]);
                        }
                        for row in g.chunks_exact(len) {
                            d.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                        }
                    });
                debug_assert_eq!(dx.batch(), n);
                dx
            })
            .collect()
    }
}

/// Multiply's kind (no settings).
pub struct MultiplySpec;

impl LayerKind for MultiplySpec {
    fn name(&self) -> &'static str {
        "Multiply"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        multiply_output_shape(&[input])
    }
    fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        multiply_output_shape(inputs)
    }
    fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Multiply::build(inputs)?))
    }
    fn role(&self) -> Role {
        Role::Merge
    }
    fn settings_error(_fields: &serde_json::Value) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_channel_vector_scales_every_pixel_and_sums_its_gradient_over_them() {
        let mut rng = Rng::seed_from_u64(0);
        let mut m = Multiply::build(&[&[1, 2, 2], &[2]]).unwrap();
        let x = Tensor::from_vec(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let s = Tensor::from_vec(&[1, 2], vec![10.0, 0.5]).unwrap();
        let y = m.forward_inputs(vec![x, s], Mode::Train, &mut rng);
        assert_eq!(y.data(), [10.0, 1.0, 30.0, 2.0]);
        let d = m.backward_inputs(Tensor::from_vec(&[1, 1, 2, 2], vec![1.0; 4]).unwrap());
        assert_eq!(d[0].data(), [10.0, 0.5, 10.0, 0.5]);
        // ds_c = sum over pixels of dy * x: 1 + 3 and 2 + 4.
        assert_eq!(d[1].data(), [4.0, 6.0]);
        assert_eq!(
            multiply_output_shape(&[&[1, 1, 2], &[4, 4, 2]]).unwrap(),
            [4, 4, 2]
        );
        let e = multiply_output_shape(&[&[4, 4, 2], &[3]]).unwrap_err();
        assert!(e.to_string().contains("a vector of its 2 channels"), "{e}");
        assert!(multiply_output_shape(&[&[4, 4, 2]]).is_err());
    }
}
