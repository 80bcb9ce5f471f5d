//! Depthwise 2-D convolution (Keras's `DepthwiseConv2D`, PyTorch's `Conv2d`
//! with `groups = C`): each input channel is convolved with its own
//! `depth_multiplier` filters, never mixed with the other channels.
//!
//! ```text
//! x [N, H, W, C],  w [KH, KW, C, M],  b [C*M]  ->  y [N, OH, OW, C*M]
//! y[n, oy, ox, c*M + m] = b[c*M + m]
//!     + sum_{ky, kx} x[n, oy*SH + ky*DH - PT, ox*SW + kx*DW - PL, c] * w[ky, kx, c, m]
//! ```
//!
//! The weight `[KH, KW, C, M]` read as `[KH, KW, F]` (F = C*M) lines up with
//! the output channels, so every tap is one elementwise multiply-add over a
//! pixel's F channels: the loops run over channels innermost, on AVX-512
//! where the CPU has it, else on AVX2 (the same code compiled three times;
//! [`set_vector`] forces the portable build, [`set_avx512`] the AVX2 one).
//! Each output value is summed in the same order (taps in row-major order,
//! multiply then add, no fused multiply-add) on every path, so they agree
//! to the bit, for any thread count.
//!
//! A depthwise convolution does `KH*KW` multiply-adds per value it reads or
//! writes, so it is bound by memory traffic, not by the FMA units.

use crate::shape::Conv2dGeometry;
use crate::{Padding, TensorError};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

static VECTOR: AtomicBool = AtomicBool::new(true);
static AVX512: AtomicBool = AtomicBool::new(true);

/// Turns the vector builds of the loops on or off (on by default, where the
/// CPU has AVX-512F or AVX2), so that tests can run the portable one on any
/// CPU. The same bits either way.
pub fn set_vector(on: bool) {
    VECTOR.store(on, Ordering::Relaxed);
}

/// Lets the loops use AVX-512 where the CPU has it (the default), or makes
/// them take the AVX2 build, so that tests run it on AVX-512 machines too.
pub fn set_avx512(on: bool) {
    AVX512.store(on, Ordering::Relaxed);
}

/// Which build of the loops runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Build {
    Avx512,
    Avx2,
    Portable,
}

fn build() -> Build {
    #[cfg(target_arch = "x86_64")]
    {
        if !VECTOR.load(Ordering::Relaxed) {
            Build::Portable
        } else if AVX512.load(Ordering::Relaxed) && std::arch::is_x86_feature_detected!("avx512f") {
            Build::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2") {
            Build::Avx2
        } else {
            Build::Portable
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Build::Portable
    }
}

/// Sizes of a depthwise convolution: the sliding window of a
/// [`Conv2dGeometry`] whose filters are `F = C * M`, and the multiplier `M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    /// Window, padding and sizes; `conv.f` is `C * M`.
    pub conv: Conv2dGeometry,
    /// Output channels per input channel (`depth_multiplier`).
    pub m: usize,
}

impl DepthwiseGeometry {
    /// Validates and computes the geometry for an input `[n, h, w, c]`.
    pub fn new(
        input: [usize; 4],
        multiplier: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
    ) -> Result<Self, TensorError> {
        let f = input[3].checked_mul(multiplier).filter(|&f| f > 0);
        let f = f.ok_or_else(|| TensorError::Shape {
            op: "DepthwiseGeometry",
            msg: format!(
                "channels ({}) and depth multiplier ({multiplier}) must be at least 1",
                input[3]
            ),
        })?;
        let conv = Conv2dGeometry::new(input, f, kernel, stride, dilation, padding)?;
        Ok(DepthwiseGeometry {
            conv,
            m: multiplier,
        })
    }

    /// Values in the input batch.
    pub fn input_len(&self) -> usize {
        self.conv.input_len()
    }

    /// Values in the output batch.
    pub fn output_len(&self) -> usize {
        self.conv.output_len()
    }

    /// Values in the weight `[KH, KW, C, M]`.
    pub fn weight_len(&self) -> usize {
        self.conv.kh * self.conv.kw * self.conv.f
    }

    /// Multiply-adds of one forward pass over the batch.
    pub fn forward_macs(&self) -> usize {
        self.output_len() * self.conv.kh * self.conv.kw
    }

    /// The input pixel tap `(ky, kx)` of output pixel `(oy, ox)` reads, or
    /// `None` in the padding.
    fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let g = &self.conv;
        let iy = (oy * g.sh + ky * g.dh).checked_sub(g.pad_top)?;
        let ix = (ox * g.sw + kx * g.dw).checked_sub(g.pad_left)?;
        (iy < g.h && ix < g.w).then_some((iy, ix))
    }
}

/// `out[c*M + m] += xs[c] * ws[c*M + m]` (multiply, then add).
#[inline(always)]
fn tap(out: &mut [f32], xs: &[f32], ws: &[f32], m: usize) {
    if m == 1 {
        for ((o, &x), &w) in out.iter_mut().zip(xs).zip(ws) {
            *o += x * w;
        }
    } else {
        for ((o, w), &x) in out.chunks_exact_mut(m).zip(ws.chunks_exact(m)).zip(xs) {
            for (o, &w) in o.iter_mut().zip(w) {
                *o += x * w;
            }
        }
    }
}

/// Channels summed in registers at once by [`forward_block`]: four zmm.
const BLOCK: usize = 64;

/// `out[f0..f0+B] = b + sum over taps of x[at + f0..] * w[wt + f0..]`
/// (multiplier 1), the sums held in a `B`-value array (registers) across
/// the taps: the same additions in the same order as [`tap`] on `out`.
#[inline(always)]
fn forward_block<const B: usize>(
    out: &mut [f32],
    taps: &[(usize, usize)],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    f0: usize,
) {
    let mut acc = [0.0f32; B];
    if let Some(b) = b {
        acc.copy_from_slice(&b[f0..f0 + B]);
    }
    for &(at, wt) in taps {
        let xs: &[f32; B] = x[at + f0..at + f0 + B].try_into().expect("B values");
        let ws: &[f32; B] = w[wt + f0..wt + f0 + B].try_into().expect("B values");
        for i in 0..B {
            acc[i] += xs[i] * ws[i];
        }
    }
    out[f0..f0 + B].copy_from_slice(&acc);
}

/// True when every tap of output column `ox` reads a column of the image
/// (none falls in the left or right padding).
fn inside_columns(g: &DepthwiseGeometry, ox: usize) -> bool {
    let c = &g.conv;
    let first = ox * c.sw;
    first >= c.pad_left && first + (c.kw - 1) * c.dw < c.pad_left + c.w
}

/// Output columns [`forward_pixels`] computes at once.
const PIXELS: usize = 4;

/// [`forward_block`] for `P` neighbouring interior columns (multiplier
/// 1): the first column's taps, the others' `step` values further on; each
/// weight load serves `P` pixels and the `P` chains of additions overlap.
/// `out` holds the `P` pixels, `f` values apart.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_pixels<const B: usize, const P: usize>(
    out: &mut [f32],
    taps: &[(usize, usize)],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    f0: usize,
    step: usize,
    f: usize,
) {
    let mut acc = [[0.0f32; B]; P];
    if let Some(b) = b {
        for a in acc.iter_mut() {
            a.copy_from_slice(&b[f0..f0 + B]);
        }
    }
    for &(at, wt) in taps {
        let ws: &[f32; B] = w[wt + f0..wt + f0 + B].try_into().expect("B values");
        for (p, a) in acc.iter_mut().enumerate() {
            let xi = at + p * step + f0;
            let xs: &[f32; B] = x[xi..xi + B].try_into().expect("B values");
            for i in 0..B {
                a[i] += xs[i] * ws[i];
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        out[p * f + f0..p * f + f0 + B].copy_from_slice(a);
    }
}

/// Bias then the taps, one by one, for channels `f0..` of one pixel (at
/// `shift` values past the taps' sources).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_rest(
    g: &DepthwiseGeometry,
    out: &mut [f32],
    taps: &[(usize, usize)],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    f0: usize,
    shift: usize,
) {
    let c = &g.conv;
    match b {
        Some(b) => out.copy_from_slice(&b[f0..]),
        None => out.fill(0.0),
    }
    for &(at, wt) in taps {
        let at = at + shift + f0 / g.m;
        tap(out, &x[at..at - f0 / g.m + c.c], &w[wt + f0..wt + c.f], g.m);
    }
}

/// One output row `y[n, oy, .., ..]` of the forward pass.
#[inline(always)]
fn forward_row(
    g: &DepthwiseGeometry,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    n: usize,
    oy: usize,
    yrow: &mut [f32],
) {
    let c = &g.conv;
    let step = c.sw * c.c;
    // (input offset, weight offset) of each tap inside the image. Columns
    // whose every tap lies inside the image share one list, shifted by
    // SW*C per column from the first of them (`base`).
    let mut taps = Vec::with_capacity(c.kh * c.kw);
    let mut shifted = Vec::with_capacity(c.kh * c.kw);
    let mut base = None;
    let mut ox = 0;
    while ox < c.ow {
        let interior = inside_columns(g, ox);
        let taps: &[(usize, usize)] = match base {
            Some(first) if interior => {
                let shift = (ox - first) * step;
                shifted.clear();
                shifted.extend(taps.iter().map(|&(at, wt)| (at + shift, wt)));
                &shifted
            }
            _ => {
                taps.clear();
                for ky in 0..c.kh {
                    for kx in 0..c.kw {
                        if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                            taps.push((((n * c.h + iy) * c.w + ix) * c.c, (ky * c.kw + kx) * c.f));
                        }
                    }
                }
                base = interior.then_some(ox);
                &taps
            }
        };
        let group = ox + PIXELS <= c.ow && inside_columns(g, ox + PIXELS - 1);
        // Below 64 channels (no 64-wide block) four columns at once; with
        // more, the 64-wide blocks of one column are faster (measured on a
        // Zen 4: 32 channels 1.65x, 96-480 channels 0.7-0.85x).
        if g.m == 1 && interior && group && (16..BLOCK).contains(&c.f) {
            let out = &mut yrow[ox * c.f..(ox + PIXELS) * c.f];
            let mut f0 = 0;
            while f0 + 16 <= c.f {
                forward_pixels::<16, PIXELS>(out, taps, x, w, b, f0, step, c.f);
                f0 += 16;
            }
            if f0 < c.f {
                for (p, out) in out.chunks_exact_mut(c.f).enumerate() {
                    forward_rest(g, &mut out[f0..], taps, x, w, b, f0, p * step);
                }
            }
            ox += PIXELS;
            continue;
        }
        let out = &mut yrow[ox * c.f..(ox + 1) * c.f];
        let mut f0 = 0;
        if g.m == 1 {
            while f0 + BLOCK <= c.f {
                forward_block::<BLOCK>(out, taps, x, w, b, f0);
                f0 += BLOCK;
            }
            while f0 + 16 <= c.f {
                forward_block::<16>(out, taps, x, w, b, f0);
                f0 += 16;
            }
        }
        // The rest (and every channel with a multiplier above 1), tap by tap.
        forward_rest(g, &mut out[f0..], taps, x, w, b, f0, 0);
        ox += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_row_avx512(
    g: &DepthwiseGeometry,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    n: usize,
    oy: usize,
    yrow: &mut [f32],
) {
    forward_row(g, x, w, b, n, oy, yrow)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_row_avx2(
    g: &DepthwiseGeometry,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    n: usize,
    oy: usize,
    yrow: &mut [f32],
) {
    forward_row(g, x, w, b, n, oy, yrow)
}

/// `y = depthwise(x, w) + b` (no activation), overwriting `y`; rows of the
/// output in parallel.
pub fn depthwise_forward(
    g: &DepthwiseGeometry,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
) {
    let c = &g.conv;
    assert_eq!(x.len(), g.input_len(), "depthwise_forward: x");
    assert_eq!(w.len(), g.weight_len(), "depthwise_forward: w");
    assert_eq!(y.len(), g.output_len(), "depthwise_forward: y");
    assert!(b.is_none_or(|b| b.len() == c.f), "depthwise_forward: b");
    if y.is_empty() {
        return;
    }
    let build = build();
    y.par_chunks_mut(c.ow * c.f)
        .enumerate()
        .for_each(|(row, yrow)| {
            let (n, oy) = (row / c.oh, row % c.oh);
            #[cfg(target_arch = "x86_64")]
            match build {
                // SAFETY: `build` detected the feature.
                Build::Avx512 => return unsafe { forward_row_avx512(g, x, w, b, n, oy, yrow) },
                Build::Avx2 => return unsafe { forward_row_avx2(g, x, w, b, n, oy, yrow) },
                Build::Portable => {}
            }
            let _ = build;
            forward_row(g, x, w, b, n, oy, yrow)
        });
}

/// `dx[n] = sum of dy * w` over the taps that read each input value, for
/// one image (overwrites `dx_img`).
#[inline(always)]
fn backward_input_image(g: &DepthwiseGeometry, dy: &[f32], w: &[f32], n: usize, dxi: &mut [f32]) {
    let c = &g.conv;
    dxi.fill(0.0);
    for oy in 0..c.oh {
        for ox in 0..c.ow {
            let at = ((n * c.oh + oy) * c.ow + ox) * c.f;
            let d = &dy[at..at + c.f];
            for ky in 0..c.kh {
                for kx in 0..c.kw {
                    if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                        let xi = (iy * c.w + ix) * c.c;
                        let wt = (ky * c.kw + kx) * c.f;
                        let (out, ws) = (&mut dxi[xi..xi + c.c], &w[wt..wt + c.f]);
                        if g.m == 1 {
                            for ((o, &d), &w) in out.iter_mut().zip(d).zip(ws) {
                                *o += d * w;
                            }
                        } else {
                            let pairs = d.chunks_exact(g.m).zip(ws.chunks_exact(g.m));
                            for (o, (d, ws)) in out.iter_mut().zip(pairs) {
                                for (&d, &w) in d.iter().zip(ws) {
                                    *o += d * w;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_input_image_avx512(
    g: &DepthwiseGeometry,
    dy: &[f32],
    w: &[f32],
    n: usize,
    dxi: &mut [f32],
) {
    backward_input_image(g, dy, w, n, dxi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_input_image_avx2(
    g: &DepthwiseGeometry,
    dy: &[f32],
    w: &[f32],
    n: usize,
    dxi: &mut [f32],
) {
    backward_input_image(g, dy, w, n, dxi)
}

/// With stride 1 and multiplier 1 the input gradient is itself a
/// depthwise convolution: of `dy` with the kernel flipped, padded by what
/// the window's span leaves of the forward padding,
///
/// ```text
/// dx[iy, ix, c] = sum_{ky, kx} dy[iy + PT - ky*DH, ix + PL - kx*DW, c] * w[ky, kx, c]
///              = forward over dy [OH, OW] with w'[ky, kx] = w[KH-1-ky, KW-1-kx],
///                pads (KH-1)*DH - PT on top, (KH-1)*DH - PB at the bottom (same for the width)
/// ```
///
/// so it runs on the forward's register blocks instead of adding each tap
/// into memory. `None` where that does not hold (strides, multipliers, a
/// padding wider than the window's span).
fn transposed(g: &DepthwiseGeometry) -> Option<DepthwiseGeometry> {
    let c = &g.conv;
    if g.m != 1 || c.sh != 1 || c.sw != 1 {
        return None;
    }
    let (span_h, span_w) = ((c.kh - 1) * c.dh, (c.kw - 1) * c.dw);
    let pad_bottom = (c.oh + span_h).checked_sub(c.h + c.pad_top)?;
    let pad_right = (c.ow + span_w).checked_sub(c.w + c.pad_left)?;
    let pads = [
        span_h.checked_sub(c.pad_top)?,
        span_h.checked_sub(pad_bottom)?,
        span_w.checked_sub(c.pad_left)?,
        span_w.checked_sub(pad_right)?,
    ];
    let t = DepthwiseGeometry::new(
        [c.n, c.oh, c.ow, c.c],
        1,
        (c.kh, c.kw),
        (1, 1),
        (c.dh, c.dw),
        Padding::Explicit(pads),
    )
    .ok()?;
    (t.conv.oh == c.h && t.conv.ow == c.w).then_some(t)
}

/// `dx = d(y)/d(x)^T dy`, overwriting `dx`; images in parallel (with
/// stride 1 and multiplier 1, the forward of [`transposed`]).
pub fn depthwise_backward_input(g: &DepthwiseGeometry, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    let c = &g.conv;
    assert_eq!(dy.len(), g.output_len(), "depthwise_backward_input: dy");
    assert_eq!(w.len(), g.weight_len(), "depthwise_backward_input: w");
    assert_eq!(dx.len(), g.input_len(), "depthwise_backward_input: dx");
    if dx.is_empty() {
        return;
    }
    if let Some(t) = transposed(g) {
        let taps = c.kh * c.kw;
        let mut flipped = vec![0.0; w.len()];
        for (k, row) in flipped.chunks_exact_mut(c.f).enumerate() {
            let from = taps - 1 - k; // (KH-1-ky, KW-1-kx)
            row.copy_from_slice(&w[from * c.f..(from + 1) * c.f]);
        }
        return depthwise_forward(&t, dy, &flipped, None, dx);
    }
    let build = build();
    dx.par_chunks_mut(c.h * c.w * c.c)
        .enumerate()
        .for_each(|(n, dxi)| {
            #[cfg(target_arch = "x86_64")]
            match build {
                // SAFETY: `build` detected the feature.
                Build::Avx512 => return unsafe { backward_input_image_avx512(g, dy, w, n, dxi) },
                Build::Avx2 => return unsafe { backward_input_image_avx2(g, dy, w, n, dxi) },
                Build::Portable => {}
            }
            let _ = build;
            backward_input_image(g, dy, w, n, dxi)
        });
}

/// Images per partial sum of the weight gradient: a fixed number, so that
/// the order of the additions (and the bits) does not depend on threads.
const IMAGES_PER_PARTIAL: usize = 4;

/// `dw[t, f0..f0+16] += x[source of tap t, f0..] * dy[pixel, f0..]` for
/// the pixels of output row `(n, oy)` in order (multiplier 1), the
/// `KH*KW` rows of `dw` held in registers across the row: the same additions
/// in the same order as [`tap`] pixel by pixel.
#[inline(always)]
fn weight_row_block<const KH: usize, const KW: usize>(
    g: &DepthwiseGeometry,
    x: &[f32],
    dy: &[f32],
    (n, oy): (usize, usize),
    f0: usize,
    dw: &mut [f32],
) {
    let c = &g.conv;
    let mut acc = [[[0.0f32; 16]; KW]; KH];
    for (ky, row) in acc.iter_mut().enumerate() {
        for (kx, a) in row.iter_mut().enumerate() {
            let t = (ky * KW + kx) * c.f + f0;
            a.copy_from_slice(&dw[t..t + 16]);
        }
    }
    for ox in 0..c.ow {
        let at = ((n * c.oh + oy) * c.ow + ox) * c.f + f0;
        let d: &[f32; 16] = dy[at..at + 16].try_into().expect("16 values");
        for (ky, row) in acc.iter_mut().enumerate() {
            for (kx, a) in row.iter_mut().enumerate() {
                if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                    let xi = ((n * c.h + iy) * c.w + ix) * c.c + f0;
                    let xs: &[f32; 16] = x[xi..xi + 16].try_into().expect("16 values");
                    for i in 0..16 {
                        a[i] += xs[i] * d[i];
                    }
                }
            }
        }
    }
    for (ky, row) in acc.iter().enumerate() {
        for (kx, a) in row.iter().enumerate() {
            let t = (ky * KW + kx) * c.f + f0;
            dw[t..t + 16].copy_from_slice(a);
        }
    }
}

/// The weight and bias gradients of images `n0..n1`: `[KH*KW*F]` then
/// `[F]`, summed image by image, pixel by pixel. With multiplier 1, a 3x3
/// or 5x5 window and at most 32 channels, whole 16-channel blocks go through
/// [`weight_row_block`], one output row at a time; the other channels tap
/// by tap.
#[inline(always)]
fn backward_weight_images(
    g: &DepthwiseGeometry,
    x: &[f32],
    dy: &[f32],
    images: std::ops::Range<usize>,
    part: &mut [f32],
) {
    let c = &g.conv;
    let (dw, db) = part.split_at_mut(c.kh * c.kw * c.f);
    let square = matches!((c.kh, c.kw), (3, 3) | (5, 5));
    // Up to 32 channels only: with more, each block rereads the row's
    // inputs and gradients (measured on a Zen 4: 32 channels 1.5x, 96-480
    // channels 0.5x).
    let blocked = if g.m == 1 && square && c.f <= 32 {
        c.f / 16 * 16
    } else {
        0
    };
    for n in images {
        for oy in 0..c.oh {
            for f0 in (0..blocked).step_by(16) {
                if c.kh == 3 {
                    weight_row_block::<3, 3>(g, x, dy, (n, oy), f0, dw);
                } else {
                    weight_row_block::<5, 5>(g, x, dy, (n, oy), f0, dw);
                }
            }
            for ox in 0..c.ow {
                let at = ((n * c.oh + oy) * c.ow + ox) * c.f;
                let d = &dy[at..at + c.f];
                for (o, &d) in db.iter_mut().zip(d) {
                    *o += d;
                }
                if blocked == c.f {
                    continue;
                }
                for ky in 0..c.kh {
                    for kx in 0..c.kw {
                        if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                            let xi = ((n * c.h + iy) * c.w + ix) * c.c + blocked / g.m;
                            let wt = (ky * c.kw + kx) * c.f;
                            // dw[t, c*M + m] += x[c] * dy[c*M + m]
                            let out = &mut dw[wt + blocked..wt + c.f];
                            tap(out, &x[xi..xi + c.c - blocked / g.m], &d[blocked..], g.m);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_weight_images_avx512(
    g: &DepthwiseGeometry,
    x: &[f32],
    dy: &[f32],
    images: std::ops::Range<usize>,
    part: &mut [f32],
) {
    backward_weight_images(g, x, dy, images, part)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_weight_images_avx2(
    g: &DepthwiseGeometry,
    x: &[f32],
    dy: &[f32],
    images: std::ops::Range<usize>,
    part: &mut [f32],
) {
    backward_weight_images(g, x, dy, images, part)
}

/// Adds the weight gradient `[KH, KW, C, M]` to `dw` and, when given, the
/// bias gradient `[C*M]` to `db`. Groups of [`IMAGES_PER_PARTIAL`] images
/// in parallel, their partial sums added in order.
pub fn depthwise_backward_weight(
    g: &DepthwiseGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    let c = &g.conv;
    assert_eq!(x.len(), g.input_len(), "depthwise_backward_weight: x");
    assert_eq!(dy.len(), g.output_len(), "depthwise_backward_weight: dy");
    assert_eq!(dw.len(), g.weight_len(), "depthwise_backward_weight: dw");
    let len = g.weight_len() + c.f;
    let build = build();
    let parts: Vec<Vec<f32>> = (0..c.n.div_ceil(IMAGES_PER_PARTIAL))
        .into_par_iter()
        .map(|p| {
            let images = p * IMAGES_PER_PARTIAL..((p + 1) * IMAGES_PER_PARTIAL).min(c.n);
            let mut part = vec![0.0; len];
            #[cfg(target_arch = "x86_64")]
            match build {
                // SAFETY: `build` detected the feature.
                Build::Avx512 => {
                    unsafe { backward_weight_images_avx512(g, x, dy, images, &mut part) };
                    return part;
                }
                Build::Avx2 => {
                    unsafe { backward_weight_images_avx2(g, x, dy, images, &mut part) };
                    return part;
                }
                Build::Portable => {}
            }
            let _ = build;
            backward_weight_images(g, x, dy, images, &mut part);
            part
        })
        .collect();
    let mut total = vec![0.0; len];
    for part in &parts {
        for (t, &p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    let (tw, tb) = total.split_at(g.weight_len());
    for (d, &t) in dw.iter_mut().zip(tw) {
        *d += t;
    }
    if let Some(db) = db {
        assert_eq!(db.len(), c.f, "depthwise_backward_weight: db");
        for (d, &t) in db.iter_mut().zip(tb) {
            *d += t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn geometry_counts_weights_per_channel_and_multiplier() {
        let g =
            DepthwiseGeometry::new([2, 5, 6, 3], 2, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
        assert_eq!((g.conv.f, g.weight_len()), (6, 3 * 3 * 6));
        assert_eq!(
            (g.conv.oh, g.conv.ow, g.output_len()),
            (5, 6, 2 * 5 * 6 * 6)
        );
        assert_eq!(g.forward_macs(), 2 * 5 * 6 * 6 * 9);
        let e = DepthwiseGeometry::new([1, 5, 5, 3], 0, (3, 3), (1, 1), (1, 1), Padding::Same);
        assert!(e.unwrap_err().to_string().contains("depth multiplier (0)"));
    }

    #[test]
    fn vector_and_portable_loops_give_the_same_bits() {
        let g =
            DepthwiseGeometry::new([3, 9, 7, 5], 3, (3, 2), (2, 1), (1, 2), Padding::Same).unwrap();
        let (x, w, b) = (data(g.input_len(), 1), data(g.weight_len(), 2), data(15, 3));
        let dy = data(g.output_len(), 4);
        // (vector, avx512): the CPU's best build, AVX2 at most, portable.
        let run = |(on, wide): (bool, bool)| {
            set_vector(on);
            set_avx512(wide);
            let mut y = vec![0.0; g.output_len()];
            depthwise_forward(&g, &x, &w, Some(&b), &mut y);
            let mut dx = vec![0.0; g.input_len()];
            depthwise_backward_input(&g, &dy, &w, &mut dx);
            let (mut dw, mut db) = (vec![0.0; g.weight_len()], vec![0.0; 15]);
            depthwise_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db));
            set_vector(true);
            set_avx512(true);
            [y, dx, dw, db]
        };
        let a = run((true, true));
        for switches in [(true, false), (false, true)] {
            let p = run(switches);
            for (a, p) in a.iter().zip(&p) {
                assert!(
                    a.iter().zip(p).all(|(a, p)| a.to_bits() == p.to_bits()),
                    "{switches:?}"
                );
            }
        }
        let want = reference::depthwise_forward(&g, &x, &w, Some(&b));
        for (got, want) in a[0].iter().zip(&want) {
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{got} vs {want}"
            );
        }
    }
}
