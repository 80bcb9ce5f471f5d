//! Helpers of the kernel tests: random data, the tolerance check, the
//! padding strategy, and the thread-count check every path goes through.
#![allow(dead_code)]

use convnet_tensor::activation::Activation;
use convnet_tensor::{conv, Conv2dGeometry, Padding};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

pub fn close(got: &[f32], want: &[f32], what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{} differs at {}: fast {} vs reference {}",
            what,
            i,
            g,
            w
        );
    }
    Ok(())
}

pub fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3)
            .prop_map(|(t, b, l, r)| Padding::Explicit([t, b, l, r])),
    ]
}

/// Forward, input gradient and weight gradient of one geometry on 1 and 3
/// threads give the same bits.
pub fn assert_bit_identical_across_threads(f: usize, c: usize) {
    let g = Conv2dGeometry::new([37, 9, 9, c], f, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
    let x = random(g.input_len(), 11);
    let w = random(g.weight_len(), 13);
    let dy = random(g.output_len(), 12);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut y = vec![0.0; g.output_len()];
            conv::conv2d_forward(&g, &x, &w, None, Activation::Linear, &mut y);
            let mut dx = vec![0.0; g.input_len()];
            conv::conv2d_backward_input(&g, &dy, &w, &mut dx);
            let mut dw = vec![0.0; g.weight_len()];
            let mut db = vec![0.0; g.f];
            conv::conv2d_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db));
            (y, dx, dw, db)
        })
    };
    assert_eq!(run(1), run(3), "{f} filters, {c} channels");
}
