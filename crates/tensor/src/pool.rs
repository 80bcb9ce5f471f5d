//! Max and average pooling over NHWC batches, plus global pooling.
//!
//! ```text
//! x [N, H, W, C] -> y [N, OH, OW, C]
//! max: y[n, oy, ox, c] = max over the window of x,   argmax kept for backward
//! avg: y[n, oy, ox, c] = mean over the in-range cells of the window
//! ```
//!
//! Padded cells never win a max and are not counted in an average, which is
//! what Keras/TensorFlow do with `padding="same"`. Work is split over images
//! with rayon; channels are the innermost, contiguous loop.

use crate::Pool2dGeometry;
use multiversion::multiversion;
use rayon::prelude::*;

/// Range of input rows (or columns) a window starting at `start` covers.
fn window(start: isize, size: usize, limit: usize) -> (usize, usize) {
    let lo = start.max(0) as usize;
    let hi = ((start + size as isize).max(0) as usize).min(limit);
    (lo, hi)
}

/// The largest max-pooling window (in cells) whose winners fit the `u8`
/// indices that [`max_pool2d_forward`] keeps (16x16).
pub const MAX_POOL_WINDOW_CELLS: usize = 256;

/// Max pooling forward; `argmax[i]` receives the position of the cell that
/// won output `i` inside its (clipped) window, row-major: `(iy - y0) * PW +
/// (ix - x0)`. One byte per output instead of a 4-byte input index keeps
/// the backward pass's state at a quarter of the output's size. Requires
/// `PH * PW <= MAX_POOL_WINDOW_CELLS`.
pub fn max_pool2d_forward(g: &Pool2dGeometry, x: &[f32], y: &mut [f32], argmax: &mut [u8]) {
    assert_eq!(x.len(), g.n * g.h * g.w * g.c, "max_pool2d_forward: input");
    assert_eq!(y.len(), g.output_len(), "max_pool2d_forward: output");
    assert_eq!(argmax.len(), g.output_len(), "max_pool2d_forward: argmax");
    assert!(
        g.ph * g.pw <= MAX_POOL_WINDOW_CELLS,
        "max_pool2d_forward: window of {} cells",
        g.ph * g.pw
    );
    let per_out = g.oh * g.ow * g.c;
    if per_out == 0 {
        return;
    }
    let per_in = g.h * g.w * g.c;
    y.par_chunks_mut(per_out)
        .zip(argmax.par_chunks_mut(per_out))
        .enumerate()
        .for_each(|(b, (yb, ab))| max_pool_image(g, &x[b * per_in..(b + 1) * per_in], yb, ab));
}

/// Max pooling of one image `xb` into `yb`/`ab`; compiled for each SIMD
/// level (vectorized over channels).
#[multiversion(targets = "simd")]
fn max_pool_image(g: &Pool2dGeometry, xb: &[f32], yb: &mut [f32], ab: &mut [u8]) {
    for oy in 0..g.oh {
        let (y0, y1) = window((oy * g.sh) as isize - g.pad_top as isize, g.ph, g.h);
        for ox in 0..g.ow {
            let (x0, x1) = window((ox * g.sw) as isize - g.pad_left as isize, g.pw, g.w);
            let o = (oy * g.ow + ox) * g.c;
            let yo = &mut yb[o..o + g.c];
            let ao = &mut ab[o..o + g.c];
            // Start from the first in-range cell, then compare the
            // others with branch-free selects (vectorized over channels).
            let first = (y0 * g.w + x0) * g.c;
            yo.copy_from_slice(&xb[first..first + g.c]);
            ao.fill(0);
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let i = (iy * g.w + ix) * g.c;
                    let at = ((iy - y0) * g.pw + (ix - x0)) as u8;
                    let xs = &xb[i..i + g.c];
                    for ((m, a), &v) in yo.iter_mut().zip(ao.iter_mut()).zip(xs) {
                        let better = v > *m;
                        *m = if better { v } else { *m };
                        *a = if better { at } else { *a };
                    }
                }
            }
        }
    }
}

/// Max pooling backward: each output's `dy` goes to the cell that won its
/// window (summed where windows overlap). `dx` is overwritten.
pub fn max_pool2d_backward(g: &Pool2dGeometry, dy: &[f32], argmax: &[u8], dx: &mut [f32]) {
    assert_eq!(dy.len(), g.output_len(), "max_pool2d_backward: dy");
    assert_eq!(argmax.len(), g.output_len(), "max_pool2d_backward: argmax");
    assert_eq!(dx.len(), g.n * g.h * g.w * g.c, "max_pool2d_backward: dx");
    let per_out = g.oh * g.ow * g.c;
    let per_in = g.h * g.w * g.c;
    if per_in == 0 {
        return;
    }
    dx.par_chunks_mut(per_in).enumerate().for_each(|(b, dxb)| {
        let (dyb, ab) = (
            &dy[b * per_out..(b + 1) * per_out],
            &argmax[b * per_out..(b + 1) * per_out],
        );
        if g.sh >= g.ph && g.sw >= g.pw {
            max_pool_image_backward_disjoint(g, dyb, ab, dxb);
        } else {
            dxb.fill(0.0);
            for oy in 0..g.oh {
                let (y0, _) = window((oy * g.sh) as isize - g.pad_top as isize, g.ph, g.h);
                for ox in 0..g.ow {
                    let (x0, _) = window((ox * g.sw) as isize - g.pad_left as isize, g.pw, g.w);
                    let o = (oy * g.ow + ox) * g.c;
                    for ch in 0..g.c {
                        let a = usize::from(ab[o + ch]);
                        let (iy, ix) = (y0 + a / g.pw, x0 + a % g.pw);
                        dxb[(iy * g.w + ix) * g.c + ch] += dyb[o + ch];
                    }
                }
            }
        }
    });
}

/// Max pooling backward of one image when windows do not overlap (stride at
/// least the window, the usual case): every input cell is written once,
/// `dy` where it won its window and 0 elsewhere, vectorized over channels,
/// instead of zeroing `dx` and scattering.
#[multiversion(targets = "simd")]
fn max_pool_image_backward_disjoint(g: &Pool2dGeometry, dyb: &[f32], ab: &[u8], dxb: &mut [f32]) {
    let c = g.c;
    // Cells in no window (a remainder, strides past the window, or the
    // last cells when padding shifts the windows) stay 0.
    if g.oh * g.ph != g.h
        || g.ow * g.pw != g.w
        || g.sh != g.ph
        || g.sw != g.pw
        || g.pad_top != 0
        || g.pad_left != 0
    {
        dxb.fill(0.0);
    }
    for oy in 0..g.oh {
        let (y0, y1) = window((oy * g.sh) as isize - g.pad_top as isize, g.ph, g.h);
        for ox in 0..g.ow {
            let (x0, x1) = window((ox * g.sw) as isize - g.pad_left as isize, g.pw, g.w);
            let o = (oy * g.ow + ox) * c;
            let (go, ao) = (&dyb[o..o + c], &ab[o..o + c]);
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let i = (iy * g.w + ix) * c;
                    let at = ((iy - y0) * g.pw + (ix - x0)) as u8;
                    for ((d, &a), &gv) in dxb[i..i + c].iter_mut().zip(ao).zip(go) {
                        *d = if a == at { gv } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Average pooling forward (padding excluded from the count).
pub fn avg_pool2d_forward(g: &Pool2dGeometry, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), g.n * g.h * g.w * g.c, "avg_pool2d_forward: input");
    assert_eq!(y.len(), g.output_len(), "avg_pool2d_forward: output");
    let per_out = g.oh * g.ow * g.c;
    if per_out == 0 {
        return;
    }
    let per_in = g.h * g.w * g.c;
    y.par_chunks_mut(per_out)
        .enumerate()
        .for_each(|(b, yb)| avg_pool_image(g, &x[b * per_in..(b + 1) * per_in], yb));
}

/// Average pooling of one image `x [H, W, C]` into `yb [OH, OW, C]`.
#[multiversion(targets = "simd")]
fn avg_pool_image(g: &Pool2dGeometry, x: &[f32], yb: &mut [f32]) {
    for oy in 0..g.oh {
        let (y0, y1) = window((oy * g.sh) as isize - g.pad_top as isize, g.ph, g.h);
        for ox in 0..g.ow {
            let (x0, x1) = window((ox * g.sw) as isize - g.pad_left as isize, g.pw, g.w);
            let o = (oy * g.ow + ox) * g.c;
            let yo = &mut yb[o..o + g.c];
            yo.fill(0.0);
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let i = (iy * g.w + ix) * g.c;
                    for (acc, v) in yo.iter_mut().zip(&x[i..i + g.c]) {
                        *acc += v;
                    }
                }
            }
            let count = ((y1 - y0) * (x1 - x0)).max(1) as f32;
            for v in yo.iter_mut() {
                *v /= count;
            }
        }
    }
}

/// Average pooling backward: each output's gradient is shared equally by the
/// in-range cells of its window. `dx` is overwritten.
pub fn avg_pool2d_backward(g: &Pool2dGeometry, dy: &[f32], dx: &mut [f32]) {
    assert_eq!(dy.len(), g.output_len(), "avg_pool2d_backward: dy");
    assert_eq!(dx.len(), g.n * g.h * g.w * g.c, "avg_pool2d_backward: dx");
    let per_out = g.oh * g.ow * g.c;
    let per_in = g.h * g.w * g.c;
    if per_in == 0 {
        return;
    }
    dx.par_chunks_mut(per_in)
        .enumerate()
        .for_each(|(b, dxb)| avg_pool_image_backward(g, &dy[b * per_out..(b + 1) * per_out], dxb));
}

/// Average pooling backward for one image: `dyb [OH, OW, C]` into `dxb [H, W, C]`.
#[multiversion(targets = "simd")]
fn avg_pool_image_backward(g: &Pool2dGeometry, dyb: &[f32], dxb: &mut [f32]) {
    dxb.fill(0.0);
    for oy in 0..g.oh {
        let (y0, y1) = window((oy * g.sh) as isize - g.pad_top as isize, g.ph, g.h);
        for ox in 0..g.ow {
            let (x0, x1) = window((ox * g.sw) as isize - g.pad_left as isize, g.pw, g.w);
            let count = ((y1 - y0) * (x1 - x0)).max(1) as f32;
            let o = (oy * g.ow + ox) * g.c;
            let go = &dyb[o..o + g.c];
            for iy in y0..y1 {
                for ix in x0..x1 {
                    let i = (iy * g.w + ix) * g.c;
                    for (d, v) in dxb[i..i + g.c].iter_mut().zip(go) {
                        *d += v / count;
                    }
                }
            }
        }
    }
}

/// Global average pooling: `x [N, H, W, C] -> y [N, C]`, the mean over `H*W`.
pub fn global_avg_pool_forward(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), n * hw * c, "global_avg_pool_forward: input");
    assert_eq!(y.len(), n * c, "global_avg_pool_forward: output");
    for b in 0..n {
        let yb = &mut y[b * c..(b + 1) * c];
        yb.fill(0.0);
        for px in x[b * hw * c..(b + 1) * hw * c].chunks_exact(c) {
            for (acc, v) in yb.iter_mut().zip(px) {
                *acc += v;
            }
        }
        for v in yb.iter_mut() {
            *v /= hw as f32;
        }
    }
}

/// Global average pooling backward: `dx[n, p, c] = dy[n, c] / (H*W)`.
pub fn global_avg_pool_backward(n: usize, hw: usize, c: usize, dy: &[f32], dx: &mut [f32]) {
    for b in 0..n {
        for px in dx[b * hw * c..(b + 1) * hw * c].chunks_exact_mut(c) {
            for (d, g) in px.iter_mut().zip(&dy[b * c..(b + 1) * c]) {
                *d = g / hw as f32;
            }
        }
    }
}

/// Global max pooling: `x [N, H, W, C] -> y [N, C]`, with the winning
/// input index of each output.
pub fn global_max_pool_forward(
    n: usize,
    hw: usize,
    c: usize,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) {
    for b in 0..n {
        for ch in 0..c {
            let mut best = f32::NEG_INFINITY;
            let mut at = b * hw * c + ch;
            for p in 0..hw {
                let i = (b * hw + p) * c + ch;
                if x[i] > best {
                    best = x[i];
                    at = i;
                }
            }
            y[b * c + ch] = best;
            argmax[b * c + ch] = at as u32;
        }
    }
}

/// Global max pooling backward: the gradient goes to the winner. `dx` is
/// overwritten.
pub fn global_max_pool_backward(dy: &[f32], argmax: &[u32], dx: &mut [f32]) {
    dx.fill(0.0);
    for (g, &i) in dy.iter().zip(argmax) {
        dx[i as usize] += g;
    }
}
