//! The `Tensor` type: a shape and a contiguous row-major `Vec<f32>`.

use crate::TensorError;

/// A dense, row-major `f32` tensor.
///
/// Image batches are `[N, H, W, C]` (NHWC); flat batches are `[N, F]`.
/// The first axis is always the batch axis when a tensor flows through a
/// model.
#[derive(Debug, PartialEq, Default)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// A copy, into a recycled buffer when one of the length is free.
impl Clone for Tensor {
    fn clone(&self) -> Self {
        let data = match crate::recycle::take(self.data.len()) {
            Some(mut buf) => {
                buf.copy_from_slice(&self.data);
                buf
            }
            None => self.data.clone(),
        };
        Tensor {
            shape: self.shape.clone(),
            data,
        }
    }
}

/// Large buffers go to the free list of [`crate::recycle`] for the next
/// step's tensors of the same size.
impl Drop for Tensor {
    fn drop(&mut self) {
        crate::recycle::give(std::mem::take(&mut self.data));
    }
}

impl Tensor {
    /// A tensor of zeros. Large tensors reuse a recycled buffer when one of
    /// the same length is free (see [`crate::recycle`]) and are zeroed by all
    /// threads.
    pub fn zeros(shape: &[usize]) -> Self {
        let n: usize = shape.iter().product();
        let data = if let Some(mut v) = crate::recycle::take(n) {
            use rayon::prelude::*;
            v.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
            v
        } else if n >= 1 << 17 {
            use rayon::prelude::*;
            let mut v = Vec::with_capacity(n);
            v.par_extend(rayon::iter::repeat_n(0.0f32, n));
            v
        } else {
            vec![0.0; n]
        };
        Tensor {
            shape: shape.to_vec(),
            data,
        }
    }

    /// A tensor whose every value the caller is about to overwrite (a
    /// kernel's output): a recycled buffer of the same length with its stale
    /// values when one is free (see [`crate::recycle`]), else zeros. Never
    /// read it before writing it.
    pub fn for_overwrite(shape: &[usize]) -> Self {
        let n: usize = shape.iter().product();
        Tensor {
            shape: shape.to_vec(),
            data: crate::recycle::take(n).unwrap_or_else(|| vec![0.0; n]),
        }
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![value; shape.iter().product()],
        }
    }

    /// Wraps `data` with `shape`, checking that the lengths agree.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self, TensorError> {
        let expected: usize = shape.iter().product();
        if expected != data.len() {
            return Err(TensorError::DataLength {
                op: "Tensor::from_vec",
                shape: shape.to_vec(),
                expected,
                found: data.len(),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the tensor and returns its values.
    pub fn into_vec(mut self) -> Vec<f32> {
        std::mem::take(&mut self.data)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of the first (batch) axis; 0 for a scalar.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Number of values per sample (product of all axes but the first).
    pub fn sample_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The same values under another shape with the same number of values.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self, TensorError> {
        let expected: usize = shape.iter().product();
        if expected != self.data.len() {
            return Err(TensorError::DataLength {
                op: "Tensor::reshape",
                shape: shape.to_vec(),
                expected,
                found: self.data.len(),
            });
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// Samples `start..end` of the batch axis, copied.
    pub fn slice_batch(&self, start: usize, end: usize) -> Tensor {
        let per = self.sample_len();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Tensor {
            shape,
            data: self.data[start * per..end * per].to_vec(),
        }
    }

    /// Gathers the given samples of the batch axis, in order.
    pub fn gather_batch(&self, indices: &[usize]) -> Tensor {
        let per = self.sample_len();
        let mut data = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            data.extend_from_slice(&self.data[i * per..(i + 1) * per]);
        }
        let mut shape = self.shape.clone();
        shape[0] = indices.len();
        Tensor { shape, data }
    }

    /// Index of the largest value of each row of a `[N, K]` tensor.
    pub fn argmax_rows(&self) -> Vec<usize> {
        let k = self.sample_len().max(1);
        self.data
            .chunks(k)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }

    /// Converts an NCHW buffer (PyTorch's layout) into an NHWC tensor.
    pub fn from_nchw(n: usize, c: usize, h: usize, w: usize, data: &[f32]) -> Tensor {
        let mut out = vec![0.0; n * c * h * w];
        for b in 0..n {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        out[((b * h + y) * w + x) * c + ch] = data[((b * c + ch) * h + y) * w + x];
                    }
                }
            }
        }
        Tensor {
            shape: vec![n, h, w, c],
            data: out,
        }
    }

    /// Copies `src` into this tensor's buffer (same length), in parallel
    /// blocks; used to keep activations for the backward pass without
    /// allocating a new buffer every step.
    pub fn copy_from_par(&mut self, src: &Tensor) {
        use rayon::prelude::*;
        assert_eq!(
            self.data.len(),
            src.data.len(),
            "copy_from_par: lengths differ"
        );
        self.shape = src.shape.clone();
        self.data
            .par_chunks_mut(1 << 16)
            .zip(src.data.par_chunks(1 << 16))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }

    /// Largest absolute difference to another tensor of the same length.
    pub fn max_abs_diff(&self, other: &Tensor) -> f32 {
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_checks_length() {
        let err = Tensor::from_vec(&[2, 3], vec![0.0; 5]).unwrap_err();
        assert!(err.to_string().contains("needs 6 values, found 5"), "{err}");
    }

    #[test]
    fn nchw_to_nhwc_moves_channels_last() {
        // One image, 2 channels, 1x2 pixels: NCHW [c0p0, c0p1, c1p0, c1p1].
        let t = Tensor::from_nchw(1, 2, 1, 2, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(t.shape(), &[1, 1, 2, 2]);
        assert_eq!(t.data(), &[1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn gather_and_argmax() {
        let t = Tensor::from_vec(&[3, 2], vec![0.0, 1.0, 5.0, 2.0, 3.0, 3.5]).unwrap();
        assert_eq!(t.argmax_rows(), vec![1, 0, 1]);
        let g = t.gather_batch(&[2, 0]);
        assert_eq!(g.data(), &[3.0, 3.5, 0.0, 1.0]);
        assert_eq!(t.slice_batch(1, 2).data(), &[5.0, 2.0]);
    }
}
