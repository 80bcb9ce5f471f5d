//! The merges of graph models: `Add` (residual shortcuts) and `Concatenate`
//! (inception branches), and the `Layer` methods they use to take several inputs.
//!
//! ```text
//! Add:          x_1, ..., x_k  [N, ...S]           -> y = x_1 + ... + x_k   [N, ...S]
//!               dx_i = dy for every i
//! Concatenate:  x_i [N, ..., C_i] (equal but last) -> y [N, ..., C_1 + ... + C_k]
//!               on the last (channel) axis; dx_i = dy[..., offset_i .. offset_i + C_i]
//! ```

use crate::error::config_err;
use crate::kind::{LayerKind, Role};
use crate::layer::{Layer, Mode};
use crate::{Result, Rng};
use convnet_tensor::Tensor;
use rayon::prelude::*;

/// Rows of the last axis copied per parallel task.
const ROWS_PER_TASK: usize = 1 << 10;

/// Checks that a merge has at least two inputs.
fn at_least_two(kind: &str, inputs: &[&[usize]]) -> Result<()> {
    if inputs.len() < 2 {
        return Err(config_err(
            kind,
            format!("takes at least 2 inputs, found {}", inputs.len()),
        ));
    }
    Ok(())
}

/// Output shape of `Add`: every input has the same shape.
pub fn add_output_shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    at_least_two("Add", inputs)?;
    if let Some(other) = inputs.iter().find(|s| **s != inputs[0]) {
        return Err(config_err(
            "Add",
            format!(
                "inputs must have the same shape, found {:?} and {other:?}",
                inputs[0]
            ),
        ));
    }
    Ok(inputs[0].to_vec())
}

/// Output shape of `Concatenate` on the last axis: every other axis agrees.
pub fn concat_output_shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    at_least_two("Concatenate", inputs)?;
    let first = inputs[0];
    if first.is_empty() {
        return Err(config_err("Concatenate", "needs a non-empty input shape"));
    }
    let lead = &first[..first.len() - 1];
    let mut total = 0usize;
    for s in inputs {
        if s.len() != first.len() || s[..s.len() - 1] != *lead {
            return Err(config_err(
                "Concatenate",
                format!(
                    "inputs must agree on every axis but the last (channels), found {first:?} and {s:?}"
                ),
            ));
        }
        total = total
            .checked_add(s[s.len() - 1])
            .ok_or_else(|| config_err("Concatenate", "too many channels"))?;
    }
    let mut out = lead.to_vec();
    out.push(total);
    Ok(out)
}

/// A built `Add` layer.
pub struct Add {
    shape: Vec<usize>,
    inputs: usize,
}

impl Add {
    /// Builds the layer for its input shapes.
    pub fn build(inputs: &[&[usize]]) -> Result<Add> {
        Ok(Add {
            shape: add_output_shape(inputs)?,
            inputs: inputs.len(),
        })
    }
}

impl Layer for Add {
    fn input_shape(&self) -> &[usize] {
        &self.shape
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
    fn forward_inputs(&mut self, xs: Vec<Tensor>, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let mut xs = xs.into_iter();
        let mut y = xs.next().expect("Add has inputs");
        for x in xs {
            // Summed in input order, whatever the thread count.
            y.data_mut()
                .par_chunks_mut(1 << 14)
                .zip(x.data().par_chunks(1 << 14))
                .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
        }
        y
    }
    fn backward_inputs(&mut self, dy: Tensor) -> Vec<Tensor> {
        let mut out: Vec<Tensor> = (1..self.inputs).map(|_| dy.clone()).collect();
        out.push(dy);
        out
    }
}

/// A built `Concatenate` layer (last axis).
pub struct Concatenate {
    input_shapes: Vec<Vec<usize>>,
    output_shape: Vec<usize>,
}

impl Concatenate {
    /// Builds the layer for its input shapes.
    pub fn build(inputs: &[&[usize]]) -> Result<Concatenate> {
        Ok(Concatenate {
            output_shape: concat_output_shape(inputs)?,
            input_shapes: inputs.iter().map(|s| s.to_vec()).collect(),
        })
    }

    /// Channels (last-axis length) of each input.
    fn widths(&self) -> Vec<usize> {
        self.input_shapes
            .iter()
            .map(|s| *s.last().expect("non-empty"))
            .collect()
    }
}

impl Layer for Concatenate {
    fn input_shape(&self) -> &[usize] {
        &self.input_shapes[0]
    }
    fn output_shape(&self) -> &[usize] {
        &self.output_shape
    }
    fn forward(&mut self, x: Tensor, mode: Mode, rng: &mut Rng) -> Tensor {
        self.forward_inputs(vec![x], mode, rng)
    }
    fn backward(&mut self, dy: Tensor) -> Tensor {
        dy
    }
    fn forward_inputs(&mut self, xs: Vec<Tensor>, _mode: Mode, _rng: &mut Rng) -> Tensor {
        let widths = self.widths();
        let total: usize = widths.iter().sum();
        let rows = xs[0].len() / widths[0];
        let mut shape = vec![xs[0].batch()];
        shape.extend_from_slice(&self.output_shape);
        let mut y = Tensor::for_overwrite(&shape);
        // Every output row [.., offset_i .. offset_i + C_i] is x_i's row.
        y.data_mut()
            .par_chunks_mut(total * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(t, chunk)| {
                let r0 = t * ROWS_PER_TASK;
                for (r, row) in chunk.chunks_mut(total).enumerate() {
                    let mut off = 0;
                    for (x, &c) in xs.iter().zip(&widths) {
                        row[off..off + c]
                            .copy_from_slice(&x.data()[(r0 + r) * c..(r0 + r + 1) * c]);
                        off += c;
                    }
                }
            });
        debug_assert_eq!(y.len(), rows * total);
        y
    }
    fn backward_inputs(&mut self, dy: Tensor) -> Vec<Tensor> {
        let widths = self.widths();
        let total: usize = widths.iter().sum();
        let n = dy.batch();
        let mut off = 0;
        let mut out = Vec::with_capacity(widths.len());
        for (s, &c) in self.input_shapes.iter().zip(&widths) {
            let mut shape = vec![n];
            shape.extend_from_slice(s);
            let mut dx = Tensor::for_overwrite(&shape);
            dx.data_mut()
                .par_chunks_mut(c * ROWS_PER_TASK)
                .zip(dy.data().par_chunks(total * ROWS_PER_TASK))
                .for_each(|(d, g)| {
                    for (d, g) in d.chunks_mut(c).zip(g.chunks(total)) {
                        d.copy_from_slice(&g[off..off + c]);
                    }
                });
            off += c;
            out.push(dx);
        }
        out
    }
}

/// The kinds of the two merges (no settings): `$kind`, named `$name` in
/// files, shape rule `$shape`, built as `$layer`; `$sums` for a sum.
macro_rules! merge_kind {
    ($(#[$m:meta])* $kind:ident, $name:literal, $shape:ident, $layer:ident, $maps:expr, $sums:literal) => {
        $(#[$m])*
        pub struct $kind;

        impl LayerKind for $kind {
            fn name(&self) -> &'static str {
                $name
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                $shape(&[input])
            }
            fn output_shape_of(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
                $shape(inputs)
            }
            fn build(&self, inputs: &[&[usize]], _rng: &mut Rng) -> Result<Box<dyn Layer>> {
                Ok(Box::new($layer::build(inputs)?))
            }
            fn role(&self) -> Role {
                Role::Merge
            }
            fn sums_inputs(&self) -> bool {
                $sums
            }
            fn explain_maps(&self) -> Option<(&'static str, &'static str)> {
                Some($maps)
            }
            fn settings_error(_fields: &serde_json::Value) -> Option<String> {
                None
            }
        }
    };
}

merge_kind!(
    /// Add's kind.
    AddSpec,
    "Add",
    add_output_shape,
    Add,
    ("add_maps", "sum of the branches"),
    true
);
merge_kind!(
    /// Concatenate's kind.
    ConcatenateSpec,
    "Concatenate",
    concat_output_shape,
    Concatenate,
    ("concat_maps", "branches side by side"),
    false
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn concatenate_interleaves_channels_and_splits_them_back() {
        let mut rng = Rng::seed_from_u64(0);
        let mut c = Concatenate::build(&[&[1, 2, 1], &[1, 2, 2]]).unwrap();
        let a = Tensor::from_vec(&[1, 1, 2, 1], vec![1.0, 2.0]).unwrap();
        let b = Tensor::from_vec(&[1, 1, 2, 2], vec![10.0, 11.0, 20.0, 21.0]).unwrap();
        let y = c.forward_inputs(vec![a, b], Mode::Train, &mut rng);
        assert_eq!(y.shape(), [1, 1, 2, 3]);
        assert_eq!(y.data(), [1.0, 10.0, 11.0, 2.0, 20.0, 21.0]);
        let d = c.backward_inputs(y);
        assert_eq!(d[0].data(), [1.0, 2.0]);
        assert_eq!(d[1].data(), [10.0, 11.0, 20.0, 21.0]);
        assert!(concat_output_shape(&[&[2, 2, 1], &[2, 3, 1]]).is_err());
        assert!(add_output_shape(&[&[2, 2, 1], &[2, 2, 2]]).is_err());
    }
}
