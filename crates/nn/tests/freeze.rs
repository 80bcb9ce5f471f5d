//! Freezing layers (Keras's `trainable = False`): frozen weights do not
//! change, a frozen batch norm runs in inference mode, the summary counts
//! frozen weights as non-trainable, gradients still flow through.

mod common;

use common::{quiet, toy};
use convnet_nn::gradcheck::check_model;
use convnet_nn::*;

fn net() -> ModelSpec {
    parse_notation(
        "6x6x2-8C3-BN-R[8C3-BN-8C3-BN]-GAP-3",
        &NotationOptions::default(),
    )
    .unwrap()
}

fn values(m: &Model) -> Vec<(String, Vec<f32>)> {
    m.named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value.data().to_vec()))
        .collect()
}

#[test]
fn frozen_layers_keep_their_bytes_and_frozen_batch_norm_its_statistics() {
    let mut spec = net();
    // Freeze the stem: conv2d and batch_normalization (nodes 0 and 1).
    spec.freeze_through("batch_normalization").unwrap();
    let mut m = spec.build(5).unwrap();
    // Non-default moving statistics, to see that a frozen BN uses and keeps them.
    for (i, layer) in m.layers_mut().iter_mut().enumerate().take(2) {
        for p in layer.params_mut() {
            for (j, v) in p.value.data_mut().iter_mut().enumerate() {
                *v += 0.01 * (i + j) as f32;
            }
        }
    }
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let before = values(&m);
    m.fit(&toy(64, 3), None, &quiet(2), &mut []).unwrap();
    let after = values(&m);
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        let frozen = name.starts_with("layer0.") || name.starts_with("layer1.");
        assert_eq!(a == b, frozen, "{name}: frozen {frozen}");
    }
    // The summary counts the frozen 8C3 (3x3x2x8 + 8) and BN (2 x 8 + 2 x 8) as non-trainable.
    let s = m.spec().summary().unwrap();
    let all = net().summary().unwrap();
    assert_eq!(s.trainable, all.trainable - 152 - 16);
    assert_eq!(s.non_trainable, all.non_trainable + 152 + 16);
    assert_eq!(m.param_counts(), (s.trainable, s.non_trainable));
    // The flag is part of the model file and survives a round trip.
    let json = serde_json::to_string(m.spec()).unwrap();
    assert_eq!(json.matches("\"trainable\":false").count(), 2, "{json}");
    let back: ModelSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, m.spec());
}

#[test]
fn gradients_flow_through_a_frozen_batch_norm() {
    // Freeze the BN inside the block: it runs as a fixed affine map, and
    // the conv before it still gets the right gradient.
    let mut spec = parse_notation(
        "6x6x2-8C3-BN-R[8C3-BN-8C3-BN]-GAP-3",
        &NotationOptions::default().with_activation(Activation::Tanh),
    )
    .unwrap();
    spec.set_trainable("batch_normalization_1", false).unwrap();
    let mut m = spec.build(2).unwrap();
    let x = toy(4, 3).x().clone();
    check_model(&mut m, &x, 1e-2, 1e-2).unwrap();
}

#[test]
fn freezing_everything_or_an_unknown_layer_is_an_error() {
    let mut spec = net();
    let e = spec.set_trainable("conv9", false).unwrap_err().to_string();
    assert!(
        e.contains("no layer is called 'conv9'") && e.contains("conv2d"),
        "{e}"
    );
    spec.freeze_first(spec.layers.len());
    let mut m = spec.build(0).unwrap();
    m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
    let e = m
        .fit(&toy(16, 3), None, &quiet(1), &mut [])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing left to train"), "{e}");
}

#[test]
fn a_frozen_base_runs_its_inference_form_in_training() {
    // Input dropout in a trainable net drops in training; the same dropout
    // in a frozen base (nothing at or below it trains) does not, as
    // Keras's `base(x, training=False)`: training outputs equal inference's.
    let spec = |freeze: bool| {
        let mut s =
            parse_notation("6x6x2-D0.5-8C3-BN-P2-F-3", &NotationOptions::default()).unwrap();
        if freeze {
            s.freeze_through("max_pooling2d").unwrap();
        }
        s
    };
    let x = Tensor::from_vec(
        &[4, 6, 6, 2],
        (0..288)
            .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
            .collect(),
    )
    .unwrap();
    let mut frozen = spec(true).build(3).unwrap();
    let eval = frozen.forward(&x, Mode::Eval, false);
    let train = frozen.forward(&x, Mode::Train, false);
    assert_eq!(train.data(), eval.data(), "the frozen base dropped units");
    // Its head still trains: a backward reaches the Dense.
    frozen.backward(train);
    let dense = frozen.layers().len() - 1;
    assert!(frozen.layers()[dense].params()[0]
        .grad
        .data()
        .iter()
        .any(|&g| g != 0.0));
    let mut open = spec(false).build(3).unwrap();
    let eval = open.forward(&x, Mode::Eval, false);
    let train = open.forward(&x, Mode::Train, false);
    assert_ne!(train.data(), eval.data(), "a trainable net's dropout drops");
}
