//! Mixed-precision training through a whole model (issue #30): with
//! `Precision::Bf16` a residual net's convolutions take bf16 operands with
//! fp32 sums in the forward and in both gradients, while the weights stay
//! fp32; its gradients stay within bf16's precision of the fp32 ones, a
//! fit is reproducible to the bit, and it learns what fp32 learns. On a
//! CPU without AVX512-BF16 the portable loop computes the same sums.

use convnet_nn::*;
use rand::{Rng as _, SeedableRng};

const NET: &str = "12x12x2-16C3-BN-R[16C3-BN-16C3-BN]-32C3-P2-R[32C3-BN-32C3-BN]-GAP-4";

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()).unwrap()
}

/// Linear convolutions (no ReLU, no max pooling): bf16's rounding moves
/// the gradients by a fraction of a percent, with no discrete choice (a
/// ReLU's sign, a pooling window's maximum) flipping on near-ties, which
/// random data at initialization is full of.
const LINEAR: &str = "12x12x2-16C3-BN-R[16C3-BN-16C3-BN]-32C3S2-BN-R[32C3-BN-32C3-BN]-GAP-4";

fn model(precision: Precision) -> Model {
    let options = NotationOptions {
        activation: Activation::Linear,
        ..NotationOptions::default()
    };
    let spec = parse_notation(LINEAR, &options).unwrap();
    let mut m = spec.build(3).unwrap();
    m.compile(OptimizerConfig::sgd(), Loss::SparseCategoricalCrossentropy);
    m.set_precision(precision);
    m
}

/// Every parameter's gradient after one step on a batch.
fn gradients(precision: Precision) -> Vec<Vec<f32>> {
    let mut m = model(precision);
    let x = random(&[10, 12, 12, 2], 7);
    let z = m.forward(&x, Mode::Train, false);
    let dz = Tensor::from_vec(
        z.shape(),
        (0..z.len()).map(|i| ((i % 7) as f32 - 3.0) / 7.0).collect(),
    )
    .unwrap();
    m.backward(dz);
    m.named_params()
        .iter()
        .filter(|(_, p)| p.trainable)
        .map(|(_, p)| p.grad.data().to_vec())
        .collect()
}

#[test]
fn bf16_gradients_stay_within_bf16_precision_of_fp32() {
    let (full, low) = (gradients(Precision::Fp32), gradients(Precision::Bf16));
    let largest = |g: &[f32]| g.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let overall = full.iter().map(|g| largest(g)).fold(0.0f32, f32::max);
    let mut differs = false;
    for (i, (a, b)) in full.iter().zip(&low).enumerate() {
        // bf16 keeps 8 significant bits per operand: 0.3-0.6 % of each
        // tensor's largest gradient here (a wrong tap, a missing pair or
        // a transposed kernel moves them by tens of percent); the floor
        // covers gradients that are zero up to rounding (a bias before a
        // batch norm).
        let worst = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
        let tolerance = 0.02 * largest(a) + 1e-3 * overall;
        assert!(
            worst <= tolerance,
            "parameter {i}: bf16 differs from fp32 by {worst} (largest gradient {})",
            largest(a)
        );
        differs |= worst > 0.0;
    }
    assert!(differs, "bf16 training did not run");
    assert_eq!(gradients(Precision::Bf16), low, "bf16 gradients repeat");
}

fn data(n: usize, seed: u64) -> TensorData {
    // Four classes: which quadrant of the first channel is bright.
    let mut x = random(&[n, 12, 12, 2], seed);
    let mut y = Tensor::zeros(&[n]);
    for i in 0..n {
        let class = i % 4;
        for r in 0..6 {
            for c in 0..6 {
                let (rr, cc) = (r + 6 * (class / 2), c + 6 * (class % 2));
                x.data_mut()[((i * 12 + rr) * 12 + cc) * 2] += 2.0;
            }
        }
        y.data_mut()[i] = class as f32;
    }
    TensorData::new(x, y).unwrap()
}

fn fit(precision: Precision) -> (Model, History) {
    let spec = parse_notation(NET, &NotationOptions::default()).unwrap();
    let mut m = spec.build(5).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::SparseCategoricalCrossentropy);
    let config = FitConfig::new()
        .with_epochs(3)
        .with_batch_size(16)
        .with_validation_split(0.25)
        .with_verbosity(Verbosity::Silent)
        .with_precision(precision);
    let h = m.fit(&data(128, 1), None, &config, &mut []).unwrap();
    (m, h)
}

#[test]
fn a_bf16_fit_repeats_to_the_bit_and_learns_as_fp32_does() {
    let (mut a, ha) = fit(Precision::Bf16);
    let (_, hb) = fit(Precision::Bf16);
    let (_, h32) = fit(Precision::Fp32);
    assert_eq!(a.precision(), Precision::Bf16, "the fit's precision stays");
    let losses = |h: &History| h.epochs.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&ha), losses(&hb), "same seed, same bits");
    assert_ne!(losses(&ha), losses(&h32), "bf16 is not fp32");
    let acc = |h: &History| h.epochs.last().unwrap().val_accuracy.unwrap();
    eprintln!("validation accuracy: bf16 {} fp32 {}", acc(&ha), acc(&h32));
    assert!(acc(&ha) >= 0.9, "bf16 learned the quadrants: {}", acc(&ha));
    assert!((acc(&ha) - acc(&h32)).abs() <= 0.07);
    // Weights stay fp32: not all of them are bf16 values.
    let w = a.named_params()[0].1.value.data().to_vec();
    assert!(w.iter().any(|&v| convnet_tensor::bf16::round(v) != v));
    a.set_precision(Precision::Fp32);
}
