//! The bf16 convolution gradients (`bf16_grad`) on every path against the
//! fp32 reference on bf16-rounded operands: weight gradient (pixel pairs,
//! blocks, tap tiles and their leftovers, 32- and 16-filter blocks and
//! masked tails, an odd pixel count, accumulation onto `dw`) and input
//! gradient (the forward over `dy` with flipped kernels, and for strided
//! convolutions one forward per output phase); the two paths
//! give the same bits, and so do 1 and 3 threads.

mod common;

use common::{padding, random};
use convnet_tensor::bf16::{self, Path};
use convnet_tensor::{bf16_grad, reference, Conv2dGeometry, Padding};
use proptest::prelude::*;

fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| bf16::round(x)).collect()
}

/// `|got - want| <= terms * 2^-22 * (1 + terms)`: fp32 sums of `terms`
/// products of values in [-1, 1], in some order.
fn agree(got: &[f32], want: &[f32], terms: usize, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    let t = terms as f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g - w).abs() <= 2.0 * t * f32::EPSILON * (1.0 + t),
            "{} at {}: {} vs {}",
            what,
            i,
            g,
            w
        );
    }
    Ok(())
}

fn weight_grad(path: Path, g: &Conv2dGeometry, x: &[f32], dy: &[f32], start: &[f32]) -> Vec<f32> {
    let mut dw = start.to_vec();
    let mut db = vec![0.5; g.f];
    bf16_grad::conv2d_backward_weight_bf16(path, g, x, dy, &mut dw, Some(&mut db));
    let want_db: Vec<f32> = (0..g.f)
        .map(|j| 0.5 + dy.iter().skip(j).step_by(g.f).sum::<f32>())
        .collect();
    for (a, b) in db.iter().zip(&want_db) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "db {a} vs {b}");
    }
    dw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn weight_gradient_matches_the_reference_on_rounded_operands(
        n in 1usize..7, h in 1usize..12, w in 1usize..12,
        c in prop_oneof![Just(1usize), Just(2), Just(3), Just(16), Just(18)],
        f in prop_oneof![Just(1usize), Just(16), Just(24), Just(32), Just(40)],
        kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..3,
        pad in padding(), seed: u64,
    ) {
        let g = match Conv2dGeometry::new([n, h, w, c], f, (kh, kw), (sh, sw), (1, 1), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        prop_assume!(bf16_grad::handles_weight(&g));
        let (x, dy) = (random(g.input_len(), seed), random(g.output_len(), seed ^ 1));
        let start = random(g.weight_len(), seed ^ 2);
        let (dw_ref, _) = reference::conv2d_backward_weight(&g, &rounded(&x), &rounded(&dy));
        let want: Vec<f32> = dw_ref.iter().zip(&start).map(|(d, s)| d + s).collect();
        let terms = n * g.oh * g.ow + 1;
        let fast = weight_grad(Path::Avx512Bf16, &g, &x, &dy, &start);
        let slow = weight_grad(Path::Portable, &g, &x, &dy, &start);
        agree(&fast, &want, terms, "avx512 dw")?;
        agree(&slow, &want, terms, "portable dw")?;
        // Same order of sums on both paths (no subnormals here).
        prop_assert!(fast.iter().zip(&slow).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn input_gradient_matches_the_reference_on_rounded_operands(
        n in 1usize..4, h in 2usize..10, w in 2usize..10,
        c in prop_oneof![Just(1usize), Just(3), Just(16), Just(24)],
        f in prop_oneof![Just(2usize), Just(16), Just(32), Just(34)],
        kh in 1usize..4, kw in 1usize..4,
        pad in prop_oneof![Just(Padding::Same), Just(Padding::Valid)], seed: u64,
    ) {
        let g = match Conv2dGeometry::new([n, h, w, c], f, (kh, kw), (1, 1), (1, 1), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        prop_assume!(bf16_grad::handles_input(&g));
        let (dy, wt) = (random(g.output_len(), seed), random(g.weight_len(), seed ^ 1));
        let want = reference::conv2d_backward_input(&g, &rounded(&dy), &rounded(&wt));
        let terms = kh * kw * f;
        for path in [Path::Avx512Bf16, Path::Portable] {
            let mut dx = vec![f32::NAN; g.input_len()];
            bf16_grad::conv2d_backward_input_bf16(path, &g, &dy, &wt, &mut dx);
            agree(&dx, &want, terms, &format!("{path:?} dx"))?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Strided convolutions: one bf16 forward per output phase.
    #[test]
    fn strided_input_gradient_matches_the_reference_on_rounded_operands(
        n in 1usize..6, h in 2usize..12, w in 2usize..12,
        c in prop_oneof![Just(1usize), Just(3), Just(16)],
        f in prop_oneof![Just(2usize), Just(16), Just(32)],
        kh in 1usize..6, kw in 1usize..6, sh in 1usize..4, sw in 2usize..4,
        pad in padding(), seed: u64,
    ) {
        let g = match Conv2dGeometry::new([n, h, w, c], f, (kh, kw), (sh, sw), (1, 1), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        prop_assume!(bf16_grad::handles_strided_input(&g));
        let (dy, wt) = (random(g.output_len(), seed), random(g.weight_len(), seed ^ 1));
        let want = reference::conv2d_backward_input(&g, &rounded(&dy), &rounded(&wt));
        let terms = kh * kw * f;
        for path in [Path::Avx512Bf16, Path::Portable] {
            let mut dx = vec![f32::NAN; g.input_len()];
            bf16_grad::conv2d_backward_input_strided_bf16(path, &g, &dy, &wt, &mut dx);
            agree(&dx, &want, terms, &format!("{path:?} strided dx"))?;
        }
    }
}

/// The weight gradient is bf16's, not fp32's: on operands that bf16
/// rounds, it differs from the fp32 kernel's and equals the reference on
/// the rounded operands.
#[test]
fn the_weight_gradient_rounds_its_operands() {
    let g = Conv2dGeometry::new([2, 4, 4, 2], 16, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
    let x = vec![1.0 + 1.0 / 512.0; g.input_len()];
    let dy = vec![1.0; g.output_len()];
    let mut dw = vec![0.0; g.weight_len()];
    bf16_grad::conv2d_backward_weight_bf16(bf16::path(), &g, &x, &dy, &mut dw, None);
    let (want, _) = reference::conv2d_backward_weight(&g, &rounded(&x), &dy);
    assert_eq!(dw, want, "sums of ones are exact");
    let (fp32, _) = reference::conv2d_backward_weight(&g, &x, &dy);
    assert_ne!(dw, fp32);
}

#[test]
fn the_same_bits_for_1_and_3_threads() {
    let g = Conv2dGeometry::new([37, 9, 9, 16], 32, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
    let (x, dy, wt) = (
        random(g.input_len(), 1),
        random(g.output_len(), 2),
        random(g.weight_len(), 3),
    );
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut dw = vec![0.0; g.weight_len()];
                let mut db = vec![0.0; g.f];
                let path = bf16::path();
                bf16_grad::conv2d_backward_weight_bf16(path, &g, &x, &dy, &mut dw, Some(&mut db));
                let mut dx = vec![0.0; g.input_len()];
                bf16_grad::conv2d_backward_input_bf16(path, &g, &dy, &wt, &mut dx);
                (dw, db, dx)
            })
    };
    let (one, three) = (on(1), on(3));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one.0), bits(&three.0));
    assert_eq!(bits(&one.1), bits(&three.1));
    assert_eq!(bits(&one.2), bits(&three.2));
}
