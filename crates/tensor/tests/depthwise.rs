//! The depthwise kernels against the slow reference over random shapes,
//! multipliers, strides, dilations and paddings (channels through the
//! 64- and 16-wide register blocks and the rest), on both builds of the loops
//! (AVX-512 where the CPU has it, and the portable one forced), and the same
//! bits for 1 and 3 threads.

mod common;

use common::{close, padding, random};
use convnet_tensor::depthwise::{self, DepthwiseGeometry};
use convnet_tensor::{reference, Padding};
use proptest::prelude::*;

type Grads = [Vec<f32>; 4];

/// Forward (with bias), input gradient, weight and bias gradients
/// (accumulated onto ones).
fn run(g: &DepthwiseGeometry, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> Grads {
    let mut y = vec![0.0; g.output_len()];
    depthwise::depthwise_forward(g, x, w, Some(b), &mut y);
    let mut dx = vec![7.0; g.input_len()];
    depthwise::depthwise_backward_input(g, dy, w, &mut dx);
    let mut dw = vec![1.0; g.weight_len()];
    let mut db = vec![1.0; g.conv.f];
    depthwise::depthwise_backward_weight(g, x, dy, &mut dw, Some(&mut db));
    [y, dx, dw, db]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn depthwise_matches_reference(
        n in 1usize..7, h in 1usize..10, w in 1usize..10,
        c in prop_oneof![Just(1usize), Just(3), Just(16), Just(21), Just(80), Just(100)],
        m in 1usize..4, kh in 1usize..5, kw in 1usize..5, sh in 1usize..3, sw in 1usize..3,
        dh in 1usize..3, dw in 1usize..3, pad in padding(), vector: bool, wide: bool, seed: u64,
    ) {
        let g = match DepthwiseGeometry::new([n, h, w, c], m, (kh, kw), (sh, sw), (dh, dw), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()), // input smaller than the window with 'valid'
        };
        let x = random(g.input_len(), seed);
        let wt = random(g.weight_len(), seed ^ 1);
        let b = random(g.conv.f, seed ^ 2);
        let dy = random(g.output_len(), seed ^ 3);
        depthwise::set_vector(vector);
        depthwise::set_avx512(wide);
        let [y, dx, dwt, db] = run(&g, &x, &wt, &b, &dy);
        depthwise::set_vector(true);
        depthwise::set_avx512(true);
        close(&y, &reference::depthwise_forward(&g, &x, &wt, Some(&b)), "forward")?;
        close(&dx, &reference::depthwise_backward_input(&g, &dy, &wt), "backward input")?;
        let (rdw, rdb) = reference::depthwise_backward_weight(&g, &x, &dy);
        let plus_one = |v: Vec<f32>| v.iter().map(|v| v + 1.0).collect::<Vec<_>>();
        close(&dwt, &plus_one(rdw), "backward weight")?;
        close(&db, &plus_one(rdb), "backward bias")?;
    }
}

#[test]
fn depthwise_gives_the_same_bits_on_1_and_3_threads() {
    let g =
        DepthwiseGeometry::new([13, 9, 8, 24], 2, (3, 3), (2, 2), (1, 1), Padding::Same).unwrap();
    let x = random(g.input_len(), 1);
    let w = random(g.weight_len(), 2);
    let b = random(g.conv.f, 3);
    let dy = random(g.output_len(), 4);
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| run(&g, &x, &w, &b, &dy))
    };
    let (one, three) = (on(1), on(3));
    for (a, b) in one.iter().zip(&three) {
        assert!(a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

/// The register-blocked paths (multiplier 1; 3x3 and 5x5 windows; whole
/// 16-channel blocks and a tail) on every build, for every stride and
/// padding they meet in MobileNet and EfficientNet.
#[test]
fn blocked_windows_match_reference() {
    for (k, s, pad, c) in [
        (3, 1, Padding::Same, 16),
        (3, 2, Padding::Same, 40),
        (5, 1, Padding::Same, 40),
        (5, 2, Padding::Valid, 80),
        (3, 1, Padding::Explicit([1, 0, 0, 1]), 100),
    ] {
        let g = DepthwiseGeometry::new([3, 11, 9, c], 1, (k, k), (s, s), (1, 1), pad).unwrap();
        let x = random(g.input_len(), 5);
        let w = random(g.weight_len(), 6);
        let b = random(c, 7);
        let dy = random(g.output_len(), 8);
        // The CPU's best build, AVX2 at most, portable.
        for (vector, wide) in [(true, true), (true, false), (false, true)] {
            depthwise::set_vector(vector);
            depthwise::set_avx512(wide);
            let [y, dx, dw, db] = run(&g, &x, &w, &b, &dy);
            depthwise::set_vector(true);
            depthwise::set_avx512(true);
            let what = format!("{k}x{k} stride {s} {pad:?} C {c} vector {vector} avx512 {wide}");
            let plus_one = |v: Vec<f32>| v.iter().map(|v| v + 1.0).collect::<Vec<_>>();
            let (rdw, rdb) = reference::depthwise_backward_weight(&g, &x, &dy);
            let checks = [
                (
                    y,
                    reference::depthwise_forward(&g, &x, &w, Some(&b)),
                    "forward",
                ),
                (
                    dx,
                    reference::depthwise_backward_input(&g, &dy, &w),
                    "input gradient",
                ),
                (dw, plus_one(rdw), "weight gradient"),
                (db, plus_one(rdb), "bias gradient"),
            ];
            for (got, want, part) in checks {
                if let Err(e) = close(&got, &want, part) {
                    panic!("{what}: {e}");
                }
            }
        }
    }
}
