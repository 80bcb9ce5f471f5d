//! Graph models: merges' gradients, whole-graph gradients, the block
//! notation, save/load, fused inference and exact resume.

mod common;

use common::{quiet, toy, train_two_then_resume_to_four, weights};
use convnet_nn::gradcheck::{check_layer, check_layer_inputs, check_model};
use convnet_nn::*;
use rand::{Rng as _, SeedableRng};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()).unwrap()
}

fn parse(s: &str) -> ModelSpec {
    parse_notation(s, &NotationOptions::default()).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn build(spec: &LayerSpec, inputs: &[&Tensor]) -> Box<dyn Layer> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| &t.shape()[1..]).collect();
    spec.build_of(&shapes, &mut Rng::seed_from_u64(0)).unwrap()
}

#[test]
fn merge_and_padding_gradients() {
    let (a, b, c) = (
        random(&[2, 3, 4, 5], 1),
        random(&[2, 3, 4, 5], 2),
        random(&[2, 3, 4, 5], 3),
    );
    let mut add = build(&LayerSpec::Add, &[&a, &b, &c]);
    check_layer_inputs(add.as_mut(), &[a.clone(), b, c], 1, 1e-2, 1e-2).unwrap();
    let (d, e) = (random(&[2, 3, 4, 2], 4), random(&[2, 3, 4, 7], 5));
    let mut cat = build(&LayerSpec::Concatenate, &[&a, &d, &e]);
    check_layer_inputs(cat.as_mut(), &[a.clone(), d, e], 1, 1e-2, 1e-2).unwrap();
    let (f, g) = (random(&[3, 6], 6), random(&[3, 2], 7));
    let mut cat = build(&LayerSpec::Concatenate, &[&f, &g]);
    check_layer_inputs(cat.as_mut(), &[f, g], 1, 1e-2, 1e-2).unwrap();
    // Multiply: maps of one shape, and a map gated by a per-channel vector
    // ([C] as after global pooling, [1, 1, C] as after Keras's Reshape).
    let (h, k, v) = (
        random(&[2, 3, 4, 5], 8),
        random(&[2, 5], 9),
        random(&[2, 1, 1, 5], 10),
    );
    let mut mul = build(&LayerSpec::Multiply, &[&a, &h]);
    check_layer_inputs(mul.as_mut(), &[a.clone(), h.clone()], 1, 1e-2, 1e-2).unwrap();
    let mut gate = build(&LayerSpec::Multiply, &[&k, &a, &v]);
    assert_eq!(gate.output_shape(), [3, 4, 5]);
    check_layer_inputs(gate.as_mut(), &[k, a.clone(), v], 1, 1e-2, 1e-2).unwrap();
    let pad = LayerSpec::ZeroPadding2D {
        padding: [[1, 2], [0, 3]],
    };
    let mut layer = build(&pad, &[&a]);
    assert_eq!(layer.output_shape(), [6, 7, 5]);
    check_layer(layer.as_mut(), &a, 1, 1e-2, 1e-2).unwrap();
    // ShuffleNet's channel shuffle and split (two slices of one input).
    let six = random(&[2, 3, 2, 6], 11);
    let mut shuffle = build(&LayerSpec::ChannelShuffle { groups: 3 }, &[&six]);
    check_layer(shuffle.as_mut(), &six, 1, 1e-2, 1e-2).unwrap();
    let mut slice = build(&LayerSpec::ChannelSlice { channels: [2, 5] }, &[&six]);
    assert_eq!(slice.output_shape(), [3, 2, 3]);
    check_layer(slice.as_mut(), &six, 1, 1e-2, 1e-2).unwrap();
}

#[test]
fn a_wrong_merge_gradient_is_caught() {
    // Concatenate's gradients handed back in the wrong order must fail the check.
    struct Swapped(Box<dyn Layer>);
    impl Layer for Swapped {
        fn input_shape(&self) -> &[usize] {
            self.0.input_shape()
        }
        fn output_shape(&self) -> &[usize] {
            self.0.output_shape()
        }
        fn forward(&mut self, x: Tensor, m: Mode, r: &mut Rng) -> Tensor {
            self.0.forward(x, m, r)
        }
        fn backward(&mut self, dy: Tensor) -> Tensor {
            dy
        }
        fn forward_inputs(&mut self, xs: Vec<Tensor>, m: Mode, r: &mut Rng) -> Tensor {
            self.0.forward_inputs(xs, m, r)
        }
        fn backward_inputs(&mut self, dy: Tensor) -> Vec<Tensor> {
            let mut v = self.0.backward_inputs(dy);
            v.reverse();
            v
        }
    }
    let (a, b) = (random(&[2, 2, 2, 3], 1), random(&[2, 2, 2, 3], 2));
    let mut bad = Swapped(build(&LayerSpec::Concatenate, &[&a, &b]));
    assert!(check_layer_inputs(&mut bad, &[a, b], 1, 1e-2, 1e-2).is_err());
}

#[test]
fn residual_and_inception_gradients_through_the_whole_graph() {
    for notation in [
        // Identity shortcut, then a projection (stride 2, 4 -> 6 channels) with BN.
        "6x6x4-R[4C3-4C3]-R[6C3S2-BN-6C3-BN]-GAP-3",
        "6x6x3-I[4C1 | 2C1-4C3 | 2C1-3C5 | P3S1-2C1]-8C3S2-F-3",
    ] {
        // tanh instead of ReLU: no kinks for the differences to step over.
        let opts = NotationOptions::default().with_activation(Activation::Tanh);
        let mut model = parse_notation(notation, &opts).unwrap().build(3).unwrap();
        let x = random(&[3, 6, 6, model.input_shape()[2]], 9);
        check_model(&mut model, &x, 1e-2, 1e-2).unwrap_or_else(|e| panic!("{notation}: {e}"));
    }
}

#[test]
fn the_notation_builds_residual_and_inception_blocks() {
    // He et al.: conv -> BN -> ReLU -> conv -> BN, + shortcut, ReLU; the
    // projection is a 1x1 conv with stride 2 and BN, convs before BN carry no bias.
    let m = parse("8x8x16-R[32C3S2-BN-32C3-BN]-GAP-10");
    let kinds: Vec<&str> = m.layers.iter().map(|n| n.layer.kind()).collect();
    assert_eq!(
        kinds,
        [
            "Conv2D",
            "BatchNormalization",
            "Activation",
            "Conv2D",
            "BatchNormalization",
            "Conv2D",
            "BatchNormalization",
            "Add",
            "Activation",
            "GlobalAveragePooling2D",
            "Dense"
        ]
    );
    let w = m.wiring().unwrap();
    assert_eq!(w.inputs[5], [Source::Input]); // the projection reads the block input
    assert_eq!(w.inputs[7], [Source::Node(4), Source::Node(6)]);
    match &m.layers[5].layer {
        LayerSpec::Conv2D(c) => {
            assert_eq!(
                (c.kernel_size, c.strides, c.use_bias),
                ([1, 1], [2, 2], false)
            );
            assert_eq!(c.filters, 32);
        }
        other => panic!("{other:?}"),
    }
    for i in [0, 3] {
        match &m.layers[i].layer {
            LayerSpec::Conv2D(c) => {
                assert!(!c.use_bias);
                assert_eq!(c.activation, Activation::Linear);
            }
            other => panic!("{other:?}"),
        }
    }
    // Params: 3x3x16x32 + 3x3x32x32 + 1x1x16x32 + 3 BN x (2 x 32) trainable, + 3 x 64 moving.
    let s = m.summary().unwrap();
    assert_eq!(
        (s.trainable, s.non_trainable),
        (4608 + 9216 + 512 + 192 + 330, 192)
    );
    // Same shape in and out: the identity shortcut, no projection.
    let m = parse("8x8x16-R[16C3-16C3]-GAP-10");
    assert_eq!(
        m.layers
            .iter()
            .filter(|n| n.layer.kind() == "Conv2D")
            .count(),
        2
    );
    // Repeats and inception: 64 + 128 + 32 + 32 = 256 channels (GoogLeNet's 3a).
    let m = parse("28x28x192-I[64C1 | 96C1-128C3 | 16C1-32C5 | P3S1-32C1]x2-GAP-10");
    let shapes = m.output_shapes().unwrap();
    let concats: Vec<&Vec<usize>> = m
        .layers
        .iter()
        .zip(&shapes)
        .filter(|(n, _)| n.layer.kind() == "Concatenate")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(concats, [&vec![28, 28, 256], &vec![28, 28, 256]]);
    let text = m.summary().unwrap().to_string();
    assert!(
        text.contains("Connected to") && text.contains("input (InputLayer)"),
        "{text}"
    );
    assert!(text.contains("conv2d_1[0][0]"), "{text}");
}

#[test]
fn block_errors_point_at_the_token() {
    let err = |s: &str| {
        parse_notation(s, &NotationOptions::default())
            .unwrap_err()
            .to_string()
    };
    let e = err("8x8x3-I[4C1 | 4C3v]-10");
    assert!(e.contains("same shape") || e.contains("agree"), "{e}");
    assert!(e.ends_with("\n        ^^^^^^^^^^^^^"), "{e}");
    let e = err("8x8x3-R[4C3-X2]-10");
    assert!(
        e.contains("unknown layer 'X2'") && e.ends_with("\n              ^^"),
        "{e}"
    );
    let e = err("8x8x3-I[4C1]-10");
    assert!(e.contains("at least two branches"), "{e}");
    let e = err("8x8x3-R[4C3-4C3-10");
    assert!(e.contains("never closed"), "{e}");
    let e = err("8x8x3-4C3 | 4C3-10");
    assert!(e.contains("only inside I["), "{e}");
    let e = err("8x8x3-Q[4C3]-10");
    assert!(e.contains("'Q['"), "{e}");
    let e = err("8x8x3-R[4C3]x0-10");
    assert!(e.contains("repeat"), "{e}");
    let e = err("8x8x3-GAP-R[4C3]-10");
    assert!(e.contains("needs an image input"), "{e}");
}

const NET: &str =
    "6x6x2-8C3-R[8C3-BN-8C3-BN]-I[4C1 | 4C1-4C3 | P3S1-4C1]-R[12C3S2-BN-12C3-BN]-D0.2-GAP-3";

#[test]
fn graph_models_save_load_and_resume_exactly() {
    let dir = std::env::temp_dir().join(format!("convnet-graph-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = toy(96, 1);
    let make = || {
        let mut m = parse(NET).build(11).unwrap();
        m.compile(OptimizerConfig::adam(), Loss::CategoricalCrossentropy);
        m
    };
    let mut straight = make();
    let h = straight.fit(&data, None, &quiet(4), &mut []).unwrap();
    assert!(h.epochs[3].loss < h.epochs[0].loss, "{h:?}");

    let (resumed, _) = train_two_then_resume_to_four(make, &data, &dir.join("ck"));
    assert_eq!(resumed.spec(), straight.spec());
    assert_eq!(weights(&resumed), weights(&straight));

    // Save and load: the same description and the same predictions, bit for bit.
    straight.save(&dir.join("model")).unwrap();
    let mut loaded = Model::load(&dir.join("model")).unwrap();
    assert_eq!(loaded.spec(), straight.spec());
    let x = data.x().slice_batch(0, 8);
    let (a, b) = (
        straight.predict(&x, 8).unwrap(),
        loaded.predict(&x, 8).unwrap(),
    );
    assert_eq!(a.data(), b.data());
    // Fused inference (conv + BN in one pass) equals the unfused trace exactly.
    let unfused = loaded.trace(&x).pop().unwrap();
    for (p, q) in b.data().iter().zip(unfused.data()) {
        assert_eq!(p.to_bits(), q.to_bits());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_functional_example_builds_and_runs() {
    let mut g = ModelSpec::new(&[32, 32, 16]);
    let x = g.input();
    let h = g.apply(
        LayerSpec::Conv2D(
            Conv2dConfig::new(16, 3)
                .with_padding(Padding::Same)
                .with_activation(Activation::Relu),
        ),
        &[&x],
    );
    let h = g.apply(
        LayerSpec::Conv2D(Conv2dConfig::new(16, 3).with_padding(Padding::Same)),
        &[&h],
    );
    let s = g.apply(LayerSpec::Add, &[&h, &x]);
    let s = g.apply(
        LayerSpec::Activation {
            activation: Activation::Relu,
        },
        &[&s],
    );
    let p = g.apply(LayerSpec::GlobalAveragePooling2D, &[&s]);
    g.apply(
        LayerSpec::Dense(DenseConfig::new(10).with_activation(Activation::Softmax)),
        &[&p],
    );
    let mut model = g.build(42).unwrap();
    let y = model.predict(&random(&[2, 32, 32, 16], 1), 2).unwrap();
    assert_eq!(y.shape(), [2, 10]);
    for row in y.data().chunks(10) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let resnet = zoo::builtin("resnet20", &[32, 32, 3], 10).unwrap().unwrap();
    assert_eq!(resnet.summary().unwrap().trainable, 272_474);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Any text made of the notation's pieces, blocks included, parses or
    /// fails with an error, never a panic (the fuzz target's property, run
    /// here on the block syntax the committed corpus predates).
    #[test]
    fn block_notation_never_panics(parts in proptest::collection::vec(
        proptest::sample::select(vec![
            "R[", "I[", "[", "]", "]x2", "]x", "|", " | ", "-", "8C3", "4C1", "8C3S2", "16C3v",
            "BN", "P2", "P3S1", "P3S1s", "A2", "GAP", "D0.2", "F", "10", "1", "x", "8x8x3",
        ]),
        1..14,
    )) {
        convnet_nn::fuzzing::notation(parts.concat().as_bytes());
        let with_input = format!("8x8x3-{}", parts.concat());
        convnet_nn::fuzzing::notation(with_input.as_bytes());
    }
}
