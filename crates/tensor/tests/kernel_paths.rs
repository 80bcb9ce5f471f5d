//! The kernel paths that the implicit-GEMM kernels hide on AVX-512
//! machines: this test binary switches those kernels off (a process-wide
//! setting, so it lives in its own binary) and runs the direct kernels
//! (patches of at most 32 values with 16, 32 or 64 filters) and im2col + GEMM
//! against the references, and through 1 and 3 threads.

use convnet_tensor::activation::Activation;
use convnet_tensor::{conv, implicit, reference, Conv2dGeometry, Padding};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn close(got: &[f32], want: &[f32], what: &str) -> Result<(), TestCaseError> {
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

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3)
            .prop_map(|(t, b, l, r)| Padding::Explicit([t, b, l, r])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn direct_conv_matches_reference(
        n in 1usize..3, h in 1usize..10, w in 1usize..10, c in 1usize..4,
        f in prop_oneof![Just(16usize), Just(32), Just(64)],
        kh in 1usize..6, kw in 1usize..6, sh in 1usize..3, sw in 1usize..3,
        pad in padding(), seed: u64,
    ) {
        // Patches of at most 32 values with 16, 32 or 64 filters take the
        // direct kernels (forward and weight gradient); larger ones the GEMM.
        implicit::set_enabled(false);
        let g = match Conv2dGeometry::new([n, h, w, c], f, (kh, kw), (sh, sw), (1, 1), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        let x = random(g.input_len(), seed);
        let wt = random(g.weight_len(), seed ^ 1);
        let b = random(f, seed ^ 2);
        let dy = random(g.output_len(), seed ^ 3);
        let mut y = vec![0.0; g.output_len()];
        conv::conv2d_forward(&g, &x, &wt, Some(&b), Activation::Linear, &mut y);
        close(&y, &reference::conv2d_forward(&g, &x, &wt, Some(&b)), "forward")?;
        let mut dwt = vec![1.0; g.weight_len()];
        let mut db = vec![1.0; f];
        conv::conv2d_backward_weight(&g, &x, &dy, &mut dwt, Some(&mut db));
        let (rdw, rdb) = reference::conv2d_backward_weight(&g, &x, &dy);
        let rdw: Vec<f32> = rdw.iter().map(|v| v + 1.0).collect();
        let rdb: Vec<f32> = rdb.iter().map(|v| v + 1.0).collect();
        close(&dwt, &rdw, "backward weight")?;
        close(&db, &rdb, "backward bias")?;
    }

}

#[test]
fn direct_and_im2col_paths_are_bit_identical_across_thread_counts() {
    implicit::set_enabled(false);
    for f in [16, 32, 64] {
        // 3 channels: 27-value patches, the direct kernels; 16: im2col.
        assert_bit_identical_across_threads(f, 3);
        assert_bit_identical_across_threads(f, 16);
    }
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
