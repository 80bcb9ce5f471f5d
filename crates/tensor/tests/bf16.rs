//! The bf16 matrix product on every path (AVX512-BF16 where the CPU has
//! it, the portable loop on every CPU) against an f64 reference on the
//! bf16-rounded operands: they agree to fp32 accumulation-order error.
//! Shapes cover row tiles and their leftovers, 32- and 16-column blocks
//! and masked tails, odd inner sizes (a zero pad), and accumulation onto C.

mod common;

use common::random;
use convnet_tensor::bf16::{self, Path};
use proptest::prelude::*;

/// `C + A . B` in f64 on the rounded operands, and the error bound of an
/// fp32 sum of those terms: `terms * 2^-23 * (|C| + sum |a b|)`.
fn reference(a: &[f32], b: &[f32], c: &[f32], m: usize, k: usize, n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let mut s = f64::from(c[i * n + j]);
            let mut mag = s.abs();
            for p in 0..k {
                let t = f64::from(bf16::round(a[i * k + p])) * f64::from(bf16::round(b[p * n + j]));
                s += t;
                mag += t.abs();
            }
            out.push((
                s,
                (k + 1) as f64 * f64::EPSILON.max(2f64.powi(-23)) * mag + 1e-30,
            ));
        }
    }
    out
}

fn run(path: Path, a: &[f32], b: &[f32], c: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut out = c.to_vec();
    let (pa, pb) = (bf16::pack_a(a, m, k), bf16::pack_b(b, k, n));
    bf16::gemm_on(path, &pa, &pb, &mut out, m, k, n);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_path_matches_the_reference_on_rounded_operands(
        m in 1usize..40, k in 1usize..70, n in 1usize..80, seed: u64,
    ) {
        let (a, b, c) = (random(m * k, seed), random(k * n, seed ^ 1), random(m * n, seed ^ 2));
        let want = reference(&a, &b, &c, m, k, n);
        for path in [Path::Avx512Bf16, Path::Portable] {
            let got = run(path, &a, &b, &c, m, k, n);
            for (idx, (g, (w, tol))) in got.iter().zip(&want).enumerate() {
                prop_assert!(
                    (f64::from(*g) - w).abs() <= *tol,
                    "{path:?} {m}x{k}x{n} at {idx}: {g} vs {w} (tolerance {tol:e})"
                );
            }
        }
    }
}

#[test]
fn the_product_is_bf16s_not_fp32s() {
    // 1 + 2^-8 rounds to 1 in bf16: the product sees 1, not 1.0039.
    let a = [1.0 + 1.0 / 256.0; 2];
    let b = [1.0f32; 2];
    for path in [Path::Avx512Bf16, Path::Portable] {
        let got = run(path, &a, &b, &[0.0], 1, 2, 1);
        assert_eq!(got, [2.0], "{path:?}");
    }
}

#[test]
fn the_same_bits_for_1_and_3_threads() {
    let (m, k, n) = (70, 45, 50);
    let (a, b) = (random(m * k, 5), random(k * n, 6));
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run(Path::Avx512Bf16, &a, &b, &vec![0.0; m * n], m, k, n))
    };
    let (one, three) = (on(1), on(3));
    assert!(one
        .iter()
        .zip(&three)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn forcing_the_portable_path_is_seen_by_gemm() {
    bf16::set_path(Some(Path::Portable));
    assert_eq!(bf16::path(), Path::Portable);
    bf16::set_path(None);
    let detected = if bf16::has_avx512_bf16() {
        Path::Avx512Bf16
    } else {
        Path::Portable
    };
    assert_eq!(bf16::path(), detected);
}

mod conv {
    use super::common::{padding, random};
    use convnet_tensor::bf16::{self, Path};
    use convnet_tensor::{bf16_conv, reference, Conv2dGeometry};
    use proptest::prelude::*;

    fn rounded(v: &[f32]) -> Vec<f32> {
        v.iter().map(|&x| bf16::round(x)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// The bf16 convolution on every path against the fp32 reference
        /// on bf16-rounded operands: equal to accumulation-order error
        /// (at most K = KH*KW*C terms of size up to 1, sums up to ~K).
        #[test]
        fn conv_forward_matches_the_reference_on_rounded_operands(
            n in 1usize..4, h in 1usize..9, w in 1usize..9,
            c in prop_oneof![Just(2usize), Just(4), Just(16), Just(18)],
            f in prop_oneof![Just(1usize), Just(16), Just(24), Just(32), Just(40)],
            kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..3,
            pad in padding(), seed: u64,
        ) {
            let g = match Conv2dGeometry::new([n, h, w, c], f, (kh, kw), (sh, sw), (1, 1), pad) {
                Ok(g) => g,
                Err(_) => return Ok(()),
            };
            let (x, wt, b) = (random(g.input_len(), seed), random(g.weight_len(), seed ^ 1), random(f, seed ^ 2));
            let want = reference::conv2d_forward(&g, &rounded(&x), &rounded(&wt), Some(&b));
            let k = (kh * kw * c) as f32;
            let packed = bf16_conv::pack_weights(&g, &wt);
            for path in [Path::Avx512Bf16, Path::Portable] {
                let mut y = vec![f32::NAN; g.output_len()];
                bf16_conv::conv2d_forward_bf16(path, &g, &x, &packed, Some(&b), &mut y);
                for (i, (got, want)) in y.iter().zip(&want).enumerate() {
                    prop_assert!(
                        (got - want).abs() <= 4.0 * k * f32::EPSILON * (1.0 + k),
                        "{path:?} {g:?} at {i}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn odd_channel_counts_stay_in_fp32() {
        let g = Conv2dGeometry::new(
            [1, 5, 5, 3],
            8,
            (3, 3),
            (1, 1),
            (1, 1),
            convnet_tensor::Padding::Same,
        )
        .unwrap();
        assert!(!bf16_conv::handles(&g));
    }
}
