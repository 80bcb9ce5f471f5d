//! The kernel paths that the implicit-GEMM kernels hide on AVX-512
//! machines: this test binary switches those kernels off (a process-wide
//! setting, so it lives in its own binary) and runs the direct kernels
//! (patches of at most 32 values with 16, 32 or 64 filters) and im2col + GEMM
//! against the references, and through 1 and 3 threads.

mod common;

use common::{assert_bit_identical_across_threads, close, padding, random};
use convnet_tensor::activation::Activation;
use convnet_tensor::{conv, implicit, reference, Conv2dGeometry};
use proptest::prelude::*;

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
