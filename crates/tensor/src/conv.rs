//! 2-D convolution over NHWC batches: im2col + GEMM, multithreaded.
//!
//! Shapes (see [`Conv2dGeometry`]):
//!
//! ```text
//! x  [N, H, W, C]      w  [KH, KW, C, F] (HWIO, Keras's layout)
//! y  [N, OH, OW, F]    b  [F]
//! y[n, oy, ox, f] = b[f] + sum_{ky, kx, c} x[n, oy*SH + ky*DH - PT, ox*SW + kx*DW - PL, c] * w[ky, kx, c, f]
//! ```
//!
//! (cross-correlation, as in every framework; out-of-range pixels are zero).
//!
//! Seen as matrices, with `P = KH*KW*C` and `M = N*OH*OW`, the im2col matrix
//! `X_col [M, P]` holds one receptive field per row, so
//!
//! ```text
//! forward          Y[M, F]   = X_col[M, P] * W[P, F] + b
//! backward input   dX_col    = dY[M, F] * W^T[F, P]   then col2im (scatter-add)
//! backward weight  dW[P, F] += X_col^T[P, M] * dY[M, F],   db[F] += sum_rows dY
//! ```
//!
//! The batch is cut into chunks of whole images (a size that depends only on
//! the geometry), processed in parallel with rayon; each chunk runs a
//! single-threaded GEMM. Weight gradients are summed over chunks in chunk
//! order, so results are bit-identical whatever the thread count.

use crate::activation::{Activation, SavedOutput};
use crate::gemm::{matmul, MatRef, Threads};
use crate::implicit;
use crate::strided_input;
use crate::{Conv2dGeometry, Precision};
use multiversion::multiversion;
use rayon::prelude::*;

/// GEMM rows a chunk aims for: enough to amortize packing the weights.
const TARGET_ROWS: usize = 2048;

/// Images per parallel chunk; a function of the geometry only (the weight
/// gradient sums its chunks' partial sums in chunk order, so the chunks must
/// not depend on the thread count). About [`TARGET_ROWS`] rows per chunk,
/// with the chunk count rounded up to a multiple of 4 so that 2 or 4
/// threads get equal shares: a batch of 128 14x14 images makes 16 chunks
/// of 8 rather than 13 of 10 (7 against 6 on two threads).
fn chunk_images(g: &Conv2dGeometry) -> usize {
    let n = g.n.max(1);
    let rows = (g.oh * g.ow).max(1);
    let chunks = (n * rows).div_ceil(TARGET_ROWS).next_multiple_of(4).min(n);
    n.div_ceil(chunks)
}

/// Patch lengths up to this use the direct kernels: with so few values per
/// receptive field (a 5x5 kernel on one channel: 25) the GEMM's inner
/// dimension is too short for it to run fast, and im2col costs more than
/// the arithmetic.
const DIRECT_MAX_PATCH: usize = 32;

/// True when the direct kernels handle this geometry: a short patch, no
/// dilation, and a filter count they are compiled for, on a machine or a
/// filter count the faster implicit-GEMM kernels do not take (they tile
/// several pixels at once; these hold one pixel's sums).
fn is_direct(g: &Conv2dGeometry) -> bool {
    g.patch_len() <= DIRECT_MAX_PATCH
        && g.dh == 1
        && g.dw == 1
        && matches!(g.f, 16 | 32 | 64)
        && !implicit::handles(g)
}

/// True when the im2col matrix is the input itself (1x1, stride 1, no padding).
fn is_pointwise(g: &Conv2dGeometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pad_top == 0 && g.pad_left == 0
}

thread_local! {
    /// Each worker thread's im2col buffer, kept across calls so that a
    /// chunk's column matrix is neither allocated nor zeroed per chunk.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer of `len` values. Their contents
/// are stale: `f` must overwrite every value it reads.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Copies a run that is often only a few values long (single-channel
/// inputs), where a plain loop beats a `memcpy` call.
#[inline(always)]
fn copy_small(dst: &mut [f32], src: &[f32]) {
    if dst.len() <= 16 {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Fills `cols [imgs*OH*OW, P]` with the receptive fields of `x [imgs, H, W, C]`.
#[multiversion(targets = "simd")]
fn im2col(g: &Conv2dGeometry, x: &[f32], imgs: usize, cols: &mut [f32]) {
    let p = g.patch_len();
    let c = g.c;
    let mut row = 0;
    for b in 0..imgs {
        let img = &x[b * g.h * g.w * c..(b + 1) * g.h * g.w * c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let dst = &mut cols[row * p..(row + 1) * p];
                let x0 = (ox * g.sw) as isize - g.pad_left as isize;
                for ky in 0..g.kh {
                    let iy = (oy * g.sh + ky * g.dh) as isize - g.pad_top as isize;
                    let seg = &mut dst[ky * g.kw * c..(ky + 1) * g.kw * c];
                    if iy < 0 || iy >= g.h as isize {
                        seg.fill(0.0);
                        continue;
                    }
                    let line = &img[iy as usize * g.w * c..(iy as usize + 1) * g.w * c];
                    let x_last = x0 + ((g.kw - 1) * g.dw) as isize;
                    if g.dw == 1 && x0 >= 0 && x_last < g.w as isize {
                        // The whole kernel row is one contiguous run in NHWC.
                        copy_small(seg, &line[x0 as usize * c..(x_last as usize + 1) * c]);
                        continue;
                    }
                    for kx in 0..g.kw {
                        let ix = x0 + (kx * g.dw) as isize;
                        let d = &mut seg[kx * c..(kx + 1) * c];
                        if ix < 0 || ix >= g.w as isize {
                            d.fill(0.0);
                        } else {
                            copy_small(d, &line[ix as usize * c..(ix as usize + 1) * c]);
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// For output index `o` along an axis (stride `s`, leading padding `pad`,
/// kernel size `k`, input size `n`, no dilation), the in-range kernel
/// positions `lo..hi`: padding taps are cut off, so each kernel row is one
/// contiguous run of the input row.
#[inline(always)]
fn tap_range(o: usize, s: usize, pad: usize, k: usize, n: usize) -> (usize, usize) {
    let start = (o * s) as isize - pad as isize;
    let lo = (-start).max(0) as usize;
    let hi = ((n as isize - start).max(0) as usize).min(k);
    (lo.min(hi), hi)
}

/// Direct forward of images `x [imgs, H, W, C]` into `y [imgs, OH, OW, F]`
/// (before bias and activation), for `F` filters known at compile time so
/// that each pixel's sums stay in registers; vectorized over the filters.
#[inline(always)] // into each SIMD version of the dispatcher
fn direct_forward<const F: usize>(g: &Conv2dGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    let c = g.c;
    let per_in = g.h * g.w * c;
    let per_out = g.oh * g.ow * F;
    for (img, yb) in x.chunks_exact(per_in).zip(y.chunks_exact_mut(per_out)) {
        for oy in 0..g.oh {
            let (ky0, ky1) = tap_range(oy, g.sh, g.pad_top, g.kh, g.h);
            for ox in 0..g.ow {
                let (kx0, kx1) = tap_range(ox, g.sw, g.pad_left, g.kw, g.w);
                let run = (kx1 - kx0) * c;
                let mut acc = [0.0f32; F];
                for ky in ky0..ky1 {
                    let iy = oy * g.sh + ky - g.pad_top;
                    let ix = ox * g.sw + kx0 - g.pad_left;
                    let xs = &img[(iy * g.w + ix) * c..][..run];
                    let ws = &w[(ky * g.kw + kx0) * c * F..][..run * F];
                    for (&xv, wr) in xs.iter().zip(ws.chunks_exact(F)) {
                        let wr: &[f32; F] = wr.try_into().expect("chunks of F");
                        for j in 0..F {
                            acc[j] += xv * wr[j];
                        }
                    }
                }
                yb[(oy * g.ow + ox) * F..][..F].copy_from_slice(&acc);
            }
        }
    }
}

/// Direct weight gradient of a chunk: `dw[P, F] += sum over pixels of
/// x_patch[P] * dy[F]`, the transpose of [`direct_forward`].
#[inline(always)] // into each SIMD version of the dispatcher
fn direct_backward_weight<const F: usize>(
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
) {
    let c = g.c;
    let per_in = g.h * g.w * c;
    let per_out = g.oh * g.ow * F;
    for (img, db) in x.chunks_exact(per_in).zip(dy.chunks_exact(per_out)) {
        for oy in 0..g.oh {
            let (ky0, ky1) = tap_range(oy, g.sh, g.pad_top, g.kh, g.h);
            for ox in 0..g.ow {
                let (kx0, kx1) = tap_range(ox, g.sw, g.pad_left, g.kw, g.w);
                let run = (kx1 - kx0) * c;
                let mut d = [0.0f32; F];
                d.copy_from_slice(&db[(oy * g.ow + ox) * F..][..F]);
                for ky in ky0..ky1 {
                    let iy = oy * g.sh + ky - g.pad_top;
                    let ix = ox * g.sw + kx0 - g.pad_left;
                    let xs = &img[(iy * g.w + ix) * c..][..run];
                    let ws = &mut dw[(ky * g.kw + kx0) * c * F..][..run * F];
                    for (&xv, wr) in xs.iter().zip(ws.chunks_exact_mut(F)) {
                        let wr: &mut [f32; F] = wr.try_into().expect("chunks of F");
                        for j in 0..F {
                            wr[j] += xv * d[j];
                        }
                    }
                }
            }
        }
    }
}

/// The direct forward for this geometry's filter count, SIMD-dispatched.
#[multiversion(targets = "simd")]
fn direct_forward_dispatch(g: &Conv2dGeometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    match g.f {
        16 => direct_forward::<16>(g, x, w, y),
        32 => direct_forward::<32>(g, x, w, y),
        64 => direct_forward::<64>(g, x, w, y),
        _ => unreachable!("is_direct admits 16, 32 or 64 filters"),
    }
}

/// The direct weight gradient for this geometry's filter count.
#[multiversion(targets = "simd")]
fn direct_backward_weight_dispatch(g: &Conv2dGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    match g.f {
        16 => direct_backward_weight::<16>(g, x, dy, dw),
        32 => direct_backward_weight::<32>(g, x, dy, dw),
        64 => direct_backward_weight::<64>(g, x, dy, dw),
        _ => unreachable!("is_direct admits 16, 32 or 64 filters"),
    }
}

/// Adds the rows of `cols [imgs*OH*OW, P]` back into `dx [imgs, H, W, C]`.
#[multiversion(targets = "simd")]
fn col2im(g: &Conv2dGeometry, cols: &[f32], imgs: usize, dx: &mut [f32]) {
    let p = g.patch_len();
    let c = g.c;
    let mut row = 0;
    for b in 0..imgs {
        let img = &mut dx[b * g.h * g.w * c..(b + 1) * g.h * g.w * c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let src = &cols[row * p..(row + 1) * p];
                let x0 = (ox * g.sw) as isize - g.pad_left as isize;
                for ky in 0..g.kh {
                    let iy = (oy * g.sh + ky * g.dh) as isize - g.pad_top as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let line = &mut img[iy as usize * g.w * c..(iy as usize + 1) * g.w * c];
                    for kx in 0..g.kw {
                        let ix = x0 + (kx * g.dw) as isize;
                        if ix < 0 || ix >= g.w as isize {
                            continue;
                        }
                        let s = &src[(ky * g.kw + kx) * c..(ky * g.kw + kx + 1) * c];
                        let d = &mut line[ix as usize * c..(ix as usize + 1) * c];
                        for (d, s) in d.iter_mut().zip(s) {
                            *d += s;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// `y[r, f] += b[f]` for every row `r` of `y [rows, F]`.
#[multiversion(targets = "simd")]
fn add_bias(y: &mut [f32], b: &[f32]) {
    for row in y.chunks_exact_mut(b.len()) {
        for (v, bb) in row.iter_mut().zip(b) {
            *v += bb;
        }
    }
}

/// `acc[f] += sum_r dy[r, f]`, rows in order.
#[multiversion(targets = "simd")]
pub(crate) fn sum_rows(dy: &[f32], acc: &mut [f32]) {
    for row in dy.chunks_exact(acc.len()) {
        for (a, v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// Forward pass: `y = act(conv(x, w) + b)` (see the module docs for shapes).
///
/// The bias and the activation are applied to each chunk right after its
/// GEMM, while it is in cache. `y` is overwritten.
pub fn conv2d_forward(
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    conv2d_forward_affine(g, x, w, bias, act, None, y)
}

/// What an inference convolution applies after its batch norm's affine
/// map: the nodes after it that the model runs in the convolution's pass
/// (the same arithmetic as those layers, one memory pass each fewer).
#[derive(Clone, Copy, Debug, Default)]
pub enum Tail<'a> {
    /// Nothing.
    #[default]
    None,
    /// `y = max(y, 0)`, as `Activation::Relu` (NaN and -0.0 pass).
    Relu,
    /// `y = max(y + shortcut, 0)`, `shortcut` shaped as `y`: the sum and
    /// ReLU that end a residual block.
    AddRelu(&'a [f32]),
}

impl<'a> Tail<'a> {
    /// The shortcut of [`Tail::AddRelu`].
    pub fn shortcut(self) -> Option<&'a [f32]> {
        match self {
            Tail::AddRelu(s) => Some(s),
            _ => None,
        }
    }

    /// The tail of the part `y[start..start + len]` of the output.
    pub(crate) fn part(self, start: usize, len: usize) -> Tail<'a> {
        match self {
            Tail::AddRelu(s) => Tail::AddRelu(&s[start..start + len]),
            t => t,
        }
    }

    /// Applies the tail to `y` in a pass of its own (the paths whose
    /// kernels do not apply it as they store).
    fn apply(self, y: &mut [f32]) {
        let relu = |v: f32| if v < 0.0 { 0.0 } else { v };
        match self {
            Tail::None => {}
            Tail::Relu => y.iter_mut().for_each(|v| *v = relu(*v)),
            Tail::AddRelu(s) => {
                assert_eq!(s.len(), y.len(), "conv tail: shortcut length");
                y.iter_mut().zip(s).for_each(|(v, s)| *v = relu(*v + s));
            }
        }
    }
}

/// [`Tail`]'s own pass over `y` (what the kernels that store it apply).
pub fn apply_tail(tail: Tail<'_>, y: &mut [f32]) {
    tail.apply(y)
}

/// [`conv2d_forward`] followed by a per-filter affine map
/// `y = y * scale[f] + shift[f]` in the same pass (an inference batch norm
/// after the convolution, see `batch_norm::eval_scale_shift`), applied to
/// each chunk while it is in cache.
pub fn conv2d_forward_affine(
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    affine: Option<(&[f32], &[f32])>,
    y: &mut [f32],
) {
    forward_epilogue(g, x, w, bias, act, affine, Tail::None, y)
}

/// [`conv2d_forward_affine`], then `tail`, chunk by chunk.
#[allow(clippy::too_many_arguments)]
fn forward_epilogue(
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    affine: Option<(&[f32], &[f32])>,
    tail: Tail<'_>,
    y: &mut [f32],
) {
    assert_eq!(x.len(), g.input_len(), "conv2d_forward: input length");
    assert_eq!(w.len(), g.weight_len(), "conv2d_forward: weight length");
    assert_eq!(y.len(), g.output_len(), "conv2d_forward: output length");
    if g.n == 0 {
        return;
    }
    let per_img_out = g.oh * g.ow * g.f;
    let chunk = chunk_images(g);
    let p = g.patch_len();
    let wm = MatRef::row_major(w, p, g.f);
    y.par_chunks_mut(chunk * per_img_out)
        .enumerate()
        .for_each(|(ci, y_chunk)| {
            let imgs = y_chunk.len() / per_img_out;
            let x_chunk = images(g, x, ci * chunk, imgs);
            let rows = imgs * g.oh * g.ow;
            let tail = tail.part(ci * chunk * per_img_out, y_chunk.len());
            if implicit::handles(g) {
                // Bias, ReLU and the affine map are applied as each tile is
                // stored; other activations run on the chunk afterwards.
                let relu = act == Activation::Relu;
                let in_kernel = relu || act == Activation::Linear;
                let epilogue = implicit::Epilogue {
                    bias,
                    relu,
                    affine: if in_kernel { affine } else { None },
                    tail: if in_kernel { tail } else { Tail::None },
                };
                implicit::forward_chunk(g, x_chunk, imgs, w, epilogue, y_chunk, None);
                if !in_kernel {
                    act.forward_serial(y_chunk, g.f);
                    if let Some((scale, shift)) = affine {
                        crate::batch_norm::scale_shift_in_place(y_chunk, scale, shift);
                    }
                    tail.apply(y_chunk);
                }
                return;
            }
            if is_direct(g) {
                direct_forward_dispatch(g, x_chunk, w, y_chunk);
            } else if is_pointwise(g) {
                matmul(
                    y_chunk,
                    MatRef::row_major(x_chunk, rows, p),
                    wm,
                    false,
                    Threads::Single,
                );
            } else {
                with_scratch(rows * p, |cols| {
                    im2col(g, x_chunk, imgs, cols);
                    matmul(
                        y_chunk,
                        MatRef::row_major(cols, rows, p),
                        wm,
                        false,
                        Threads::Single,
                    );
                });
            }
            if let Some(b) = bias {
                add_bias(y_chunk, b);
            }
            act.forward_serial(y_chunk, g.f);
            if let Some((scale, shift)) = affine {
                crate::batch_norm::scale_shift_in_place(y_chunk, scale, shift);
            }
            tail.apply(y_chunk);
        });
}

/// [`conv2d_forward_affine`] for inference: in [`Precision::Bf16`] with
/// an even channel count, bf16 operands and fp32 sums; otherwise a 3x3 stride-1 convolution
/// with 32, 48, ... channels, 16k filters and a ReLU or no activation takes
/// Winograd F(2x2, 3x3) (`winograd`: 2.25x fewer multiply-adds, not the
/// direct sum's bits), everything else the same kernels as training; then
/// `tail` (a ReLU, or a residual sum and ReLU, after the affine map).
#[allow(clippy::too_many_arguments)] // the forward's, plus the fused nodes'
pub fn conv2d_forward_inference(
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    affine: Option<(&[f32], &[f32])>,
    tail: Tail<'_>,
    precision: Precision,
    y: &mut [f32],
) {
    if let Some(s) = tail.shortcut() {
        assert_eq!(s.len(), y.len(), "conv2d_forward: shortcut length");
    }
    if precision.is_bf16() && crate::bf16_conv::handles(g) {
        // bf16 operands, fp32 sums; then the activation, the affine map
        // and the tail in passes of their own.
        let packed = crate::bf16_conv::pack_weights(g, w);
        let path = crate::bf16::path();
        let after = |start: usize, part: &mut [f32]| {
            act.forward_serial(part, g.f);
            if let Some((scale, shift)) = affine {
                crate::batch_norm::scale_shift_in_place(part, scale, shift);
            }
            tail.part(start, part.len()).apply(part);
        };
        crate::bf16_conv::conv2d_forward_bf16_then(path, g, x, &packed, bias, y, after);
    } else if crate::winograd::handles(g, act) {
        let relu = act == Activation::Relu;
        let epilogue = implicit::Epilogue {
            bias,
            relu,
            affine,
            tail,
        };
        crate::winograd::forward(g, x, w, epilogue, y);
    } else {
        forward_epilogue(g, x, w, bias, act, affine, tail, y);
    }
}

/// [`conv2d_forward`] in training: also keeps in `slot` what the
/// activation's backward needs, as [`Activation::save_output`] does. With a
/// ReLU on the implicit-GEMM kernels the mask bits are packed as the tiles
/// are stored, without a second pass over `y`.
pub fn conv2d_forward_saving(
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    slot: &mut Option<SavedOutput>,
) {
    if act.saves_input() {
        conv2d_forward(g, x, w, bias, Activation::Linear, y);
        act.forward_saving(y, g.f, slot);
        return;
    }
    if act != Activation::Relu || !implicit::handles(g) || g.n == 0 || cfg!(target_endian = "big") {
        conv2d_forward(g, x, w, bias, act, y);
        act.save_output(y, slot);
        return;
    }
    assert_eq!(x.len(), g.input_len(), "conv2d_forward: input length");
    assert_eq!(w.len(), g.weight_len(), "conv2d_forward: weight length");
    assert_eq!(y.len(), g.output_len(), "conv2d_forward: output length");
    let mut mask = match slot.take() {
        Some(SavedOutput::ReluMask(m)) => m,
        _ => Vec::new(),
    };
    mask.clear();
    mask.resize(y.len().div_ceil(64), 0);
    // Bit i % 64 of word i / 64 is bit i % 16 of half-word i / 16 on a
    // little-endian machine (checked above). F is a multiple of 32, so every
    // image's outputs start on a half-word.
    // SAFETY: u16 has a smaller alignment than u64 and the view covers
    // exactly the words' bytes; `mask` is not used otherwise while it lives.
    let halves =
        unsafe { std::slice::from_raw_parts_mut(mask.as_mut_ptr().cast::<u16>(), mask.len() * 4) };
    let per_img_out = g.oh * g.ow * g.f;
    let chunk = chunk_images(g);
    let epilogue = implicit::Epilogue {
        bias,
        relu: true,
        ..Default::default()
    };
    y.par_chunks_mut(chunk * per_img_out)
        .zip(halves.par_chunks_mut(chunk * per_img_out / 16))
        .enumerate()
        .for_each(|(ci, (y_chunk, m_chunk))| {
            let imgs = y_chunk.len() / per_img_out;
            let x_chunk = images(g, x, ci * chunk, imgs);
            let m_chunk = &mut m_chunk[..y_chunk.len() / 16];
            implicit::forward_chunk(g, x_chunk, imgs, w, epilogue, y_chunk, Some(m_chunk));
        });
    *slot = Some(SavedOutput::ReluMask(mask));
}

/// Backward pass to the input: `dx = col2im(dy * w^T)`.
///
/// `dx` is overwritten.
pub fn conv2d_backward_input(g: &Conv2dGeometry, dy: &[f32], w: &[f32], dx: &mut [f32]) {
    assert_eq!(dy.len(), g.output_len(), "conv2d_backward_input: dy length");
    assert_eq!(
        w.len(),
        g.weight_len(),
        "conv2d_backward_input: weight length"
    );
    assert_eq!(dx.len(), g.input_len(), "conv2d_backward_input: dx length");
    if g.n == 0 {
        return;
    }
    let per_img_out = g.oh * g.ow * g.f;
    let per_img_in = g.h * g.w * g.c;
    let chunk = chunk_images(g);
    let p = g.patch_len();
    let wt = MatRef::row_major(w, p, g.f).t();
    // The input gradient as a forward over dy (see `implicit`), when it fits.
    let plan = (!is_pointwise(g) && implicit::handles_backward_input(g))
        .then(|| implicit::backward_input_plan(g, w));
    // Strided: one stride-1 forward per output phase (see `strided_input`).
    let phases =
        (plan.is_none() && strided_input::handles(g)).then(|| strided_input::Plan::new(g, w));
    dx.par_chunks_mut(chunk * per_img_in)
        .enumerate()
        .for_each(|(ci, dx_chunk)| {
            let imgs = dx_chunk.len() / per_img_in;
            let dy_chunk = &dy[ci * chunk * per_img_out..(ci * chunk + imgs) * per_img_out];
            let rows = imgs * g.oh * g.ow;
            let dym = MatRef::row_major(dy_chunk, rows, g.f);
            if is_pointwise(g) {
                matmul(dx_chunk, dym, wt, false, Threads::Single);
            } else if let Some((gt, wflip)) = &plan {
                let none = implicit::Epilogue::default();
                implicit::forward_chunk(gt, dy_chunk, imgs, wflip, none, dx_chunk, None);
            } else if let Some(phases) = &phases {
                phases.run(g, dy_chunk, imgs, dx_chunk);
            } else {
                with_scratch(rows * p, |dcols| {
                    matmul(dcols, dym, wt, false, Threads::Single);
                    dx_chunk.fill(0.0);
                    col2im(g, dcols, imgs, dx_chunk);
                });
            }
        });
}

/// Backward pass to the parameters: `dw += x_col^T * dy`, `db += sum dy`.
///
/// Accumulates, so gradients of several batches can be summed.
pub fn conv2d_backward_weight(
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    check_weight_args(g, x, dy, dw);
    if g.n == 0 {
        return;
    }
    let chunk = chunk_images(g);
    let with_bias = db.is_some();
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
        .par_chunks(chunk * g.oh * g.ow * g.f)
        .enumerate()
        .map(|(ci, dy_chunk)| weight_chunk(g, x, dy_chunk, ci * chunk, with_bias))
        .collect();
    sum_partials(&partials, dw, db);
}

/// [`conv2d_backward_weight`] for a convolution with a ReLU, in training:
/// `dy` (the gradient of the ReLU's output) becomes the pre-activation
/// gradient in place, zero where the saved mask (`SavedOutput::ReluMask`)
/// is clear, chunk by chunk right before that chunk's products, while it
/// is in cache (instead of a separate pass over all of `dy`).
pub fn conv2d_backward_weight_relu(
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &mut [f32],
    mask: &[u64],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    check_weight_args(g, x, dy, dw);
    assert!(
        mask.len() * 64 >= dy.len(),
        "conv2d_backward_weight: mask length"
    );
    let chunk = chunk_images(g);
    let chunk_len = chunk * g.oh * g.ow * g.f;
    if g.n == 0 || !chunk_len.is_multiple_of(64) {
        // Chunks that do not start on a mask word: mask first, then sum.
        crate::activation::apply_mask_par(mask, dy);
        return conv2d_backward_weight(g, x, dy, dw, db);
    }
    let with_bias = db.is_some();
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
        .par_chunks_mut(chunk_len)
        .zip(mask.par_chunks(chunk_len / 64))
        .enumerate()
        .map(|(ci, (dy_chunk, m))| {
            crate::activation::apply_mask(m, dy_chunk);
            weight_chunk(g, x, dy_chunk, ci * chunk, with_bias)
        })
        .collect();
    sum_partials(&partials, dw, db);
}

/// The length checks of the weight-gradient entry points.
fn check_weight_args(g: &Conv2dGeometry, x: &[f32], dy: &[f32], dw: &[f32]) {
    assert_eq!(
        x.len(),
        g.input_len(),
        "conv2d_backward_weight: input length"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv2d_backward_weight: dy length"
    );
    assert_eq!(
        dw.len(),
        g.weight_len(),
        "conv2d_backward_weight: dw length"
    );
}

/// Images `first..first + imgs` of the batch `x [N, H, W, C]`.
fn images<'a>(g: &Conv2dGeometry, x: &'a [f32], first: usize, imgs: usize) -> &'a [f32] {
    let per_img = g.h * g.w * g.c;
    &x[first * per_img..(first + imgs) * per_img]
}

/// The weight (and bias) gradient of the images `first..` of `x` whose
/// output gradient is `dy_chunk`, as partial sums.
fn weight_chunk(
    g: &Conv2dGeometry,
    x: &[f32],
    dy_chunk: &[f32],
    first: usize,
    with_bias: bool,
) -> (Vec<f32>, Vec<f32>) {
    let p = g.patch_len();
    let imgs = dy_chunk.len() / (g.oh * g.ow * g.f);
    let x_chunk = images(g, x, first, imgs);
    let rows = imgs * g.oh * g.ow;
    let dym = MatRef::row_major(dy_chunk, rows, g.f);
    let mut part = vec![0.0; p * g.f];
    if is_direct(g) {
        direct_backward_weight_dispatch(g, x_chunk, dy_chunk, &mut part);
    } else if is_pointwise(g) {
        let xt = MatRef::row_major(x_chunk, rows, p).t();
        matmul(&mut part, xt, dym, false, Threads::Single);
    } else if implicit::handles(g) {
        implicit::backward_weight_chunk(g, x_chunk, imgs, dy_chunk, &mut part);
    } else {
        with_scratch(rows * p, |cols| {
            im2col(g, x_chunk, imgs, cols);
            let ct = MatRef::row_major(cols, rows, p).t();
            matmul(&mut part, ct, dym, false, Threads::Single);
        });
    }
    let mut bpart = Vec::new();
    if with_bias {
        bpart = vec![0.0; g.f];
        sum_rows(dy_chunk, &mut bpart);
    }
    (part, bpart)
}

/// Adds the chunks' partial sums in chunk order: reproducible whatever the
/// thread count.
pub(crate) fn sum_partials(
    partials: &[(Vec<f32>, Vec<f32>)],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    for (part, _) in partials {
        for (d, s) in dw.iter_mut().zip(part) {
            *d += s;
        }
    }
    if let Some(db) = db {
        for (_, bpart) in partials {
            for (d, s) in db.iter_mut().zip(bpart) {
                *d += s;
            }
        }
    }
}
