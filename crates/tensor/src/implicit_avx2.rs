//! The implicit-GEMM micro-kernels on AVX2 + FMA (CPUs without AVX-512,
//! such as AMD's Zen 3): the products of the parent module, by blocks of 16
//! filters held as two 8-wide registers.
//!
//! ```text
//! forward      6 pixels x 16 filters:  12 accumulators + 2 weight vectors + 1 broadcast
//!              acc[r][f] += xp[base_r + ky*WP*C + t] * W[k, f]
//! weight grad  6 consecutive k x 16 filters, over the pixels m:
//!              acc[r][f] += xp[base_m + ky*WP*C + t0 + r] * dY[m, f]
//! ```
//!
//! Every sum runs over the same terms in the same order as the AVX-512
//! kernels' (one fused multiply-add chain per output from the bias, or one
//! per pixel block added to `dw`), so the two paths give the same bits.

use super::{Epilogue, Kernel, WG_MR_MAX};
use std::arch::x86_64::*;

/// Pixels per forward tile (6 x 2 accumulators).
const FWD_MR: usize = 6;
/// Rows of `dw` per weight-gradient tile.
const WG_MR: usize = 6;
/// Pixels per weight-gradient block: its dY rows stay in L1 (the AVX-512 kernels' block).
const WG_PIXELS: usize = 64;

// The weight gradient's tiles read at most WG_MR values past a run (see `with_source`).
const _: () = assert!(WG_MR <= WG_MR_MAX);

/// 16 filters' values.
type V16 = [__m256; 2];

#[target_feature(enable = "avx2,fma")]
fn load16(v: &[f32], f0: usize) -> V16 {
    let v = &v[f0..f0 + 16];
    // SAFETY: the slice above holds the 16 values read.
    unsafe {
        [
            _mm256_loadu_ps(v.as_ptr()),
            _mm256_loadu_ps(v.as_ptr().add(8)),
        ]
    }
}

/// The epilogue's vectors for the filters `f0..f0 + 16`.
struct Block {
    bias: Option<V16>,
    relu: bool,
    affine: Option<(V16, V16)>,
    /// A ReLU after the affine map (the tail), with the shortcut added
    /// first when `shortcut` is not null (`y`'s shape).
    tail_relu: bool,
    shortcut: *const f32,
}

impl Block {
    #[target_feature(enable = "avx2,fma")]
    fn new(e: Epilogue<'_>, f0: usize) -> Self {
        Block {
            bias: e.bias.map(|b| load16(b, f0)),
            relu: e.relu,
            affine: e.affine.map(|(s, t)| (load16(s, f0), load16(t, f0))),
            tail_relu: !matches!(e.tail, crate::conv::Tail::None),
            shortcut: e.tail.shortcut().map_or(std::ptr::null(), |s| s.as_ptr()),
        }
    }
}

/// `y[pixels, F] = x_col * W` by tiles of 6 pixels and 16 filters.
///
/// # Safety
/// AVX2 and FMA are available; `bases` point at receptive fields inside
/// `k.xp`, `w` is `[P, F]`, `y` is `[pixels, F]` and `mask`, when not null,
/// holds one `u16` per 16 values of `y`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward(
    k: &Kernel<'_>,
    bases: &[usize],
    w: &[f32],
    e: Epilogue<'_>,
    y: &mut [f32],
    mask: *mut u16,
) {
    for f0 in (0..k.f).step_by(16) {
        let block = Block::new(e, f0);
        let m = bases.len();
        let mut m0 = 0;
        while m0 < m {
            let rows = FWD_MR.min(m - m0);
            // A short last tile repeats its last pixel; only `rows` are stored.
            let mut tile = [0usize; FWD_MR];
            for (r, b) in tile.iter_mut().enumerate() {
                *b = bases[m0 + r.min(rows - 1)];
            }
            let at = m0 * k.f + f0;
            let tile_mask = if mask.is_null() {
                mask
            } else {
                unsafe { mask.add(at / 16) }
            };
            unsafe {
                forward_tile(
                    k,
                    &tile,
                    &block,
                    w.as_ptr().add(f0),
                    y.as_mut_ptr().add(at),
                    tile_mask,
                    rows,
                )
            };
            if block.tail_relu {
                unsafe { tail_rows(&block, y.as_mut_ptr().add(at), k.f, rows, at) };
            }
            m0 += FWD_MR;
        }
    }
}

/// `out[r, 0..16] = max(out[r, ..] + shortcut?, 0)` for `r < rows`, the
/// shortcut read at offset `at` of its output-shaped buffer.
#[target_feature(enable = "avx2,fma")]
unsafe fn tail_rows(block: &Block, out: *mut f32, f: usize, rows: usize, at: usize) {
    for r in 0..rows {
        for v in 0..2 {
            let o = r * f + 8 * v;
            let mut a = unsafe { _mm256_loadu_ps(out.add(o)) };
            if !block.shortcut.is_null() {
                a = _mm256_add_ps(a, unsafe { _mm256_loadu_ps(block.shortcut.add(at + o)) });
            }
            unsafe { _mm256_storeu_ps(out.add(o), _mm256_max_ps(_mm256_setzero_ps(), a)) };
        }
    }
}

/// `out[r, 0..16] = epilogue(sum_k xp[tile[r] + ky*row_stride + t] * w[k, 0..16])`
/// for `r < rows`, the sums held in 6 x 2 registers.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn forward_tile(
    k: &Kernel<'_>,
    tile: &[usize; FWD_MR],
    block: &Block,
    w: *const f32,
    out: *mut f32,
    mask: *mut u16,
    rows: usize,
) {
    let mut acc = [block.bias.unwrap_or([_mm256_setzero_ps(); 2]); FWD_MR];
    let mut wk = w;
    let xp = k.xp.as_ptr();
    for ky in 0..k.kh {
        let mut p = [xp; FWD_MR];
        for (pr, &base) in p.iter_mut().zip(tile) {
            *pr = unsafe { xp.add(base + ky * k.row_stride) };
        }
        for t in 0..k.run {
            let b = unsafe { [_mm256_loadu_ps(wk), _mm256_loadu_ps(wk.add(8))] };
            for (row, pr) in acc.iter_mut().zip(&p) {
                let a = _mm256_set1_ps(unsafe { *pr.add(t) });
                row[0] = _mm256_fmadd_ps(a, b[0], row[0]);
                row[1] = _mm256_fmadd_ps(a, b[1], row[1]);
            }
            wk = unsafe { wk.add(k.f) };
        }
    }
    for (r, row) in acc.iter().enumerate() {
        if r >= rows {
            break;
        }
        let mut bits = 0u16;
        for (v, a) in row.iter().enumerate() {
            let mut a = *a;
            if block.relu {
                // max(0, a) returns `a` unless 0 > a: NaN and -0.0 pass
                // through, as in `Activation::Relu`'s `if v < 0 { 0 }`.
                a = _mm256_max_ps(_mm256_setzero_ps(), a);
            }
            if let Some((scale, shift)) = &block.affine {
                a = _mm256_add_ps(_mm256_mul_ps(a, scale[v]), shift[v]);
            }
            unsafe { _mm256_storeu_ps(out.add(r * k.f + 8 * v), a) };
            // Bit j set where !(a[j] <= 0), NaN included (`SavedOutput::ReluMask`).
            let gt = _mm256_cmp_ps::<_CMP_NLE_UQ>(a, _mm256_setzero_ps());
            bits |= (_mm256_movemask_ps(gt) as u16) << (8 * v);
        }
        if !mask.is_null() {
            unsafe { *mask.add(r * k.f / 16) = bits };
        }
    }
}

/// `dw[P, F] += x_col^T * dy`, pixels in blocks of [`WG_PIXELS`].
///
/// # Safety
/// AVX2 and FMA are available; as [`forward`], and a tile may read up to
/// `WG_MR` values past a run shorter than it (the source then has that slack).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn backward_weight(k: &Kernel<'_>, bases: &[usize], dy: &[f32], dw: &mut [f32]) {
    for (bi, block) in bases.chunks(WG_PIXELS).enumerate() {
        let dyb = &dy[bi * WG_PIXELS * k.f..];
        for f0 in (0..k.f).step_by(16) {
            for ky in 0..k.kh {
                let mut t0 = 0;
                while t0 < k.run {
                    let rows = WG_MR.min(k.run - t0);
                    // A short last tile moves back to end where the run ends and
                    // stores only its own rows, so that it reads inside the run;
                    // a run shorter than the tile reads past it.
                    let (start, skip) = if rows < WG_MR && k.run >= WG_MR {
                        (k.run - WG_MR, WG_MR - rows)
                    } else {
                        (t0, 0)
                    };
                    unsafe {
                        backward_weight_tile(
                            k,
                            block,
                            ky * k.row_stride + start,
                            dyb.as_ptr().add(f0),
                            dw.as_mut_ptr().add((ky * k.run + start) * k.f + f0),
                            skip..skip + rows,
                        )
                    };
                    t0 += WG_MR;
                }
            }
        }
    }
}

/// `dw[r, 0..16] += sum_m xp[base_m + off + r] * dy[m, 0..16]` for `r` in
/// `store`, over the pixels of `block`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn backward_weight_tile(
    k: &Kernel<'_>,
    block: &[usize],
    off: usize,
    dy: *const f32,
    dw: *mut f32,
    store: std::ops::Range<usize>,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; WG_MR];
    let xp = unsafe { k.xp.as_ptr().add(off) };
    for (i, &base) in block.iter().enumerate() {
        let d = unsafe {
            [
                _mm256_loadu_ps(dy.add(i * k.f)),
                _mm256_loadu_ps(dy.add(i * k.f + 8)),
            ]
        };
        let px = unsafe { xp.add(base) };
        for (r, row) in acc.iter_mut().enumerate() {
            let a = _mm256_set1_ps(unsafe { *px.add(r) });
            row[0] = _mm256_fmadd_ps(a, d[0], row[0]);
            row[1] = _mm256_fmadd_ps(a, d[1], row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        if !store.contains(&r) {
            continue;
        }
        for (v, a) in row.iter().enumerate() {
            let dst = unsafe { dw.add(r * k.f + 8 * v) };
            unsafe { _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), *a)) };
        }
    }
}
