//! The inference forward (`conv2d_forward_inference`) against the reference
//! convolution: Winograd F(2x2, 3x3) (3x3, stride 1, 32+ channels) and the
//! implicit-GEMM kernels (16 channels, or stride 2), with the epilogue
//! (bias, ReLU, an inference batch norm's affine map) and the tail (a ReLU,
//! or a residual sum and ReLU), over paddings, odd sizes (tiles cut at the
//! edge), whole-image units and bands of tile rows; the same bits for any
//! thread count; and the switch that sends inference back to the direct
//! kernels.

mod common;

use common::{close, random};
use convnet_tensor::activation::Activation;
use convnet_tensor::conv::Tail;
use convnet_tensor::{conv, reference, winograd, Conv2dGeometry, Padding, Precision};
use proptest::prelude::*;

/// The reference with `relu?(.) * scale + shift`, then the tail, applied.
fn expected(
    g: &Conv2dGeometry,
    (x, w, b): (&[f32], &[f32], &[f32]),
    relu: bool,
    (scale, shift): (&[f32], &[f32]),
    tail: Tail<'_>,
) -> Vec<f32> {
    let f = g.f;
    reference::conv2d_forward(g, x, w, Some(b))
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let v = (if relu { v.max(0.0) } else { v }) * scale[i % f] + shift[i % f];
            match tail {
                Tail::None => v,
                Tail::Relu => v.max(0.0),
                Tail::AddRelu(s) => (v + s[i]).max(0.0),
            }
        })
        .collect()
}

fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inference_matches_reference(
        n in 1usize..4, h in 1usize..13, w in 1usize..13,
        c in prop_oneof![Just(16usize), Just(32), Just(48), Just(64)],
        f in prop_oneof![Just(16usize), Just(32), Just(64)],
        stride in 1usize..3,
        pad in prop_oneof![
            Just(Padding::Valid),
            Just(Padding::Same),
            (0usize..3, 0usize..3, 0usize..3, 0usize..3)
                .prop_map(|(t, b, l, r)| Padding::Explicit([t, b, l, r])),
        ],
        relu: bool, tail in 0usize..3, seed: u64,
    ) {
        let g = match Conv2dGeometry::new([n, h, w, c], f, (3, 3), (stride, stride), (1, 1), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        let x = random(g.input_len(), seed);
        let wt = random(g.weight_len(), seed ^ 1);
        let b = random(f, seed ^ 2);
        let (scale, shift) = (random(f, seed ^ 4), random(f, seed ^ 5));
        let shortcut = random(g.output_len(), seed ^ 6);
        let tail = [Tail::None, Tail::Relu, Tail::AddRelu(&shortcut)][tail];
        let act = if relu { Activation::Relu } else { Activation::Linear };
        let mut y = vec![f32::NAN; g.output_len()];
        conv::conv2d_forward_inference(
            &g, &x, &wt, Some(&b), act, Some((&scale, &shift)), tail, Precision::Fp32, &mut y,
        );
        let want = expected(&g, (&x, &wt, &b), relu, (&scale, &shift), tail);
        close(&y, &want, "inference forward")?;
    }
}

/// Large images take bands of tile rows (several per image); the result,
/// residual tail included, matches the reference and does not depend on
/// the thread count.
#[test]
fn bands_of_large_images_match_and_are_bit_identical_across_threads() {
    let g =
        Conv2dGeometry::new([2, 67, 45, 32], 32, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
    let x = random(g.input_len(), 1);
    let wt = random(g.weight_len(), 2);
    let b = random(g.f, 3);
    let shortcut = random(g.output_len(), 4);
    let ones = vec![1.0; g.f];
    let zeros = vec![0.0; g.f];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut y = vec![0.0; g.output_len()];
        pool.install(|| {
            conv::conv2d_forward_inference(
                &g,
                &x,
                &wt,
                Some(&b),
                Activation::Linear,
                Some((&ones, &zeros)),
                Tail::AddRelu(&shortcut),
                Precision::Fp32,
                &mut y,
            )
        });
        y
    };
    let y1 = run(1);
    assert_eq!(y1, run(3), "1 and 3 threads");
    let want = expected(
        &g,
        (&x, &wt, &b),
        false,
        (&ones, &zeros),
        Tail::AddRelu(&shortcut),
    );
    assert!(
        close(&y1, &want, "bands").is_ok(),
        "bands differ from the reference"
    );
}

/// The switch: with Winograd off, inference is the direct kernels' bits;
/// with it on (on an AVX-512 machine) it is not (the test would pass
/// vacuously if Winograd were never taken).
#[test]
fn the_switch_chooses_between_winograd_and_the_direct_kernels() {
    let g = Conv2dGeometry::new([3, 8, 8, 32], 16, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
    let x = random(g.input_len(), 7);
    let wt = random(g.weight_len(), 8);
    let direct = |y: &mut Vec<f32>| {
        conv::conv2d_forward_affine(&g, &x, &wt, None, Activation::Linear, None, y)
    };
    let inference = |y: &mut Vec<f32>| {
        conv::conv2d_forward_inference(
            &g,
            &x,
            &wt,
            None,
            Activation::Linear,
            None,
            Tail::None,
            Precision::Fp32,
            y,
        )
    };
    let (mut a, mut b) = (vec![0.0; g.output_len()], vec![0.0; g.output_len()]);
    direct(&mut a);
    winograd::set_enabled(false);
    inference(&mut b);
    winograd::set_enabled(true);
    assert_eq!(a, b, "Winograd off: the direct kernels");
    inference(&mut b);
    if supported() {
        assert_ne!(a, b, "Winograd on: another order of sums");
    }
}

/// The tail's own pass (the paths whose kernels do not apply it) is the
/// ReLU and the Add layer's arithmetic: NaN passes, -0.0 stays.
#[test]
fn the_tail_pass_is_the_layers_arithmetic() {
    let y0 = [-1.0f32, 2.0, -0.0, f32::NAN, 0.5];
    let s = [0.5f32, -3.0, 0.0, 1.0, -0.25];
    let apply = |tail: Tail<'_>| {
        let mut y = y0;
        conv::apply_tail(tail, &mut y);
        y.map(f32::to_bits)
    };
    let relu = |v: f32| if v < 0.0 { 0.0 } else { v };
    assert_eq!(apply(Tail::Relu), y0.map(relu).map(f32::to_bits));
    let want: Vec<u32> = y0
        .iter()
        .zip(&s)
        .map(|(v, s)| relu(v + s).to_bits())
        .collect();
    assert_eq!(apply(Tail::AddRelu(&s)).to_vec(), want);
}
