//! The machine's FMA peak, measured: every thread runs independent chains
//! of 512-bit fused multiply-adds (256-bit on CPUs without AVX-512) (12 accumulators, enough to cover the
//! FMA latency on two pipes) for a fixed count, and the FLOPs are divided by
//! the wall time. Benchmarks quote their speed as a share of it. The same
//! for AVX512-BF16's dot products, bf16 kernels' peak.

use rayon::prelude::*;
use std::time::Instant;

/// FMA iterations per thread and measurement.
const ITERS: usize = 20_000_000;

/// Best wall time of 3 runs (after a warm-up for clocks and thread start)
/// of `chains(seed)` on every rayon thread at once.
#[cfg(target_arch = "x86_64")]
fn best_time(chains: impl Fn(f32) -> f32 + Sync) -> f64 {
    let threads = rayon::current_num_threads();
    let run = || {
        let start = Instant::now();
        let sink: f32 = (0..threads).into_par_iter().map(|t| chains(t as f32)).sum();
        std::hint::black_box(sink);
        start.elapsed().as_secs_f64()
    };
    run();
    (0..3).map(|_| run()).fold(f64::INFINITY, f64::min)
}

/// GFLOP/s of fused multiply-adds on all rayon threads: 512-bit FMAs where
/// the CPU has AVX-512, else 256-bit ones (AVX2 + FMA, e.g. AMD Zen 3), or
/// `None` without either (then quote a GEMM rate instead).
pub fn fma_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let (best, lanes) = if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected above.
            (best_time(|t| unsafe { avx512::chains(ITERS, t) }), 16)
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA were detected above.
            (best_time(|t| unsafe { avx2::chains(ITERS, t) }), 8)
        } else {
            return None;
        };
        // 12 chains x lanes x 2 FLOP per iteration.
        Some((rayon::current_num_threads() * ITERS * 12 * lanes * 2) as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// GFLOP/s of AVX512-BF16 dot products (`vdpbf16ps`: 16 lanes x 2
/// multiply-adds each) on all rayon threads, or `None` when this CPU has no
/// AVX512-BF16: the peak that bf16 kernels are quoted against.
pub fn bf16_peak_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !crate::bf16::has_avx512_bf16() {
            return None;
        }
        // SAFETY: AVX512-BF16 was detected above.
        let best = best_time(|t| unsafe { avx512::dot_chains(ITERS, t) });
        // 12 chains x 16 lanes x 2 multiply-adds x 2 FLOP per iteration.
        Some((rayon::current_num_threads() * ITERS * 12 * 16 * 4) as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// The sum of every lane of the 12 chains, so that nothing is optimized away.
    #[target_feature(enable = "avx512f")]
    unsafe fn lane_sum(acc: [__m512; 12]) -> f32 {
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// `iters` rounds of 12 independent `acc = acc * a + b`; returns a lane sum
    /// so that nothing is optimized away.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn chains(iters: usize, seed: f32) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(seed); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        lane_sum(acc)
    }

    /// `iters` rounds of 12 independent `acc += a . b` bf16 pair dot
    /// products; returns a lane sum.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn dot_chains(iters: usize, seed: f32) -> f32 {
        let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-7), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(seed); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, a);
            }
        }
        lane_sum(acc)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `iters` rounds of 12 independent 256-bit `acc = acc * a + b`; returns
    /// a lane sum so that nothing is optimized away.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn chains(iters: usize, seed: f32) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(seed); 12];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut lanes = [0f32; 8];
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), s);
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peak_is_positive_where_measured() {
        if let Some(p) = super::fma_peak_gflops() {
            assert!(p > 1.0 && p.is_finite(), "{p}");
        }
        if let Some(p) = super::bf16_peak_gflops() {
            assert!(p > 1.0 && p.is_finite(), "{p}");
        }
    }
}
