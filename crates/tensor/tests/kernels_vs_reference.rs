//! Property tests: the fast kernels against the slow references over random
//! shapes, strides, paddings and dilations.

mod common;

use common::{assert_bit_identical_across_threads, close, padding, random};
use convnet_tensor::activation::{Activation, SavedOutput};
use convnet_tensor::{conv, pool, reference, Conv2dGeometry, Padding, Pool2dGeometry};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_matches_reference(
        n in 1usize..4, h in 1usize..12, w in 1usize..12, c in 1usize..5, f in 1usize..6,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..3, sw in 1usize..3,
        dh in 1usize..3, dw in 1usize..3, pad in padding(), seed: u64,
    ) {
        let g = match Conv2dGeometry::new([n, h, w, c], f, (kh, kw), (sh, sw), (dh, dw), pad) {
            Ok(g) => g,
            Err(_) => return Ok(()), // input smaller than the window with 'valid'
        };
        let x = random(g.input_len(), seed);
        let wt = random(g.weight_len(), seed ^ 1);
        let b = random(f, seed ^ 2);
        let dy = random(g.output_len(), seed ^ 3);

        let mut y = vec![0.0; g.output_len()];
        conv::conv2d_forward(&g, &x, &wt, Some(&b), Activation::Linear, &mut y);
        close(&y, &reference::conv2d_forward(&g, &x, &wt, Some(&b)), "forward")?;

        let mut dx = vec![7.0; g.input_len()];
        conv::conv2d_backward_input(&g, &dy, &wt, &mut dx);
        close(&dx, &reference::conv2d_backward_input(&g, &dy, &wt), "backward input")?;

        // Weight gradients accumulate: start from 1 and expect 1 + reference.
        let mut dwt = vec![1.0; g.weight_len()];
        let mut db = vec![1.0; f];
        conv::conv2d_backward_weight(&g, &x, &dy, &mut dwt, Some(&mut db));
        let (rdw, rdb) = reference::conv2d_backward_weight(&g, &x, &dy);
        let rdw: Vec<f32> = rdw.iter().map(|v| v + 1.0).collect();
        let rdb: Vec<f32> = rdb.iter().map(|v| v + 1.0).collect();
        close(&dwt, &rdw, "backward weight")?;
        close(&db, &rdb, "backward bias")?;
    }

    #[test]
    fn implicit_conv_matches_reference(
        n in 1usize..3, h in 1usize..9, w in 1usize..9,
        c in prop_oneof![Just(3usize), Just(16), Just(32), Just(64)],
        f in prop_oneof![Just(16usize), Just(32), Just(48), Just(64), Just(80), Just(96), Just(128)],
        kh in 1usize..6, kw in 1usize..6, sh in 1usize..3, sw in 1usize..3,
        pad in padding(), seed: u64,
    ) {
        // Filters a multiple of 16 with patches past the direct kernels'
        // take the implicit-GEMM kernels on AVX-512 machines (the input
        // gradient too, when the stride is 1 and C is a multiple of 16);
        // 48 and 80 filters end in a 16-wide block after 32 or 64.
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
        let want = reference::conv2d_forward(&g, &x, &wt, Some(&b));
        close(&y, &want, "forward")?;
        // ReLU and an inference batch norm's affine map, applied as tiles are stored.
        let (scale, shift) = (random(f, seed ^ 4), random(f, seed ^ 5));
        conv::conv2d_forward_affine(
            &g, &x, &wt, Some(&b), Activation::Relu, Some((&scale, &shift)), &mut y,
        );
        let want: Vec<f32> = want
            .iter()
            .enumerate()
            .map(|(i, v)| v.max(0.0) * scale[i % f] + shift[i % f])
            .collect();
        close(&y, &want, "forward with ReLU and affine")?;
        // Training forward with ReLU: the mask packed during the stores
        // equals the one packed from the output afterwards.
        let mut slot = Some(SavedOutput::ReluMask(vec![u64::MAX; 3]));
        conv::conv2d_forward_saving(&g, &x, &wt, Some(&b), Activation::Relu, &mut y, &mut slot);
        let mut want_slot = None;
        Activation::Relu.save_output(&y, &mut want_slot);
        let mask = match (slot, want_slot) {
            (Some(SavedOutput::ReluMask(got)), Some(SavedOutput::ReluMask(want))) => {
                prop_assert_eq!(&got, &want, "ReLU mask");
                got
            }
            _ => return Err(TestCaseError::fail("ReLU keeps a mask")),
        };
        // The ReLU backward fused into the weight gradient's chunks equals
        // masking first and then summing, bit for bit.
        let mut dz = dy.clone();
        let (mut dw1, mut db1) = (vec![0.5; g.weight_len()], vec![0.5; f]);
        conv::conv2d_backward_weight_relu(&g, &x, &mut dz, &mask, &mut dw1, Some(&mut db1));
        let mut dz2 = dy.clone();
        Activation::Relu.backward_saved(&SavedOutput::ReluMask(mask), &mut dz2, f);
        let (mut dw2, mut db2) = (vec![0.5; g.weight_len()], vec![0.5; f]);
        conv::conv2d_backward_weight(&g, &x, &dz2, &mut dw2, Some(&mut db2));
        prop_assert_eq!(dz, dz2);
        prop_assert_eq!(dw1, dw2);
        prop_assert_eq!(db1, db2);
        let mut dx = vec![7.0; g.input_len()];
        conv::conv2d_backward_input(&g, &dy, &wt, &mut dx);
        close(&dx, &reference::conv2d_backward_input(&g, &dy, &wt), "backward input")?;
        let mut dwt = vec![1.0; g.weight_len()];
        conv::conv2d_backward_weight(&g, &x, &dy, &mut dwt, None);
        let (rdw, _) = reference::conv2d_backward_weight(&g, &x, &dy);
        let rdw: Vec<f32> = rdw.iter().map(|v| v + 1.0).collect();
        close(&dwt, &rdw, "backward weight")?;
    }

    #[test]
    fn pooling_matches_reference(
        n in 1usize..3, h in 1usize..10, w in 1usize..10, c in 1usize..4,
        ph in 1usize..4, pw in 1usize..4, sh in 1usize..4, sw in 1usize..4,
        pad in padding(), ceil: bool, seed: u64,
    ) {
        let g = match Pool2dGeometry::new([n, h, w, c], (ph, pw), (sh, sw), pad, ceil) {
            Ok(g) => g,
            Err(_) => return Ok(()),
        };
        let x = random(n * h * w * c, seed);
        let dy = random(g.output_len(), seed ^ 5);

        let mut y = vec![0.0; g.output_len()];
        let mut arg = vec![0u8; g.output_len()];
        pool::max_pool2d_forward(&g, &x, &mut y, &mut arg);
        let mut dx = vec![3.0; x.len()];
        pool::max_pool2d_backward(&g, &dy, &arg, &mut dx);
        let (ry, rdx) = reference::max_pool2d(&g, &x, &dy);
        close(&y, &ry, "max forward")?;
        close(&dx, &rdx, "max backward")?;

        pool::avg_pool2d_forward(&g, &x, &mut y);
        pool::avg_pool2d_backward(&g, &dy, &mut dx);
        let (ry, rdx) = reference::avg_pool2d(&g, &x, &dy);
        close(&y, &ry, "avg forward")?;
        close(&dx, &rdx, "avg backward")?;
    }
}

#[test]
fn max_pool_backward_zeroes_the_cells_that_padding_leaves_out() {
    // Found by `pooling_matches_reference`: 3x3 windows with stride 3 over 9
    // columns tile them exactly without padding; one column of left padding
    // shifts them, and column 8 is in no window. Its gradient is 0, whatever
    // `dx` held before (recycled buffers hold old values).
    let pad = Padding::Explicit([0, 0, 1, 0]);
    let g = Pool2dGeometry::new([1, 3, 9, 1], (3, 3), (3, 3), pad, false).unwrap();
    let x = random(27, 0);
    let dy = random(g.output_len(), 5);
    let (mut y, mut arg) = (vec![0.0; g.output_len()], vec![0u8; g.output_len()]);
    pool::max_pool2d_forward(&g, &x, &mut y, &mut arg);
    let mut dx = vec![3.0; x.len()];
    pool::max_pool2d_backward(&g, &dy, &arg, &mut dx);
    let (_, want) = reference::max_pool2d(&g, &x, &dy);
    assert_eq!(dx, want);
    assert_eq!(dx[8], 0.0);
}

#[test]
fn conv_is_bit_identical_across_thread_counts() {
    let g = Conv2dGeometry::new([37, 9, 9, 3], 5, (3, 3), (1, 1), (1, 1), Padding::Same).unwrap();
    let x = random(g.input_len(), 11);
    let dy = random(g.output_len(), 12);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut dw = vec![0.0; g.weight_len()];
            let mut db = vec![0.0; g.f];
            conv::conv2d_backward_weight(&g, &x, &dy, &mut dw, Some(&mut db));
            (dw, db)
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn every_kernel_path_is_bit_identical_across_thread_counts() {
    // 16, 32 and 64 filters with 3x3 patches of 16 channels take the
    // implicit-GEMM kernels on AVX-512 machines (im2col elsewhere);
    // `tests/kernel_paths.rs` runs the same with them switched off.
    for f in [16, 32, 64] {
        assert_bit_identical_across_threads(f, 16);
    }
}

#[test]
fn same_padding_places_the_odd_pixel_bottom_right() {
    // A 2x2 all-ones kernel over a 3x3 image of 1..9 with 'same' padding:
    // the pad row/column goes after, so y[0,0] = 1+2+4+5 and y[2,2] = 9.
    let g = Conv2dGeometry::new([1, 3, 3, 1], 1, (2, 2), (1, 1), (1, 1), Padding::Same).unwrap();
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut y = vec![0.0; 9];
    conv::conv2d_forward(&g, &x, &[1.0; 4], None, Activation::Linear, &mut y);
    assert_eq!(y, vec![12.0, 16.0, 9.0, 24.0, 28.0, 15.0, 15.0, 17.0, 9.0]);
}
