//! The implicit-GEMM kernels' AVX2 path on every x86 machine: this test
//! binary switches between the AVX-512 and AVX2 kernels (process-wide
//! settings, so it lives in its own binary, one test at a time), runs the
//! AVX2 ones against the references and, where the CPU has AVX-512, checks
//! that both give the same bits (the same sums in the same order). The
//! Winograd kernels, AVX-512 only, are switched off so that both runs take
//! the implicit kernels.

mod common;

use common::{close, padding, random};
use convnet_tensor::activation::{Activation, SavedOutput};
use convnet_tensor::{conv, implicit, reference, winograd, Conv2dGeometry};
use proptest::prelude::*;

/// Forward (bias, ReLU, affine), both gradients, and the ReLU mask packed
/// by the kernels' stores (checked against the one packed from the output).
fn run(g: &Conv2dGeometry, seed: u64) -> Result<(Vec<Vec<f32>>, Vec<u64>), TestCaseError> {
    let x = random(g.input_len(), seed);
    let wt = random(g.weight_len(), seed ^ 1);
    let b = random(g.f, seed ^ 2);
    let dy = random(g.output_len(), seed ^ 3);
    let (scale, shift) = (random(g.f, seed ^ 4), random(g.f, seed ^ 5));
    let mut y = vec![0.0; g.output_len()];
    conv::conv2d_forward(g, &x, &wt, Some(&b), Activation::Linear, &mut y);
    let mut ya = vec![0.0; g.output_len()];
    conv::conv2d_forward_affine(
        g,
        &x,
        &wt,
        Some(&b),
        Activation::Relu,
        Some((&scale, &shift)),
        &mut ya,
    );
    let mut yr = vec![0.0; g.output_len()];
    let mut slot = None;
    conv::conv2d_forward_saving(g, &x, &wt, Some(&b), Activation::Relu, &mut yr, &mut slot);
    let mut packed = None;
    Activation::Relu.save_output(&yr, &mut packed);
    let mask = match (slot, packed) {
        (Some(SavedOutput::ReluMask(got)), Some(SavedOutput::ReluMask(want))) => {
            prop_assert_eq!(&got, &want, "ReLU mask");
            got
        }
        _ => return Err(TestCaseError::fail("ReLU keeps a mask")),
    };
    let mut dx = vec![7.0; g.input_len()];
    conv::conv2d_backward_input(g, &dy, &wt, &mut dx);
    let mut dw = vec![1.0; g.weight_len()];
    let mut db = vec![1.0; g.f];
    conv::conv2d_backward_weight(g, &x, &dy, &mut dw, Some(&mut db));
    Ok((vec![y, ya, yr, dx, dw, db], mask))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn avx2_kernels_match_the_reference_and_the_avx512_bits(
        n in 1usize..3, h in 1usize..9, w in 1usize..9,
        c in prop_oneof![Just(3usize), Just(16), Just(32), Just(64)],
        f in prop_oneof![Just(16usize), Just(32), Just(48), Just(64), Just(80), Just(128)],
        kh in 1usize..6, kw in 1usize..6, sh in 1usize..3, sw in 1usize..3,
        pad in padding(), seed: u64,
    ) {
        winograd::set_enabled(false);
        let g = match Conv2dGeometry::new([n, h, w, c], f, (kh, kw), (sh, sw), (1, 1), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        implicit::set_avx512(false);
        let avx2 = implicit::isa();
        let (got, got_mask) = run(&g, seed)?;
        implicit::set_avx512(true);
        let native = implicit::isa();
        let (want, want_mask) = run(&g, seed)?;
        if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2") {
            prop_assert_eq!(avx2, Some(implicit::Isa::Avx2));
        }
        // The same bits whichever instruction set ran (AVX-512 where the CPU has it).
        if native == Some(implicit::Isa::Avx512) {
            prop_assert_eq!(&got_mask, &want_mask);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                prop_assert!(
                    a.iter().map(|v| v.to_bits()).eq(b.iter().map(|v| v.to_bits())),
                    "output {} differs between AVX2 and AVX-512", i
                );
            }
        }
        // And the AVX2 run against the references.
        let x = random(g.input_len(), seed);
        let wt = random(g.weight_len(), seed ^ 1);
        let b = random(f, seed ^ 2);
        let dy = random(g.output_len(), seed ^ 3);
        close(&got[0], &reference::conv2d_forward(&g, &x, &wt, Some(&b)), "forward")?;
        close(&got[3], &reference::conv2d_backward_input(&g, &dy, &wt), "backward input")?;
        let (rdw, rdb) = reference::conv2d_backward_weight(&g, &x, &dy);
        let rdw: Vec<f32> = rdw.iter().map(|v| v + 1.0).collect();
        let rdb: Vec<f32> = rdb.iter().map(|v| v + 1.0).collect();
        close(&got[4], &rdw, "backward weight")?;
        close(&got[5], &rdb, "backward bias")?;
    }
}
