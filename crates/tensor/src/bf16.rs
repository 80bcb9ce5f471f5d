//! bf16 matrix products with fp32 accumulation: the CPU's bf16 dot-product
//! hardware (AVX512-BF16's `vdpbf16ps`) behind one entry point, a portable
//! loop that computes the same sums, and the conversions.
//!
//! ```text
//! bf16: the top 16 bits of an f32 (sign, 8-bit exponent, 7-bit mantissa),
//!       rounded to nearest even from f32 (as vcvtne2ps2bf16 does)
//! A [M, K] row-major bf16, rows padded to an even length KP (a zero last column when K is odd)
//! B packed as pairs [KP/2, N]: u32 p of column j = B[2p, j] | B[2p+1, j] << 16
//! C [M, N] f32:   C[i, j] += sum_p A[i, 2p+1] * B[2p+1, j] then + A[i, 2p] * B[2p, j]
//! ```
//!
//! Each product of two bf16 values is exact in f32 (8 + 8 significant
//! bits), so a pair step is two f32 additions, each rounded once, in the
//! order Intel documents for `vdpbf16ps` (the odd element first). The
//! portable loop does exactly that; the hardware flushes subnormals to zero,
//! so the two agree to the bit on normal numbers, and the tests compare both
//! with an f64 reference on the rounded operands.
//!
//! [`path`] says which kernel runs: AVX512-BF16 where the CPU has it, else
//! the portable loop (correct but slow: callers should stay in fp32 and say
//! so). AMX (`amx_bf16`) is detected and reported; its tile kernels are not
//! written yet, so AMX machines run the AVX512-BF16 path, which they also
//! have. [`set_path`] forces a path, for tests and benchmarks.

use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits. NaN stays
/// a (quiet) NaN; infinities and overflow to infinity, and a subnormal `x`
/// becomes a zero of its sign, as AVX512-BF16's `vcvtneps2bf16` does.
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if x.is_subnormal() {
        return ((b >> 16) & 0x8000) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// `dst[i] = to_bf16(src[i])`, 16 at a time with AVX512-BF16's
/// `vcvtneps2bf16` where the CPU has it (the same results: to nearest
/// even, subnormals to zero, NaN stays NaN).
pub fn convert(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "bf16::convert");
    #[cfg(target_arch = "x86_64")]
    if has_avx512_bf16() {
        // SAFETY: AVX512-BF16 was detected.
        return unsafe { avx512::convert(src, dst) };
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = to_bf16(s);
    }
}

/// The f32 that a bf16 value stands for (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to bf16 and back: what a bf16 operand holds.
pub fn round(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// Which bf16 kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// AVX512-BF16 dot products (`vdpbf16ps`), 16 lanes.
    Avx512Bf16,
    /// The portable loop (no bf16 hardware, or forced).
    Portable,
}

impl Path {
    /// Its name in benchmark output.
    pub fn name(&self) -> &'static str {
        match self {
            Path::Avx512Bf16 => "avx512-bf16",
            Path::Portable => "portable",
        }
    }
}

/// 0: detect; 1: AVX512-BF16; 2: portable.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Forces a path (`None`: detect again). Forcing AVX512-BF16 on a CPU
/// without it falls back to the portable loop.
pub fn set_path(p: Option<Path>) {
    let v = match p {
        None => 0,
        Some(Path::Avx512Bf16) => 1,
        Some(Path::Portable) => 2,
    };
    FORCED.store(v, Ordering::Relaxed);
}

/// True when this CPU has AVX512-BF16 (and AVX-512F).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True when this CPU has AMX bf16 tiles (reported; not used yet).
pub fn has_amx_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 7, sub-leaf 0: EDX bit 22 is AMX-BF16 (std's
        // detection of it is not stable Rust yet).
        let r = std::arch::x86_64::__cpuid_count(7, 0);
        r.edx & (1 << 22) != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernel [`gemm`] runs now.
pub fn path() -> Path {
    match FORCED.load(Ordering::Relaxed) {
        2 => Path::Portable,
        _ if has_avx512_bf16() => Path::Avx512Bf16,
        _ => Path::Portable,
    }
}

/// `K` rounded up to even: the row length of a packed `A`.
pub fn padded_k(k: usize) -> usize {
    k + (k & 1)
}

/// Packs a row-major f32 `[M, K]` as bf16 rows of [`padded_k`] values.
pub fn pack_a(a: &[f32], m: usize, k: usize) -> Vec<u16> {
    assert_eq!(a.len(), m * k, "pack_a: a");
    let kp = padded_k(k);
    let mut out = vec![0u16; m * kp];
    for (o, r) in out.chunks_exact_mut(kp).zip(a.chunks_exact(k.max(1))) {
        for (o, &v) in o.iter_mut().zip(r) {
            *o = to_bf16(v);
        }
    }
    out
}

/// Packs a row-major f32 `[K, N]` as bf16 pairs `[KP/2, N]` (see the
/// module docs; the missing row of an odd `K` is zero).
pub fn pack_b(b: &[f32], k: usize, n: usize) -> Vec<u32> {
    assert_eq!(b.len(), k * n, "pack_b: b");
    let pairs = padded_k(k) / 2;
    let mut out = vec![0u32; pairs * n];
    for p in 0..pairs {
        for j in 0..n {
            let lo = u32::from(to_bf16(b[2 * p * n + j]));
            let hi = if 2 * p + 1 < k {
                u32::from(to_bf16(b[(2 * p + 1) * n + j]))
            } else {
                0
            };
            out[p * n + j] = lo | hi << 16;
        }
    }
    out
}

/// Rows of `C` per task: a multiple of the kernel's row tile.
const ROWS_PER_TASK: usize = 32;

/// `C[M, N] += A[M, KP] . B` with `a` from [`pack_a`] and `b` from
/// [`pack_b`] (`k` the unpadded inner size); rows of `C` in parallel. The
/// same bits for any thread count.
pub fn gemm(a: &[u16], b: &[u32], c: &mut [f32], m: usize, k: usize, n: usize) {
    gemm_on(path(), a, b, c, m, k, n)
}

/// [`gemm`] on a given path (AVX512-BF16 falls back to the portable loop
/// where the CPU lacks it), for tests that must not race on [`set_path`].
pub fn gemm_on(path: Path, a: &[u16], b: &[u32], c: &mut [f32], m: usize, k: usize, n: usize) {
    let path = if has_avx512_bf16() {
        path
    } else {
        Path::Portable
    };
    let kp = padded_k(k);
    assert_eq!(a.len(), m * kp, "bf16 gemm: a");
    assert_eq!(b.len(), kp / 2 * n, "bf16 gemm: b");
    assert_eq!(c.len(), m * n, "bf16 gemm: c");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    c.par_chunks_mut(ROWS_PER_TASK * n)
        .zip(a.par_chunks(ROWS_PER_TASK * kp))
        .for_each(|(c, a)| {
            let rows = c.len() / n;
            match path {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `path` returns Avx512Bf16 only where the CPU has it.
                Path::Avx512Bf16 => unsafe { avx512::rows(a, b, c, rows, kp, n) },
                _ => portable_rows(a, b, c, rows, kp, n),
            }
        });
}

/// One pair step: `acc + a1*b1 + a0*b0`, each sum rounded once.
#[inline(always)]
pub(crate) fn pair_step(acc: f32, a: u32, b: u32) -> f32 {
    let (a0, a1) = (from_bf16(a as u16), from_bf16((a >> 16) as u16));
    let (b0, b1) = (from_bf16(b as u16), from_bf16((b >> 16) as u16));
    (acc + a1 * b1) + a0 * b0
}

/// The portable kernel: the sums of the module docs, element by element.
fn portable_rows(a: &[u16], b: &[u32], c: &mut [f32], rows: usize, kp: usize, n: usize) {
    for i in 0..rows {
        let ar = &a[i * kp..(i + 1) * kp];
        for j in 0..n {
            let mut acc = c[i * n + j];
            for (p, pair) in ar.chunks_exact(2).enumerate() {
                let av = u32::from(pair[0]) | u32::from(pair[1]) << 16;
                acc = pair_step(acc, av, b[p * n + j]);
            }
            c[i * n + j] = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Rows of `C` per register tile.
    const MR: usize = 8;

    /// [`super::convert`]: 16 values per `vcvtneps2bf16`, then the tail.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn convert(src: &[f32], dst: &mut [u16]) {
        let whole = src.len() / 16 * 16;
        for (s, d) in src[..whole].chunks_exact(16).zip(dst.chunks_exact_mut(16)) {
            let v = _mm512_cvtneps_pbh(_mm512_loadu_ps(s.as_ptr()));
            _mm256_storeu_si256(
                d.as_mut_ptr() as *mut __m256i,
                std::mem::transmute::<__m256bh, __m256i>(v),
            );
        }
        for (d, &s) in dst[whole..].iter_mut().zip(&src[whole..]) {
            *d = super::to_bf16(s);
        }
    }

    /// `C[rows, N] += A . B`: column blocks of 32 (two zmm per row, 16
    /// accumulators in tiles of `MR` rows), then 16, then a masked tail;
    /// for each block every row tile of the task passes while the block's
    /// panel of B stays in L2.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn rows(
        a: &[u16],
        b: &[u32],
        c: &mut [f32],
        rows: usize,
        kp: usize,
        n: usize,
    ) {
        let mut j = 0;
        while j + 32 <= n {
            row_tiles::<2>(a, b, c, rows, j, kp, n, 0xffff);
            j += 32;
        }
        while j < n {
            let left = (n - j).min(16);
            let mask = if left == 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            row_tiles::<1>(a, b, c, rows, j, kp, n, mask);
            j += 16;
        }
    }

    /// Every row of the task for the column block at `j`: tiles of `MR`
    /// rows, then single rows.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn row_tiles<const V: usize>(
        a: &[u16],
        b: &[u32],
        c: &mut [f32],
        rows: usize,
        j: usize,
        kp: usize,
        n: usize,
        mask: u16,
    ) {
        let mut i = 0;
        while i + MR <= rows {
            tile::<MR, V>(a, b, c, i, j, kp, n, mask);
            i += MR;
        }
        while i < rows {
            tile::<1, V>(a, b, c, i, j, kp, n, mask);
            i += 1;
        }
    }

    /// `C[i..i+R, j..j+16*V] += A[i..i+R, :] . B[:, j..]`, the sums in
    /// registers across all of K; `mask` selects the last vector's columns.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const V: usize>(
        a: &[u16],
        b: &[u32],
        c: &mut [f32],
        i: usize,
        j: usize,
        kp: usize,
        n: usize,
        mask: u16,
    ) {
        let pairs = kp / 2;
        let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let lane_mask = |v: usize| if v + 1 == V { mask } else { 0xffff };
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(lane_mask(v), cp.add((i + r) * n + j + 16 * v));
            }
        }
        for p in 0..pairs {
            let mut bv = [_mm512_setzero_si512(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                let at = bp.add(p * n + j + 16 * v) as *const i32;
                *x = _mm512_maskz_loadu_epi32(lane_mask(v), at);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let pair = (ap.add((i + r) * kp + 2 * p) as *const i32).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_dpbf16_ps(*x, av, std::mem::transmute::<__m512i, __m512bh>(bv[v]));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(cp.add((i + r) * n + j + 16 * v), lane_mask(v), *x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(round(1.0 + 1.0 / 256.0), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to 1 + 2^-6.
        assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 1.0 / 64.0);
        assert_eq!(round(1.0 + 1.0 / 128.0 + 1e-4), 1.0 + 1.0 / 128.0);
        assert_eq!(round(-2.5), -2.5);
        assert!(round(f32::NAN).is_nan());
        assert_eq!(round(f32::INFINITY), f32::INFINITY);
        assert_eq!(round(f32::MAX), f32::INFINITY);
        assert_eq!(to_bf16(1.0), 0x3f80);
    }

    #[test]
    fn the_vector_conversion_rounds_as_the_scalar_one() {
        // Ties, signs, subnormals (flushed to zero), huge values, a tail of 5.
        let src: Vec<f32> = (0..37)
            .map(|i| {
                let tie = 1.0 + (2 * (i % 4) + 1) as f32 / 256.0;
                [tie, -tie * 3.0, 1e-39 * i as f32, 3e38, 0.1 * i as f32][i % 5]
            })
            .collect();
        let mut fast = vec![0u16; src.len()];
        convert(&src, &mut fast);
        let slow: Vec<u16> = src.iter().map(|&v| to_bf16(v)).collect();
        assert_eq!(fast, slow);
    }

    #[test]
    fn packing_pairs_consecutive_rows_of_b() {
        // K = 3 (odd): pairs (rows 0, 1) and (row 2, zero).
        let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = pack_b(&b, 3, 2);
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[1],
            u32::from(to_bf16(2.0)) | u32::from(to_bf16(4.0)) << 16
        );
        assert_eq!(p[2], u32::from(to_bf16(5.0)));
        let a = pack_a(&[1.0, 2.0, 3.0], 1, 3);
        assert_eq!(a, [to_bf16(1.0), to_bf16(2.0), to_bf16(3.0), 0]);
    }
}
