//! Convolution backward in bf16 with fp32 sums (issue #30): the gradients
//! of a training step in mixed precision.
//!
//! The weight gradient is a product whose inner dimension is the pixels,
//! taken two at a time (a bf16 dot product sums pairs): the pixels of an
//! output row, (oy, 2i) and (oy, 2i + 1).
//!
//! ```text
//! xp [imgs, HP, WP + SW, C] bf16, zero-padded as the forward reads it (bf16_conv)
//! z[r, col, c] = xp[r, col, c] | xp[r, col + SW, c] << 16      (two columns SW apart, paired)
//! pair q = pixels (oy, 2i), (oy, 2i + 1); tap t = (ky, kx, c); P = KH*KW*C taps
//! A[q, t] = z[img, oy*SH + ky, 2i*SW + kx, c]                   (both pixels' inputs at tap t)
//! B[q, f] = dY[oy, 2i, f] | dY[oy, 2i + 1, f] << 16            (their output gradients)
//! dW[t, f] += sum_q pair(A[q, t]) . pair(B[q, f])   (q in order; the odd element first)
//! db[f]     = sum_m dY[m, f]                         (fp32, as in fp32 training)
//! ```
//!
//! Pairing columns once makes every pixel pair's receptive field a view of
//! `z` (no im2col): a register tile of 8 taps x 32 filters (16 x 16 for
//! narrow layers) broadcasts 8 pairs from `z` and loads 2 vectors of `B`
//! per pixel pair, over blocks of [`BLOCK`] pairs. A row with an odd width
//! pairs its last pixel with one of zero gradient. Tasks of [`IMGS`] images
//! give partial sums added in task order: the same bits for any thread
//! count, and on both paths (the portable loop adds in the same order).
//!
//! The input gradient of a stride-1 convolution is a stride-1 forward over
//! `dy` with flipped, transposed kernels (`implicit::backward_input_plan`),
//! which [`crate::bf16_conv`] computes on bf16 operands; a strided one is one
//! such forward per output phase (`strided_input`'s plan).

use crate::bf16::{self, Path};
use crate::bf16_conv::{self, Scratch};
use crate::Conv2dGeometry;
use rayon::prelude::*;

/// Images per task.
const IMGS: usize = 4;
/// Pixel pairs per block of `A` and `B`.
const BLOCK: usize = 128;

/// True when [`conv2d_backward_weight_bf16`] computes `g`'s weight
/// gradient: no dilation (any channel count).
pub fn handles_weight(g: &Conv2dGeometry) -> bool {
    g.c > 0 && g.f > 0 && g.dh == 1 && g.dw == 1
}

/// True when [`conv2d_backward_input_bf16`] computes `g`'s input gradient:
/// stride 1, no dilation, padding within the kernel, an even filter count
/// (the channels of the forward over `dy`), and no more than 1.3x the
/// forward's work (a 'valid' convolution's gradient sums over padding).
pub fn handles_input(g: &Conv2dGeometry) -> bool {
    g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.pad_top < g.kh
        && g.pad_left < g.kw
        && g.f.is_multiple_of(2)
        && g.c > 0
        && 10 * g.h * g.w <= 13 * g.oh * g.ow
}

/// True when [`conv2d_backward_input_strided_bf16`] computes `g`'s input
/// gradient: a stride above 1, no dilation, an even filter count.
pub fn handles_strided_input(g: &Conv2dGeometry) -> bool {
    (g.sh > 1 || g.sw > 1) && g.dh == 1 && g.dw == 1 && g.f.is_multiple_of(2) && g.c > 0
}

/// The input gradient of a strided convolution in bf16: one stride-1
/// bf16 forward per output phase (`strided_input`'s plan, its phases on
/// [`crate::bf16_conv`]); `dx` is overwritten. Requires
/// [`handles_strided_input`].
pub fn conv2d_backward_input_strided_bf16(
    path: Path,
    g: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    assert!(
        handles_strided_input(g),
        "conv2d_backward_input_strided_bf16: {g:?}"
    );
    assert_eq!(
        w.len(),
        g.weight_len(),
        "conv2d_backward_input_strided_bf16: w"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv2d_backward_input_strided_bf16: dy"
    );
    assert_eq!(
        dx.len(),
        g.input_len(),
        "conv2d_backward_input_strided_bf16: dx"
    );
    if g.n == 0 {
        return;
    }
    let plan = crate::strided_input::Plan::new_bf16(g, w, path);
    let (img_in, img_out) = (g.h * g.w * g.c, g.oh * g.ow * g.f);
    dx.par_chunks_mut(IMGS * img_in)
        .zip(dy.par_chunks(IMGS * img_out))
        .for_each(|(dx, dy)| plan.run(g, dy, dx.len() / img_in, dx));
}

/// `dx = conv_transpose(dy, w)` on bf16 operands with fp32 sums; `dx` is
/// overwritten. Requires [`handles_input`].
pub fn conv2d_backward_input_bf16(
    path: Path,
    g: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    assert!(handles_input(g), "conv2d_backward_input_bf16: {g:?}");
    assert_eq!(w.len(), g.weight_len(), "conv2d_backward_input_bf16: w");
    if g.n == 0 {
        return;
    }
    let (gt, wflip) = crate::implicit::backward_input_plan(g, w);
    let packed = bf16_conv::pack_weights(&gt, &wflip);
    bf16_conv::conv2d_forward_bf16(path, &gt, dy, &packed, None, dx);
}

/// `dw += X^T dY` and `db += sum dY` on bf16 operands with fp32 sums
/// (accumulates, as `conv::conv2d_backward_weight` does). Requires
/// [`handles_weight`].
pub fn conv2d_backward_weight_bf16(
    path: Path,
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    assert!(handles_weight(g), "conv2d_backward_weight_bf16: {g:?}");
    assert_eq!(x.len(), g.input_len(), "conv2d_backward_weight_bf16: x");
    assert_eq!(dy.len(), g.output_len(), "conv2d_backward_weight_bf16: dy");
    assert_eq!(dw.len(), g.weight_len(), "conv2d_backward_weight_bf16: dw");
    if g.n == 0 {
        return;
    }
    let path = if bf16::has_avx512_bf16() {
        path
    } else {
        Path::Portable
    };
    let with_bias = db.is_some();
    let (img_in, img_out) = (g.h * g.w * g.c, g.oh * g.ow * g.f);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
        .par_chunks(IMGS * img_out)
        .zip(x.par_chunks(IMGS * img_in))
        .map(|(dy, x)| {
            let mut part = vec![0.0; g.weight_len()];
            task(path, g, x, dy, &mut part);
            let mut bpart = Vec::new();
            if with_bias {
                bpart = vec![0.0; g.f];
                crate::conv::sum_rows(dy, &mut bpart);
            }
            (part, bpart)
        })
        .collect();
    crate::conv::sum_partials(&partials, dw, db);
}

/// The weight gradient of one task's images into `part [P, F]`.
fn task(path: Path, g: &Conv2dGeometry, x: &[f32], dy: &[f32], part: &mut [f32]) {
    let imgs = dy.len() / (g.oh * g.ow * g.f);
    let (hp, wp) = ((g.oh - 1) * g.sh + g.kh, (g.ow - 1) * g.sw + g.kw);
    let mut s = Scratch::take();
    // One more stride of zero columns: the partner of a row's last pixel
    // when OW is odd (a pixel with a zero gradient).
    bf16_conv::pad_bf16(g, x, imgs, hp, wp + g.sw, &mut s.xp);
    column_pairs(&s.xp, imgs * hp, wp, g.sw, g.c, &mut s.z);
    let row_pairs = g.ow.div_ceil(2);
    let pairs = imgs * g.oh * row_pairs;
    gradient_pairs(g, dy, row_pairs, &mut s.dyh, &mut s.b);
    // Where pair q's values start in z, and where tap t is from there.
    s.bases.clear();
    s.bases.extend((0..pairs).map(|q| {
        let (img, r) = (q / (g.oh * row_pairs), q % (g.oh * row_pairs));
        let (oy, i) = (r / row_pairs, r % row_pairs);
        ((img * hp + oy * g.sh) * wp + 2 * i * g.sw) * g.c
    }));
    let taps: Vec<usize> = (0..g.kh)
        .flat_map(|ky| (0..g.kw * g.c).map(move |t| ky * wp * g.c + t))
        .collect();
    // Narrow layers (16 filters or fewer) on AVX512-BF16: vectors of 16
    // taps against broadcast gradients, into the transposed sums.
    let narrow = path == Path::Avx512Bf16 && g.f <= 16 && g.kw * g.c >= 16;
    let mut part_t = if narrow {
        vec![0.0; part.len()]
    } else {
        Vec::new()
    };
    for first in (0..pairs).step_by(BLOCK) {
        let end = (first + BLOCK).min(pairs);
        let blk = Block {
            z: &s.z,
            bases: &s.bases[first..end],
            taps: &taps,
            b: &s.b[first * g.f..end * g.f],
            f: g.f,
        };
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller checked that the CPU has AVX512-BF16.
            Path::Avx512Bf16 if narrow => unsafe {
                avx512::block_narrow(&blk, g.kw * g.c, &mut part_t)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Path::Avx512Bf16 => unsafe { avx512::block(&blk, part) },
            _ => portable(&blk, part),
        }
    }
    if narrow {
        // part starts at zero: adding the same sums gives the same bits.
        let p = taps.len();
        for (t, row) in part.chunks_exact_mut(g.f).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v += part_t[j * p + t];
            }
        }
    }
    s.put_back();
}

/// `z[r, col, c] = xp[r, col, c] | xp[r, col + s, c] << 16` for the `rows`
/// rows of `xp` (each `wp + s` columns of `c` values), `col < wp`: the
/// values of two pixels `s` columns apart at every tap, so that pixel
/// pair (ox, ox + 1) reads its pairs at tap (ky, kx, c) from one place.
fn column_pairs(xp: &[u16], rows: usize, wp: usize, s: usize, c: usize, z: &mut Vec<u32>) {
    z.clear();
    z.resize(rows * wp * c, 0);
    for (zr, xr) in z
        .chunks_exact_mut(wp * c)
        .zip(xp.chunks_exact((wp + s) * c))
    {
        interleave(&xr[..wp * c], &xr[s * c..], zr);
    }
}

/// `b [pairs, F]`: the output gradients of pixels (oy, 2i) and (oy, 2i + 1)
/// as bf16 pairs (zero for the missing partner of an odd row); `dyh` holds
/// their bf16 copy.
fn gradient_pairs(
    g: &Conv2dGeometry,
    dy: &[f32],
    row_pairs: usize,
    dyh: &mut Vec<u16>,
    b: &mut Vec<u32>,
) {
    dyh.clear();
    dyh.resize(dy.len(), 0);
    bf16::convert(dy, dyh);
    let rows = dy.len() / (g.ow * g.f);
    b.clear();
    b.resize(rows * row_pairs * g.f, 0);
    for (src, out) in dyh
        .chunks_exact(g.ow * g.f)
        .zip(b.chunks_exact_mut(row_pairs * g.f))
    {
        for (i, o) in out.chunks_exact_mut(g.f).enumerate() {
            let lo = &src[2 * i * g.f..][..g.f];
            if 2 * i + 1 < g.ow {
                interleave(lo, &src[(2 * i + 1) * g.f..][..g.f], o);
            } else {
                for (o, &l) in o.iter_mut().zip(lo) {
                    *o = u32::from(l);
                }
            }
        }
    }
}

/// `out[t] = lo[t] | hi[t] << 16`.
#[inline]
fn interleave(lo: &[u16], hi: &[u16], out: &mut [u32]) {
    for ((o, &l), &h) in out.iter_mut().zip(lo).zip(hi) {
        *o = u32::from(l) | u32::from(h) << 16;
    }
}

/// One block of pixel pairs: pair `q`'s value at tap `t` is
/// `z[bases[q] + taps[t]]`, its output gradients `b[q * F..]`.
struct Block<'a> {
    z: &'a [u32],
    bases: &'a [usize],
    taps: &'a [usize],
    b: &'a [u32],
    f: usize,
}

/// `part[t, j] += sum_q pair(A[q, t]) . pair(B[q, j])`, q in order.
fn portable(blk: &Block<'_>, part: &mut [f32]) {
    for (t, &off) in blk.taps.iter().enumerate() {
        for j in 0..blk.f {
            let mut acc = part[t * blk.f + j];
            for (q, &base) in blk.bases.iter().enumerate() {
                acc = bf16::pair_step(acc, blk.z[base + off], blk.b[q * blk.f + j]);
            }
            part[t * blk.f + j] = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Block;
    use std::arch::x86_64::*;

    /// Taps per register tile: 8 with two vectors of filters, 16 with one.
    const MR2: usize = 8;
    const MR1: usize = 16;

    /// The block's contribution to every tap and filter: column blocks of
    /// 32 filters (then 16, then a masked tail), tiles of taps (then
    /// single taps).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block(blk: &Block<'_>, part: &mut [f32]) {
        let f = blk.f;
        let mut j = 0;
        while j + 32 <= f {
            tiles::<MR2, 2>(blk, part, j, 0xffff);
            j += 32;
        }
        while j < f {
            let left = (f - j).min(16);
            let mask = if left == 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            tiles::<MR1, 1>(blk, part, j, mask);
            j += 16;
        }
    }

    /// [`block`] for layers of at most 16 filters, transposed:
    /// `part_t[f, t]` (`[F, P]`) in tiles of 8 filters (then single ones)
    /// x 2 vectors of 16 consecutive taps of a `run` (then one); a vector
    /// past a run's end is masked.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block_narrow(blk: &Block<'_>, run: usize, part_t: &mut [f32]) {
        let p = blk.taps.len();
        // (tap index, lanes) of every vector: runs of `run` taps cut in 16s.
        let vecs: Vec<(usize, u16)> = (0..p / run)
            .flat_map(|ky| {
                (0..run.div_ceil(16)).map(move |u| {
                    let left = (run - 16 * u).min(16);
                    let mask = if left == 16 {
                        0xffff
                    } else {
                        (1u16 << left) - 1
                    };
                    (ky * run + 16 * u, mask)
                })
            })
            .collect();
        let mut j = 0;
        while j < blk.f {
            let mut v = 0;
            if j + 8 <= blk.f {
                while v + 2 <= vecs.len() {
                    narrow_tile::<8, 2>(blk, part_t, j, &vecs[v..v + 2]);
                    v += 2;
                }
                if v < vecs.len() {
                    narrow_tile::<8, 1>(blk, part_t, j, &vecs[v..v + 1]);
                }
                j += 8;
            } else {
                while v + 2 <= vecs.len() {
                    narrow_tile::<1, 2>(blk, part_t, j, &vecs[v..v + 2]);
                    v += 2;
                }
                if v < vecs.len() {
                    narrow_tile::<1, 1>(blk, part_t, j, &vecs[v..v + 1]);
                }
                j += 1;
            }
        }
    }

    /// `part_t[j..j+R, taps of V vectors] += B[:, j..j+R]^T . A[:, those taps]`.
    #[inline(always)]
    unsafe fn narrow_tile<const R: usize, const V: usize>(
        blk: &Block<'_>,
        part_t: &mut [f32],
        j: usize,
        vecs: &[(usize, u16)],
    ) {
        let (f, p) = (blk.f, blk.taps.len());
        let (zp, bp, cp) = (blk.z.as_ptr(), blk.b.as_ptr(), part_t.as_mut_ptr());
        let mut off = [0usize; V];
        let mut lanes = [0u16; V];
        for v in 0..V {
            off[v] = blk.taps[vecs[v].0];
            lanes[v] = vecs[v].1;
        }
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(lanes[v], cp.add((j + r) * p + vecs[v].0));
            }
        }
        for (q, &base) in blk.bases.iter().enumerate() {
            let mut av = [_mm512_setzero_si512(); V];
            for (v, x) in av.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_epi32(lanes[v], zp.add(base + off[v]) as *const i32);
            }
            let brow = bp.add(q * f + j);
            for (r, row) in acc.iter_mut().enumerate() {
                let bv: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(brow.add(r).read() as i32));
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_dpbf16_ps(*x, std::mem::transmute::<__m512i, __m512bh>(av[v]), bv);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(cp.add((j + r) * p + vecs[v].0), lanes[v], *x);
            }
        }
    }

    #[inline(always)]
    unsafe fn tiles<const R: usize, const V: usize>(
        blk: &Block<'_>,
        part: &mut [f32],
        j: usize,
        mask: u16,
    ) {
        let p = blk.taps.len();
        let mut t = 0;
        while t + R <= p {
            // Taps of one (ky, kx) run (C >= R): one pointer, fixed steps.
            if blk.taps[t + R - 1] == blk.taps[t] + R - 1 {
                tile::<R, V, true>(blk, part, t, j, mask);
            } else {
                tile::<R, V, false>(blk, part, t, j, mask);
            }
            t += R;
        }
        while t < p {
            tile::<1, V, true>(blk, part, t, j, mask);
            t += 1;
        }
    }

    /// `part[t..t+R, j..j+16V] += A[:, t..t+R]^T . B[:, j..]`, the sums in
    /// registers across the block; `RUN`: the taps are consecutive in `z`.
    #[inline(always)]
    unsafe fn tile<const R: usize, const V: usize, const RUN: bool>(
        blk: &Block<'_>,
        part: &mut [f32],
        t: usize,
        j: usize,
        mask: u16,
    ) {
        let f = blk.f;
        let (zp, bp, cp) = (blk.z.as_ptr(), blk.b.as_ptr(), part.as_mut_ptr());
        let lane_mask = |v: usize| if v + 1 == V { mask } else { 0xffff };
        let mut off = [0usize; R];
        off.copy_from_slice(&blk.taps[t..t + R]);
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(lane_mask(v), cp.add((t + r) * f + j + 16 * v));
            }
        }
        for (q, &base) in blk.bases.iter().enumerate() {
            let mut bv = [_mm512_setzero_si512(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                let at = bp.add(q * f + j + 16 * v) as *const i32;
                *x = _mm512_maskz_loadu_epi32(lane_mask(v), at);
            }
            let zq = zp.add(base);
            for (r, row) in acc.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(zq.add(off[r]).read() as i32));
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_dpbf16_ps(*x, av, std::mem::transmute::<__m512i, __m512bh>(bv[v]));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(cp.add((t + r) * f + j + 16 * v), lane_mask(v), *x);
            }
        }
    }
}
