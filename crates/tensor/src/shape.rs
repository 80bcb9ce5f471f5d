//! Shape arithmetic for convolution and pooling, in one place.
//!
//! Along one spatial axis of size `N`, a window of size `M` with dilation `D`
//! covers `M_eff = (M - 1) * D + 1` pixels. With stride `S` and padding
//! `P_before + P_after` the output size is
//!
//! ```text
//! out = floor((N + P_before + P_after - M_eff) / S) + 1
//! ```
//!
//! which is the textbook `floor((N + 2P - M) / S) + 1` when the padding is
//! symmetric. Keras/TensorFlow's two padding modes fix `P`:
//!
//! * `valid`: no padding, so `out = floor((N - M_eff) / S) + 1`.
//! * `same`: `out = ceil(N / S)`, and the total padding
//!   `max((out - 1) * S + M_eff - N, 0)` is split with the odd pixel at the
//!   bottom/right: `P_before = total / 2`, `P_after = total - P_before`.

use crate::TensorError;
use serde::{Deserialize, Serialize};

/// Padding mode of a convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// No padding; windows stay inside the input.
    #[default]
    Valid,
    /// Zero padding so that `out = ceil(N / S)`, odd pixel bottom/right.
    Same,
}

/// The geometry of one spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisGeometry {
    /// Output size.
    pub out: usize,
    /// Padding before the first input pixel (top or left).
    pub pad_before: usize,
    /// Padding after the last input pixel (bottom or right).
    pub pad_after: usize,
}

/// Computes output size and padding along one axis (see the module docs).
///
/// `n` input size, `m` window size, `s` stride, `d` dilation.
pub fn axis_geometry(
    n: usize,
    m: usize,
    s: usize,
    d: usize,
    padding: Padding,
) -> Result<AxisGeometry, TensorError> {
    if m == 0 || s == 0 || d == 0 {
        return Err(TensorError::Shape {
            op: "axis_geometry",
            msg: format!("window {m}, stride {s} and dilation {d} must all be at least 1"),
        });
    }
    let too_big = || TensorError::Shape {
        op: "axis_geometry",
        msg: format!("window {m} with dilation {d} and stride {s} over {n} pixels is too large"),
    };
    let m_eff = (m - 1)
        .checked_mul(d)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(too_big)?;
    match padding {
        Padding::Valid => {
            if n < m_eff {
                return Err(TensorError::Shape {
                    op: "axis_geometry",
                    msg: format!(
                        "input size {n} is smaller than the window {m_eff} \
                         (kernel {m}, dilation {d}) with 'valid' padding"
                    ),
                });
            }
            Ok(AxisGeometry {
                out: (n - m_eff) / s + 1,
                pad_before: 0,
                pad_after: 0,
            })
        }
        Padding::Same => {
            if n == 0 {
                return Err(TensorError::Shape {
                    op: "axis_geometry",
                    msg: "input size 0".into(),
                });
            }
            let out = n.div_ceil(s);
            let total = (out - 1)
                .checked_mul(s)
                .and_then(|v| v.checked_add(m_eff))
                .ok_or_else(too_big)?
                .saturating_sub(n);
            Ok(AxisGeometry {
                out,
                pad_before: total / 2,
                pad_after: total - total / 2,
            })
        }
    }
}

/// The product of `dims`, or an error naming `what` when it overflows.
pub fn checked_product(dims: &[usize], what: &'static str) -> Result<usize, TensorError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError::Shape {
            op: what,
            msg: format!("shape {dims:?} has more elements than fit in memory"),
        })
}

/// Validated geometry of a 2-D convolution over an NHWC batch.
///
/// `input [n, h, w, c] -> output [n, oh, ow, f]`, weights `[kh, kw, c, f]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub c: usize,
    /// Number of filters (output channels).
    pub f: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Zero rows added above the input.
    pub pad_top: usize,
    /// Zero columns added left of the input.
    pub pad_left: usize,
}

impl Conv2dGeometry {
    /// Validates and computes the geometry.
    ///
    /// `input` is `[n, h, w, c]`; `kernel`, `stride` and `dilation` are
    /// `(height, width)` pairs.
    pub fn new(
        input: [usize; 4],
        filters: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
    ) -> Result<Self, TensorError> {
        let [n, h, w, c] = input;
        if c == 0 || filters == 0 {
            return Err(TensorError::Shape {
                op: "Conv2dGeometry",
                msg: format!("channels ({c}) and filters ({filters}) must be at least 1"),
            });
        }
        let y = axis_geometry(h, kernel.0, stride.0, dilation.0, padding)?;
        let x = axis_geometry(w, kernel.1, stride.1, dilation.1, padding)?;
        // Every size the kernels compute must fit in a usize.
        checked_product(&[kernel.0, kernel.1, c, filters], "Conv2dGeometry")?;
        checked_product(&[n.max(1), y.out, x.out, filters.max(c)], "Conv2dGeometry")?;
        checked_product(
            &[n.max(1), y.out, x.out, kernel.0, kernel.1, c],
            "Conv2dGeometry",
        )?;
        checked_product(&[n.max(1), h, w, c], "Conv2dGeometry")?;
        Ok(Conv2dGeometry {
            n,
            h,
            w,
            c,
            f: filters,
            kh: kernel.0,
            kw: kernel.1,
            sh: stride.0,
            sw: stride.1,
            dh: dilation.0,
            dw: dilation.1,
            oh: y.out,
            ow: x.out,
            pad_top: y.pad_before,
            pad_left: x.pad_before,
        })
    }

    /// The same geometry for another batch size.
    pub fn with_batch(mut self, n: usize) -> Self {
        self.n = n;
        self
    }

    /// Length of one im2col row: `kh * kw * c`.
    pub fn patch_len(&self) -> usize {
        self.kh * self.kw * self.c
    }

    /// Values in the input batch.
    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Values in the output batch.
    pub fn output_len(&self) -> usize {
        self.n * self.oh * self.ow * self.f
    }

    /// Values in the weight tensor.
    pub fn weight_len(&self) -> usize {
        self.patch_len() * self.f
    }

    /// Multiply-adds of one forward pass over the batch.
    pub fn forward_macs(&self) -> usize {
        self.n * self.oh * self.ow * self.patch_len() * self.f
    }
}

/// Validated geometry of a 2-D pooling window over an NHWC batch.
///
/// `input [n, h, w, c] -> output [n, oh, ow, c]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Window height.
    pub ph: usize,
    /// Window width.
    pub pw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Padding rows above the input.
    pub pad_top: usize,
    /// Padding columns left of the input.
    pub pad_left: usize,
}

impl Pool2dGeometry {
    /// Validates and computes the geometry; `input` is `[n, h, w, c]`.
    pub fn new(
        input: [usize; 4],
        pool: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    ) -> Result<Self, TensorError> {
        let [n, h, w, c] = input;
        let y = axis_geometry(h, pool.0, stride.0, 1, padding)?;
        let x = axis_geometry(w, pool.1, stride.1, 1, padding)?;
        Ok(Pool2dGeometry {
            n,
            h,
            w,
            c,
            ph: pool.0,
            pw: pool.1,
            sh: stride.0,
            sw: stride.1,
            oh: y.out,
            ow: x.out,
            pad_top: y.pad_before,
            pad_left: x.pad_before,
        })
    }

    /// The same geometry for another batch size.
    pub fn with_batch(mut self, n: usize) -> Self {
        self.n = n;
        self
    }

    /// Values in the output batch.
    pub fn output_len(&self) -> usize {
        self.n * self.oh * self.ow * self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_matches_the_textbook_formula() {
        // 28 - 5 + 1 = 24; (28 - 5) / 2 + 1 = 12.
        assert_eq!(axis_geometry(28, 5, 1, 1, Padding::Valid).unwrap().out, 24);
        assert_eq!(axis_geometry(28, 5, 2, 1, Padding::Valid).unwrap().out, 12);
        // Dilation 2 makes a 3-tap kernel span 5 pixels.
        assert_eq!(axis_geometry(7, 3, 1, 2, Padding::Valid).unwrap().out, 3);
    }

    #[test]
    fn same_puts_the_odd_pixel_after() {
        // TensorFlow: n=6, k=2, s=1 -> total pad 1, placed after.
        let a = axis_geometry(6, 2, 1, 1, Padding::Same).unwrap();
        assert_eq!((a.out, a.pad_before, a.pad_after), (6, 0, 1));
        // n=28, k=5, s=2 -> out 14, total (13*2+5-28)=3 -> 1 before, 2 after.
        let a = axis_geometry(28, 5, 2, 1, Padding::Same).unwrap();
        assert_eq!((a.out, a.pad_before, a.pad_after), (14, 1, 2));
        // Stride larger than the window can need no padding at all.
        let a = axis_geometry(5, 1, 2, 1, Padding::Same).unwrap();
        assert_eq!((a.out, a.pad_before, a.pad_after), (3, 0, 0));
    }

    #[test]
    fn every_geometry_satisfies_the_general_formula() {
        for n in 1..20 {
            for m in 1..6 {
                for s in 1..4 {
                    for d in 1..3 {
                        for p in [Padding::Valid, Padding::Same] {
                            if let Ok(a) = axis_geometry(n, m, s, d, p) {
                                let m_eff = (m - 1) * d + 1;
                                let formula = (n + a.pad_before + a.pad_after - m_eff) / s + 1;
                                assert_eq!(a.out, formula, "n={n} m={m} s={s} d={d} {p:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn too_small_input_is_an_error() {
        let err = axis_geometry(3, 5, 1, 1, Padding::Valid).unwrap_err();
        assert!(err.to_string().contains("smaller than the window"), "{err}");
        assert!(axis_geometry(3, 0, 1, 1, Padding::Valid).is_err());
    }
}
