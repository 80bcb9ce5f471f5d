//! bf16 inference through a whole model (issue #30): with
//! `Model::set_precision(Precision::Bf16)` the convolutions of a residual
//! net with batch norms take bf16 operands and fp32 sums, and its outputs
//! stay within bf16's precision of the fp32 ones.

use convnet_nn::*;
use rand::{Rng as _, SeedableRng};

#[test]
fn bf16_inference_stays_within_bf16_precision_of_fp32() {
    let spec = parse_notation(
        "16x16x3-16C3-BN-R[16C3-BN-16C3-BN]-R[32C3S2-BN-32C3-BN]-32C5-GAP-10",
        &NotationOptions::default(),
    )
    .unwrap();
    let mut model = spec.build(5).unwrap();
    let mut rng = Rng::seed_from_u64(9);
    let x = Tensor::from_vec(
        &[12, 16, 16, 3],
        (0..12 * 16 * 16 * 3)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect(),
    )
    .unwrap();
    let fp32 = model.predict(&x, 12).unwrap();
    model.set_precision(Precision::Bf16);
    let low = model.predict(&x, 12).unwrap();
    model.set_precision(Precision::Fp32);
    let again = model.predict(&x, 12).unwrap();
    assert_eq!(
        fp32.data(),
        again.data(),
        "switching back gives fp32's bits"
    );
    // Softmax outputs: bf16 keeps 8 significant bits per operand; six
    // layers of sums move these probabilities by well under 1e-3 (4e-5 on
    // a Zen 4; a wrong tap or weight moves them by more than 1e-2).
    let worst = fp32
        .data()
        .iter()
        .zip(low.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("bf16 vs fp32: max difference {worst:e}");
    assert!(worst < 1e-3, "bf16 differs from fp32 by {worst}");
    // On every CPU: without bf16 hardware the portable loop computes
    // the same sums.
    assert!(worst > 0.0, "bf16 inference did not run");
}
