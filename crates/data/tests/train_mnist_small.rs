//! A small CNN trained on a few thousand real MNIST images must reach 95 %
//! on held-out test images, seeded, in seconds.

use convnet_data::{LabeledSource, Mnist, Targets};
use convnet_nn::*;
use std::time::Instant;

#[test]
fn small_cnn_learns_mnist() {
    let m = Mnist::load(&Mnist::bundled_dir()).unwrap();
    let train = m.train.take(10000);
    let test = m.test.take(2000);
    let mut model = Sequential::new(&[28, 28, 1])
        .conv2d(
            Conv2dConfig::new(16, 5)
                .with_padding(Padding::Same)
                .with_activation(Activation::Relu),
        )
        .max_pool(PoolConfig::new(2))
        .conv2d(
            Conv2dConfig::new(32, 5)
                .with_padding(Padding::Same)
                .with_activation(Activation::Relu),
        )
        .max_pool(PoolConfig::new(2))
        .flatten()
        .dense(DenseConfig::new(64).with_activation(Activation::Relu))
        .dense(DenseConfig::new(10).with_activation(Activation::Softmax))
        .build(42)
        .unwrap();
    model.compile(OptimizerConfig::adam(), Loss::SparseCategoricalCrossentropy);
    let data = LabeledSource::new(train.clone(), Targets::Sparse).unwrap();
    let start = Instant::now();
    let history = model
        .fit(
            &data,
            None,
            &FitConfig::new()
                .with_epochs(3)
                .with_batch_size(64)
                .with_verbosity(Verbosity::Silent),
            &mut [],
        )
        .unwrap();
    let test_data = LabeledSource::new(test.clone(), Targets::Sparse).unwrap();
    let eval = model.evaluate(&test_data, 500).unwrap();
    eprintln!(
        "trained 3 epochs on 10000 images in {:.1}s; losses {:?}; test accuracy {:.4}",
        start.elapsed().as_secs_f32(),
        history.epochs.iter().map(|e| e.loss).collect::<Vec<_>>(),
        eval.accuracy
    );
    assert!(history.epochs[2].loss < history.epochs[0].loss);
    assert!(eval.accuracy >= 0.95, "test accuracy {}", eval.accuracy);
}
