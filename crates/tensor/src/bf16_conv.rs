//! Convolution forward in bf16 with fp32 sums (issue #30): the implicit
//! GEMM of `implicit.rs` on bf16 operands, through AVX512-BF16's pair dot
//! products, or the portable loop of [`crate::bf16`] (same sums).
//!
//! ```text
//! xp [imgs, HP, WP, C] bf16, zero-padded (HP = (OH-1)*SH + KH, WP = (OW-1)*SW + KW)
//! W  [KH*KW*C, F] (HWIO) packed as bf16 pairs [KH*KW*C/2, F]
//! y[m, f] = bias[f] + sum_{ky} sum_{t < KW*C/2} pair(xp, base_m + ky*WP*C + 2t) . pair(W, ky*KW*C/2 + t, f)
//! ```
//!
//! A pixel's receptive field is `KH` runs of `KW*C` contiguous values; with
//! `C` even, pairs never straddle two runs, so a pair of `xp` and a pair of
//! `W` cover the same two taps. Layers with an odd channel count (RGB or
//! gray inputs) are not handled ([`handles`]): they stay in fp32, where they
//! cost little. Each output is a fixed-order sum: the same bits for any
//! thread count.

use crate::bf16::{self, Path};
use crate::Conv2dGeometry;
use rayon::prelude::*;

/// True when [`conv2d_forward_bf16`] computes `g`: an even channel count,
/// no dilation.
pub fn handles(g: &Conv2dGeometry) -> bool {
    g.c.is_multiple_of(2) && g.c > 0 && g.f > 0 && g.dh == 1 && g.dw == 1
}

/// Packs HWIO weights `[KH*KW*C, F]` as bf16 pairs (once per step).
pub fn pack_weights(g: &Conv2dGeometry, w: &[f32]) -> Vec<u32> {
    bf16::pack_b(w, g.kh * g.kw * g.c, g.f)
}

/// Images per task.
const IMGS: usize = 4;

/// `y = conv(x, w) + bias` with bf16 operands and fp32 sums (no
/// activation), `w` from [`pack_weights`]; `path` as [`bf16::gemm_on`].
pub fn conv2d_forward_bf16(
    path: Path,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[u32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    conv2d_forward_bf16_then(path, g, x, w, bias, y, |_, _| {})
}

/// [`conv2d_forward_bf16`], then `after(start, part)` on each part of `y`
/// (`start`: its offset in `y`) while it is in cache: the activation,
/// batch norm and residual tail of the nodes after the convolution.
pub fn conv2d_forward_bf16_then(
    path: Path,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[u32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    after: impl Fn(usize, &mut [f32]) + Sync,
) {
    assert!(handles(g), "conv2d_forward_bf16: {g:?}");
    assert_eq!(x.len(), g.input_len(), "conv2d_forward_bf16: x");
    assert_eq!(
        w.len(),
        g.kh * g.kw * g.c / 2 * g.f,
        "conv2d_forward_bf16: w"
    );
    assert_eq!(y.len(), g.output_len(), "conv2d_forward_bf16: y");
    let path = if bf16::has_avx512_bf16() {
        path
    } else {
        Path::Portable
    };
    let (hp, wp) = ((g.oh - 1) * g.sh + g.kh, (g.ow - 1) * g.sw + g.kw);
    let (img_in, img_out) = (g.h * g.w * g.c, g.oh * g.ow * g.f);
    y.par_chunks_mut(IMGS * img_out)
        .zip(x.par_chunks(IMGS * img_in))
        .enumerate()
        .for_each(|(task, (y, x))| {
            let imgs = y.len() / img_out;
            let mut scratch = Scratch::take();
            pad_bf16(g, x, imgs, hp, wp, &mut scratch.xp);
            let pixels = imgs * g.oh * g.ow;
            // Each pixel's base offset in xp.
            scratch.bases.clear();
            scratch.bases.extend((0..pixels).map(|m| {
                let (b, r) = (m / (g.oh * g.ow), m % (g.oh * g.ow));
                let (oy, ox) = (r / g.ow, r % g.ow);
                ((b * hp + oy * g.sh) * wp + ox * g.sw) * g.c
            }));
            let (xp, bases) = (&scratch.xp, &scratch.bases);
            for row in y.chunks_exact_mut(g.f) {
                match bias {
                    Some(b) => row.copy_from_slice(b),
                    None => row.fill(0.0),
                }
            }
            let run = Run {
                xp,
                w,
                kh: g.kh,
                pairs: g.kw * g.c / 2,
                row_step: wp * g.c,
                f: g.f,
            };
            match path {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX512-BF16 was checked above.
                Path::Avx512Bf16 => unsafe { avx512::pixels(&run, bases, y) },
                _ => portable(&run, bases, y),
            }
            scratch.put_back();
            after(task * IMGS * img_out, y);
        });
}

/// Writes into `xp` the zero-padded bf16 copy of `imgs` images (rows and
/// columns that no window reaches, past `HP`, `WP`, left out).
pub(crate) fn pad_bf16(
    g: &Conv2dGeometry,
    x: &[f32],
    imgs: usize,
    hp: usize,
    wp: usize,
    xp: &mut Vec<u16>,
) {
    xp.clear();
    xp.resize(imgs * hp * wp * g.c, 0);
    let rows = g.h.min(hp.saturating_sub(g.pad_top));
    let cols = g.w.min(wp.saturating_sub(g.pad_left));
    for b in 0..imgs {
        for iy in 0..rows {
            let from = (b * g.h + iy) * g.w * g.c;
            let src = &x[from..from + cols * g.c];
            let at = ((b * hp + iy + g.pad_top) * wp + g.pad_left) * g.c;
            bf16::convert(src, &mut xp[at..at + src.len()]);
        }
    }
}

/// A worker thread's buffers for the bf16 kernels' per-task copies, kept
/// across calls: allocated per task, their pages would be faulted in and
/// zeroed by the kernel every time (more than the arithmetic of a
/// 16-filter layer's weight gradient).
#[derive(Default)]
pub(crate) struct Scratch {
    /// The padded bf16 input.
    pub xp: Vec<u16>,
    /// A bf16 copy of the output gradient.
    pub dyh: Vec<u16>,
    /// Paired columns of the input (weight gradient).
    pub z: Vec<u32>,
    /// Paired output gradients (weight gradient).
    pub b: Vec<u32>,
    /// Per pixel (pair): its offset in `xp` (`z`).
    pub bases: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Box<Scratch>>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers (new ones the first time).
    pub(crate) fn take() -> Box<Scratch> {
        SCRATCH.with(|c| c.take()).unwrap_or_default()
    }
    /// Keeps them for the thread's next task.
    pub(crate) fn put_back(self: Box<Self>) {
        SCRATCH.with(|c| c.set(Some(self)));
    }
}

/// What the kernels read: the padded input, the packed weights, and the
/// receptive field's shape (`kh` runs of `pairs` pairs, `row_step` apart).
struct Run<'a> {
    xp: &'a [u16],
    w: &'a [u32],
    kh: usize,
    pairs: usize,
    row_step: usize,
    f: usize,
}

impl Run<'_> {
    /// The pair `t` of run `ky` of the pixel at `base`, as the u32 of two bf16.
    #[inline(always)]
    fn pair(&self, base: usize, ky: usize, t: usize) -> u32 {
        let at = base + ky * self.row_step + 2 * t;
        u32::from(self.xp[at]) | u32::from(self.xp[at + 1]) << 16
    }
}

/// The portable loop: [`bf16`]'s pair steps, pixel by pixel.
fn portable(run: &Run<'_>, bases: &[usize], y: &mut [f32]) {
    for (&base, row) in bases.iter().zip(y.chunks_exact_mut(run.f)) {
        for (j, out) in row.iter_mut().enumerate() {
            let mut acc = *out;
            for ky in 0..run.kh {
                for t in 0..run.pairs {
                    let wv = run.w[(ky * run.pairs + t) * run.f + j];
                    acc = bf16::pair_step(acc, run.pair(base, ky, t), wv);
                }
            }
            *out = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Run;
    use std::arch::x86_64::*;

    /// Pixels per register tile.
    const MR: usize = 8;

    /// Every pixel of the task: column blocks of 32 filters (then 16, then
    /// a masked tail), tiles of `MR` pixels (then single pixels).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pixels(run: &Run<'_>, bases: &[usize], y: &mut [f32]) {
        let f = run.f;
        let mut j = 0;
        while j + 32 <= f {
            tiles::<2>(run, bases, y, j, 0xffff);
            j += 32;
        }
        while j < f {
            let left = (f - j).min(16);
            let mask = if left == 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            tiles::<1>(run, bases, y, j, mask);
            j += 16;
        }
    }

    #[inline(always)]
    unsafe fn tiles<const V: usize>(
        run: &Run<'_>,
        bases: &[usize],
        y: &mut [f32],
        j: usize,
        mask: u16,
    ) {
        let mut i = 0;
        while i + MR <= bases.len() {
            tile::<MR, V>(run, &bases[i..i + MR], y, i, j, mask);
            i += MR;
        }
        while i < bases.len() {
            tile::<1, V>(run, &bases[i..i + 1], y, i, j, mask);
            i += 1;
        }
    }

    /// `y[i..i+R, j..j+16V] += the receptive fields of R pixels . W[:, j..]`.
    #[inline(always)]
    unsafe fn tile<const R: usize, const V: usize>(
        run: &Run<'_>,
        bases: &[usize],
        y: &mut [f32],
        i: usize,
        j: usize,
        mask: u16,
    ) {
        let f = run.f;
        let (xp, wp, yp) = (run.xp.as_ptr(), run.w.as_ptr(), y.as_mut_ptr());
        let lane_mask = |v: usize| if v + 1 == V { mask } else { 0xffff };
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, a) in row.iter_mut().enumerate() {
                *a = _mm512_maskz_loadu_ps(lane_mask(v), yp.add((i + r) * f + j + 16 * v));
            }
        }
        for ky in 0..run.kh {
            let mut src = [std::ptr::null::<u16>(); R];
            for (r, s) in src.iter_mut().enumerate() {
                *s = xp.add(bases[r] + ky * run.row_step);
            }
            let wrow = wp.add(ky * run.pairs * f + j);
            for t in 0..run.pairs {
                let mut bv = [_mm512_setzero_si512(); V];
                for (v, b) in bv.iter_mut().enumerate() {
                    let at = wrow.add(t * f + 16 * v) as *const i32;
                    *b = _mm512_maskz_loadu_epi32(lane_mask(v), at);
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let pair = (src[r].add(2 * t) as *const i32).read_unaligned();
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                    for (v, a) in row.iter_mut().enumerate() {
                        let bw: __m512bh = std::mem::transmute(bv[v]);
                        *a = _mm512_dpbf16_ps(*a, av, bw);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(yp.add((i + r) * f + j + 16 * v), lane_mask(v), *a);
            }
        }
    }
}
