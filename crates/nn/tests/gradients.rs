//! Gradient checks (central differences) for every layer and every loss.

use convnet_nn::gradcheck::{check_layer, check_loss};
use convnet_nn::*;
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()).unwrap()
}

/// Distinct values at least 0.05 apart, shuffled: no max-pool ties within eps.
fn spread(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - n as f32 * 0.025).collect();
    v.shuffle(&mut rng);
    Tensor::from_vec(shape, v).unwrap()
}

/// Values away from 0 (the kink of relu-like activations).
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let mut t = random(shape, seed);
    for v in t.data_mut() {
        *v = v.signum() * (0.1 + v.abs());
    }
    t
}

fn check(spec: LayerSpec, x: &Tensor, eps: f32, tol: f64) {
    let mut rng = Rng::seed_from_u64(1);
    let mut layer = spec.build(&x.shape()[1..], &mut rng).unwrap();
    // Non-zero biases so that their gradients are tested in general position.
    for p in layer.params_mut() {
        if p.name == "bias" || p.name == "beta" {
            for (i, v) in p.value.data_mut().iter_mut().enumerate() {
                *v = 0.1 * (i as f32 % 3.0 - 1.0);
            }
        }
    }
    if let Err(e) = check_layer(layer.as_mut(), x, 7, eps, tol) {
        panic!("{spec:?}: {e}");
    }
}

#[test]
fn conv2d_gradients() {
    let x = random(&[2, 7, 6, 3], 1);
    for cfg in [
        Conv2dConfig::new(4, 3),
        Conv2dConfig::new(4, 3).with_padding(Padding::Same),
        Conv2dConfig::new(2, 5)
            .with_padding(Padding::Same)
            .with_stride(2),
        Conv2dConfig::new(3, 2).with_padding(Padding::Same),
        Conv2dConfig::new(3, 3).with_dilation(2),
        Conv2dConfig::new(2, 3)
            .with_stride(2)
            .with_padding(Padding::symmetric(1)),
        Conv2dConfig::new(2, 3).with_padding(Padding::Explicit([0, 2, 1, 0])),
        Conv2dConfig::new(3, 1).with_kernel(2, 3).with_bias(false),
        Conv2dConfig::new(2, 3).with_activation(Activation::Tanh),
        Conv2dConfig::new(16, 3).with_activation(Activation::Swish),
        // Grouped: 3 groups of one channel and two filters; then strided,
        // padded, with an activation applied after the groups' convolutions.
        Conv2dConfig::new(6, 3).with_groups(3),
        Conv2dConfig::new(3, 2)
            .with_groups(3)
            .with_stride(2)
            .with_padding(Padding::Same)
            .with_activation(Activation::Tanh),
        Conv2dConfig::new(2, 1),
    ] {
        check(LayerSpec::Conv2D(cfg), &x, 1e-2, 1e-2);
    }
}

#[test]
fn depthwise_conv2d_gradients() {
    let x = random(&[2, 7, 6, 3], 2);
    for cfg in [
        DepthwiseConv2dConfig::new(3),
        DepthwiseConv2dConfig::new(3).with_padding(Padding::Same),
        DepthwiseConv2dConfig::new(3)
            .with_depth_multiplier(2)
            .with_padding(Padding::Same)
            .with_stride(2),
        DepthwiseConv2dConfig::new(2).with_padding(Padding::Same),
        DepthwiseConv2dConfig::new(3).with_dilation(2),
        DepthwiseConv2dConfig::new(3)
            .with_stride(2)
            .with_padding(Padding::Explicit([0, 2, 1, 0])),
        DepthwiseConv2dConfig::new(1)
            .with_kernel(2, 3)
            .with_depth_multiplier(3)
            .with_bias(false),
        DepthwiseConv2dConfig::new(3).with_activation(Activation::Tanh),
    ] {
        check(LayerSpec::DepthwiseConv2D(cfg), &x, 1e-2, 1e-2);
    }
}

#[test]
fn separable_conv2d_gradients() {
    let x = random(&[2, 7, 6, 3], 3);
    for cfg in [
        SeparableConv2dConfig::new(4, 3),
        SeparableConv2dConfig::new(5, 3)
            .with_depth_multiplier(2)
            .with_padding(Padding::Same)
            .with_stride(2),
        SeparableConv2dConfig::new(2, 3).with_activation(Activation::Tanh),
    ] {
        check(LayerSpec::SeparableConv2D(cfg), &x, 1e-2, 1e-2);
    }
}

#[test]
fn dense_gradients() {
    check(
        LayerSpec::Dense(DenseConfig::new(4).with_activation(Activation::Sigmoid)),
        &random(&[3, 6], 2),
        1e-2,
        1e-2,
    );
    // Dense on an image applies to the last axis, like Keras.
    check(
        LayerSpec::Dense(DenseConfig::new(2)),
        &random(&[2, 3, 3, 4], 3),
        1e-2,
        1e-2,
    );
}

#[test]
fn pooling_gradients() {
    let x = spread(&[2, 5, 6, 3], 4);
    for p in [
        PoolConfig::new(2),
        PoolConfig::new(2).with_padding(Padding::Same),
        PoolConfig::new(3)
            .with_stride(2)
            .with_padding(Padding::Same),
        PoolConfig::new(3).with_stride(1),
        // PyTorch's explicit padding and ceil mode (ResNet's stem, GoogLeNet's pools).
        PoolConfig::new(3)
            .with_stride(2)
            .with_padding(Padding::symmetric(1)),
        PoolConfig::new(3).with_stride(2).with_ceil_mode(true),
        PoolConfig::new(2)
            .with_padding(Padding::Explicit([1, 0, 0, 1]))
            .with_ceil_mode(true),
    ] {
        check(LayerSpec::MaxPooling2D(p.clone()), &x, 1e-2, 1e-2);
        check(LayerSpec::AveragePooling2D(p), &x, 1e-2, 1e-2);
    }
    check(LayerSpec::GlobalAveragePooling2D, &x, 1e-2, 1e-2);
    check(LayerSpec::GlobalMaxPooling2D, &x, 1e-2, 1e-2);
}

#[test]
fn batch_norm_gradients() {
    for cfg in [
        BatchNormConfig::new(),
        BatchNormConfig::new().with_center(false),
        BatchNormConfig::new().with_scale(false),
    ] {
        check(
            LayerSpec::BatchNormalization(cfg.clone()),
            &random(&[3, 4, 4, 3], 5),
            1e-2,
            2e-2,
        );
        check(
            LayerSpec::BatchNormalization(cfg),
            &random(&[8, 5], 6),
            1e-2,
            2e-2,
        );
    }
}

#[test]
fn dropout_flatten_and_activation_gradients() {
    check(
        LayerSpec::Dropout(DropoutConfig::new(0.5)),
        &random(&[4, 10], 7),
        1e-2,
        1e-2,
    );
    // Eight samples at rate 0.5: some branches dropped, some kept (seeded).
    check(
        LayerSpec::StochasticDepth { rate: 0.5 },
        &random(&[8, 3, 2, 2], 10),
        1e-2,
        1e-2,
    );
    check(LayerSpec::Flatten, &random(&[2, 3, 3, 2], 8), 1e-2, 1e-2);
    for a in [
        Activation::Relu,
        Activation::Relu6,
        Activation::Sigmoid,
        Activation::Swish,
        Activation::Tanh,
        Activation::Softmax,
        Activation::LeakyRelu { alpha: 0.2 },
        Activation::Elu { alpha: 1.0 },
    ] {
        check(
            LayerSpec::Activation { activation: a },
            &away_from_zero(&[3, 5], 9),
            1e-2,
            1e-2,
        );
    }
}

#[test]
fn relu6_gradients_on_both_sides_of_six() {
    // Values from -8 to 8, away from the kinks at 0 and 6.
    let mut x = away_from_zero(&[4, 6], 3);
    for v in x.data_mut() {
        *v *= 7.0;
        if (*v - 6.0).abs() < 0.2 {
            *v += 0.5;
        }
    }
    assert!(x.data().iter().any(|&v| v > 6.2));
    let relu6 = LayerSpec::Activation {
        activation: Activation::Relu6,
    };
    check(relu6, &x, 1e-2, 1e-2);
}

#[test]
fn loss_gradients() {
    let logits = random(&[4, 5], 10);
    let mut probs = logits.clone();
    Activation::Softmax.forward(probs.data_mut(), 5);
    let mut onehot = Tensor::zeros(&[4, 5]);
    let labels = [1usize, 4, 0, 2];
    for (r, &l) in labels.iter().enumerate() {
        onehot.data_mut()[r * 5 + l] = 1.0;
    }
    let sparse = Tensor::from_vec(&[4], labels.iter().map(|&l| l as f32).collect()).unwrap();
    let eps = 1e-3;
    check_loss(Loss::CategoricalCrossentropy, &probs, &onehot, eps, 1e-2).unwrap();
    check_loss(
        Loss::CategoricalCrossentropyFromLogits,
        &logits,
        &onehot,
        eps,
        1e-2,
    )
    .unwrap();
    check_loss(
        Loss::SparseCategoricalCrossentropy,
        &probs,
        &sparse,
        eps,
        1e-2,
    )
    .unwrap();
    check_loss(
        Loss::SparseCategoricalCrossentropyFromLogits,
        &logits,
        &sparse,
        eps,
        1e-2,
    )
    .unwrap();
    check_loss(Loss::MeanSquaredError, &probs, &onehot, eps, 1e-2).unwrap();

    let z = random(&[6, 2], 11);
    let mut p = z.clone();
    Activation::Sigmoid.forward(p.data_mut(), 2);
    let y = Tensor::from_vec(
        &[6, 2],
        vec![0., 1., 1., 0., 1., 1., 0., 0., 0.3, 0.7, 1., 0.],
    )
    .unwrap();
    check_loss(Loss::BinaryCrossentropy, &p, &y, eps, 1e-2).unwrap();
    check_loss(Loss::BinaryCrossentropyFromLogits, &z, &y, eps, 1e-2).unwrap();
}

#[test]
fn a_wrong_gradient_is_caught() {
    // The checker must be able to fail: a backward off by a factor of 2.
    let err = check_layer_with_wrong_backward();
    assert!(err.contains("differs at index"), "{err}");
}

/// A layer whose backward is deliberately off by a factor of 2.
fn check_layer_with_wrong_backward() -> String {
    struct Doubler(Vec<usize>);
    impl Layer for Doubler {
        fn input_shape(&self) -> &[usize] {
            &self.0
        }
        fn output_shape(&self) -> &[usize] {
            &self.0
        }
        fn forward(&mut self, x: Tensor, _: Mode, _: &mut Rng) -> Tensor {
            x
        }
        fn backward(&mut self, dy: Tensor) -> Tensor {
            let mut d = dy;
            d.data_mut().iter_mut().for_each(|v| *v *= 2.0);
            d
        }
    }
    let mut layer = Doubler(vec![3]);
    check_layer(&mut layer, &random(&[2, 3], 1), 1, 1e-2, 1e-2).unwrap_err()
}

#[test]
fn swish_in_dense_and_depthwise_layers_gradients() {
    check(
        LayerSpec::Dense(DenseConfig::new(4).with_activation(Activation::Swish)),
        &random(&[3, 6], 12),
        1e-2,
        1e-2,
    );
    check(
        LayerSpec::DepthwiseConv2D(
            DepthwiseConv2dConfig::new(3)
                .with_padding(Padding::Same)
                .with_activation(Activation::Swish),
        ),
        &random(&[2, 5, 4, 3], 13),
        1e-2,
        1e-2,
    );
}
