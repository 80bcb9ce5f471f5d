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
//!
//! PyTorch and ONNX give the padding explicitly instead (`padding=1`, ONNX
//! `pads`), possibly different on each side: [`Padding::Explicit`]. Their
//! pooling layers may also round up (`ceil_mode`):
//!
//! ```text
//! out = ceil((N + P_before + P_after - M_eff) / S) + 1,
//! minus one when the last window would start past the input and its leading padding
//! ```
//!
//! (windows that reach past the padded input are cut off).

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
    /// Explicit zero padding `[top, bottom, left, right]` (PyTorch's
    /// `padding=`, ONNX's `pads`).
    Explicit([usize; 4]),
}

impl Padding {
    /// PyTorch's `padding=p`: `p` on every side.
    pub fn symmetric(p: usize) -> Self {
        Padding::Explicit([p, p, p, p])
    }

    /// The padding of one spatial axis (0 = height, 1 = width).
    pub fn axis(self, axis: usize) -> AxisPadding {
        match self {
            Padding::Valid => AxisPadding::Explicit(0, 0),
            Padding::Same => AxisPadding::Same,
            Padding::Explicit(p) => AxisPadding::Explicit(p[2 * axis], p[2 * axis + 1]),
        }
    }
}

/// The padding of one axis: Keras's `same`, or explicit amounts before and
/// after (`valid` is `Explicit(0, 0)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisPadding {
    /// `out = ceil(N / S)`, odd pixel after.
    Same,
    /// `(before, after)`.
    Explicit(usize, usize),
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
/// `n` input size, `m` window size, `s` stride, `d` dilation; `ceil` rounds
/// the output size up as PyTorch's `ceil_mode` (ignored for `same`).
pub fn axis_geometry(
    n: usize,
    m: usize,
    s: usize,
    d: usize,
    padding: AxisPadding,
    ceil: bool,
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
        AxisPadding::Explicit(before, after) => {
            let padded = n
                .checked_add(before)
                .and_then(|v| v.checked_add(after))
                .ok_or_else(too_big)?;
            if padded < m_eff {
                return Err(TensorError::Shape {
                    op: "axis_geometry",
                    msg: if before + after == 0 {
                        format!(
                            "input size {n} is smaller than the window {m_eff} \
                             (kernel {m}, dilation {d}) with 'valid' padding"
                        )
                    } else {
                        format!(
                            "input size {n} padded by {before}+{after} is smaller than the \
                             window {m_eff} (kernel {m}, dilation {d})"
                        )
                    },
                });
            }
            if before >= m_eff || after >= m_eff {
                return Err(TensorError::Shape {
                    op: "axis_geometry",
                    msg: format!(
                        "padding {before}+{after} must be smaller than the window {m_eff} \
                         (a window would see only padding)"
                    ),
                });
            }
            let span = padded - m_eff;
            let mut out = if ceil { span.div_ceil(s) } else { span / s } + 1;
            // PyTorch: the last window must start inside the input or its
            // leading padding.
            if ceil && (out - 1) * s >= n + before {
                out -= 1;
            }
            Ok(AxisGeometry {
                out,
                pad_before: before,
                pad_after: after,
            })
        }
        AxisPadding::Same => {
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
        let y = axis_geometry(h, kernel.0, stride.0, dilation.0, padding.axis(0), false)?;
        let x = axis_geometry(w, kernel.1, stride.1, dilation.1, padding.axis(1), false)?;
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
    /// Validates and computes the geometry; `input` is `[n, h, w, c]`;
    /// `ceil` is PyTorch's `ceil_mode`.
    pub fn new(
        input: [usize; 4],
        pool: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
        ceil: bool,
    ) -> Result<Self, TensorError> {
        let [n, h, w, c] = input;
        let y = axis_geometry(h, pool.0, stride.0, 1, padding.axis(0), ceil)?;
        let x = axis_geometry(w, pool.1, stride.1, 1, padding.axis(1), ceil)?;
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

    const VALID: AxisPadding = AxisPadding::Explicit(0, 0);

    #[test]
    fn explicit_padding_and_ceil_mode_match_pytorch() {
        // Output sizes from torchvision's ResNet and GoogLeNet at 224x224
        // (their printed shapes), not from the formula under test.
        let g = |n, m, s, p, ceil| {
            axis_geometry(n, m, s, 1, AxisPadding::Explicit(p, p), ceil)
                .unwrap()
                .out
        };
        assert_eq!(g(224, 7, 2, 3, false), 112); // conv1 7x7/2, padding 3
        assert_eq!(g(112, 3, 2, 1, false), 56); // maxpool 3/2, padding 1
        assert_eq!(g(56, 3, 2, 1, false), 28); // layer2's 3x3/2 conv
        assert_eq!(g(56, 1, 2, 0, false), 28); // its 1x1/2 downsample
        assert_eq!(g(112, 3, 2, 0, true), 56); // GoogLeNet maxpool1 (ceil_mode)
        assert_eq!(g(56, 3, 2, 0, true), 28); // maxpool2
        assert_eq!(g(28, 3, 2, 0, true), 14); // maxpool3
        assert_eq!(g(14, 2, 2, 0, true), 7); // maxpool4
        assert_eq!(g(28, 3, 1, 1, true), 28); // the branch pools 3/1, padding 1
                                              // PyTorch's documentation example for ceil_mode: 5 -> 3 (k2 s2), and
                                              // the rule that drops a window starting in the trailing padding:
                                              // n=4, k=2, s=2, p=1: ceil(4/2)+1 = 3 windows.
        assert_eq!(g(5, 2, 2, 0, true), 3);
        assert_eq!(g(5, 2, 2, 0, false), 2);
        assert_eq!(g(4, 2, 2, 1, true), 3);
        assert_eq!(g(3, 2, 2, 1, true), 2);
        // Asymmetric padding is kept as given.
        let a = axis_geometry(6, 3, 2, 1, AxisPadding::Explicit(0, 1), false).unwrap();
        assert_eq!((a.out, a.pad_before, a.pad_after), (3, 0, 1));
        // A window of padding only is refused.
        assert!(axis_geometry(6, 3, 1, 1, AxisPadding::Explicit(3, 0), false).is_err());
        assert_eq!(
            Padding::Explicit([1, 2, 3, 4]).axis(1),
            AxisPadding::Explicit(3, 4)
        );
    }

    #[test]
    fn valid_matches_the_textbook_formula() {
        // 28 - 5 + 1 = 24; (28 - 5) / 2 + 1 = 12.
        assert_eq!(axis_geometry(28, 5, 1, 1, VALID, false).unwrap().out, 24);
        assert_eq!(axis_geometry(28, 5, 2, 1, VALID, false).unwrap().out, 12);
        // Dilation 2 makes a 3-tap kernel span 5 pixels.
        assert_eq!(axis_geometry(7, 3, 1, 2, VALID, false).unwrap().out, 3);
    }

    #[test]
    fn same_puts_the_odd_pixel_after() {
        // TensorFlow: n=6, k=2, s=1 -> total pad 1, placed after.
        let a = axis_geometry(6, 2, 1, 1, AxisPadding::Same, false).unwrap();
        assert_eq!((a.out, a.pad_before, a.pad_after), (6, 0, 1));
        // n=28, k=5, s=2 -> out 14, total (13*2+5-28)=3 -> 1 before, 2 after.
        let a = axis_geometry(28, 5, 2, 1, AxisPadding::Same, false).unwrap();
        assert_eq!((a.out, a.pad_before, a.pad_after), (14, 1, 2));
        // Stride larger than the window can need no padding at all.
        let a = axis_geometry(5, 1, 2, 1, AxisPadding::Same, false).unwrap();
        assert_eq!((a.out, a.pad_before, a.pad_after), (3, 0, 0));
    }

    #[test]
    fn every_geometry_satisfies_the_general_formula() {
        for n in 1..20 {
            for m in 1..6 {
                for s in 1..4 {
                    for d in 1..3 {
                        for p in [VALID, AxisPadding::Same, AxisPadding::Explicit(1, 1)] {
                            if let Ok(a) = axis_geometry(n, m, s, d, p, false) {
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

    /// Output sizes against the frameworks' documented formulas, written
    /// out independently of `axis_geometry`'s padding arithmetic:
    /// Keras (`valid`: ceil((n - d(m-1)) / s); `same`: ceil(n / s)) and
    /// PyTorch (floor((n + 2p - d(m-1) - 1) / s + 1); with `ceil_mode`, the
    /// ceiling, less one when the last window would start in the right
    /// padding), plus the concrete cases of their docs and of the nets
    /// built here.
    #[test]
    fn output_sizes_match_keras_and_pytorch_documentation() {
        for n in 1..40usize {
            for m in 1..6usize {
                for s in 1..4usize {
                    for d in 1..3usize {
                        let span = d * (m - 1) + 1;
                        if n >= span {
                            let keras_valid = (n - span + 1).div_ceil(s);
                            let got = axis_geometry(n, m, s, d, VALID, false).unwrap();
                            assert_eq!(got.out, keras_valid, "valid n={n} m={m} s={s} d={d}");
                        }
                        let got = axis_geometry(n, m, s, d, AxisPadding::Same, false).unwrap();
                        assert_eq!(got.out, n.div_ceil(s), "same n={n} m={m} s={s} d={d}");
                        for p in 0..3usize {
                            let full = n + 2 * p;
                            // Padding of a whole window or more is refused (a
                            // window would see only padding).
                            if full < span || p >= span {
                                continue;
                            }
                            let torch = (full - span) / s + 1;
                            let explicit = AxisPadding::Explicit(p, p);
                            let got = axis_geometry(n, m, s, d, explicit, false).unwrap();
                            assert_eq!(got.out, torch, "torch n={n} m={m} s={s} d={d} p={p}");
                            if d == 1 {
                                let mut ceil = (full - span).div_ceil(s) + 1;
                                if (ceil - 1) * s >= n + p {
                                    ceil -= 1;
                                }
                                let got = axis_geometry(n, m, s, 1, explicit, true).unwrap();
                                assert_eq!(got.out, ceil, "ceil n={n} m={m} s={s} p={p}");
                            }
                        }
                    }
                }
            }
        }
        let out = |n, m, s, d, p, ceil| axis_geometry(n, m, s, d, p, ceil).unwrap().out;
        // PyTorch's Conv2d docs: Conv2d(16, 33, 3, stride=2) on 50 x 100 -> 24 x 49;
        // Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2), dilation=(3, 1)) -> 26 x 100.
        assert_eq!(
            (
                out(50, 3, 2, 1, VALID, false),
                out(100, 3, 2, 1, VALID, false)
            ),
            (24, 49)
        );
        let (ph, pw) = (AxisPadding::Explicit(4, 4), AxisPadding::Explicit(2, 2));
        assert_eq!(
            (out(50, 3, 2, 3, ph, false), out(100, 5, 1, 1, pw, false)),
            (26, 100)
        );
        // ResNet's stem: 224 -> 7x7/2 pad 3 -> 112 -> 3x3/2 max pool pad 1 -> 56.
        assert_eq!(out(224, 7, 2, 1, AxisPadding::Explicit(3, 3), false), 112);
        assert_eq!(out(112, 3, 2, 1, AxisPadding::Explicit(1, 1), false), 56);
        // GoogLeNet's ceil-mode pools: 112 -> 56, 28 -> 14, 14 -> 7 (3/2), 14 -> 7 (2/2).
        for (n, m, want) in [(112, 3, 56), (28, 3, 14), (14, 3, 7), (14, 2, 7)] {
            assert_eq!(out(n, m, 2, 1, VALID, true), want, "{n} {m}");
        }
        // Keras: MaxPooling2D(2) on 5: 'valid' 2, 'same' 3; Conv2D(k=3) on 28 'valid' 26.
        assert_eq!(
            (
                out(5, 2, 2, 1, VALID, false),
                out(5, 2, 2, 1, AxisPadding::Same, false)
            ),
            (2, 3)
        );
        assert_eq!(out(28, 3, 1, 1, VALID, false), 26);
    }

    #[test]
    fn too_small_input_is_an_error() {
        let err = axis_geometry(3, 5, 1, 1, VALID, false).unwrap_err();
        assert!(err.to_string().contains("smaller than the window"), "{err}");
        assert!(axis_geometry(3, 0, 1, 1, VALID, false).is_err());
    }
}
