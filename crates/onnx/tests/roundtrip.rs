//! Exported models run in an independent runtime (tract) and agree with our
//! predict; export -> import gives the same outputs; import -> export ->
//! import gives byte-identical weights.
//!
//! With `CONVNET_ONNX_DUMP=DIR` the models, inputs and our outputs are also
//! written there, for `tools/onnx/check_onnxruntime.py` (onnxruntime).

use convnet_nn::save::tensors_to_bytes;
use convnet_nn::{parse_notation, zoo, Model, NotationOptions, Padding, Rng, Tensor};
use rand::{Rng as _, SeedableRng};
use tract_onnx::prelude::*;

/// The models of the check: name, model.
fn models() -> Vec<(&'static str, Model)> {
    let notation = |s: &str, padding: Padding| {
        let opts = NotationOptions {
            padding,
            ..Default::default()
        };
        parse_notation(s, &opts).unwrap()
    };
    // MobileNet's blocks: depthwise convolutions and ReLU6 (ONNX Clip); a
    // separable conv (exported as its depthwise and pointwise Convs).
    let mobile = parse_notation(
        "32x32x3-16C3S2-BN-DW3-BN-32C1-BN-2DW5S2v-BN-DW3x1-24SC3S2-GAP-10",
        &NotationOptions::default().with_activation(convnet_nn::Activation::Relu6),
    )
    .unwrap();
    // EfficientNet's activation: swish (ONNX Sigmoid + Mul) fused into
    // convs, depthwise convs and dense layers, and standalone after batch norms.
    let mut swish = parse_notation(
        "16x16x3-8C3S2-BN-DW3-BN-16C1-GAP-12-10",
        &NotationOptions::default().with_activation(convnet_nn::Activation::Swish),
    )
    .unwrap();
    swish.layers.insert(
        2,
        convnet_nn::Node::chained(convnet_nn::LayerSpec::Activation {
            activation: convnet_nn::Activation::Swish,
        }),
    );
    let specs = vec![
        ("swish", swish),
        ("squeeze-excite", squeeze_excite()),
        ("shuffle", shuffle_unit()),
        ("m1", notation("28x28x1-32C5-P2-64C5-P2-128-D0.4-10", Padding::Same)),
        (
            "final-bn",
            notation(
                "28x28x1-32C3v-BN-32C3v-BN-32C5S2s-BN-D0.4-64C3v-BN-64C3v-BN-64C5S2s-BN-D0.4-128C4v-BN-F-D0.4-10",
                Padding::Valid,
            ),
        ),
        ("resnet20", zoo::builtin("resnet20", &[32, 32, 3], 10).unwrap().unwrap()),
        (
            "inception",
            notation(
                "32x32x3-16C3-BN-I[16C1 | 16C1-24C3 | 8C1-8C5 | P3S1s-8C1]-P2-I[32C1 | 16C1-32C3 | A3S1s-16C1]-GAP-D0.2-10",
                Padding::Same,
            ),
        ),
        ("mixed", mixed()),
        ("depthwise", mobile),
        (
            "mobilenet_v2",
            zoo::builtin("mobilenet_v2", &[64, 64, 3], 10).unwrap().unwrap(),
        ),
        (
            "efficientnet_b0",
            zoo::builtin("efficientnet_b0", &[64, 64, 3], 10)
                .unwrap()
                .unwrap(),
        ),
        (
            "efficientnet_lite0",
            zoo::builtin("efficientnet_lite0", &[64, 64, 3], 10)
                .unwrap()
                .unwrap(),
        ),
    ];
    specs
        .into_iter()
        .map(|(n, s)| (n, randomized(s.build(7).unwrap())))
        .collect()
}

/// EfficientNet-B0's squeeze-and-excitation: a map times a gate computed
/// from it (global pooling, Dense + swish, Dense + sigmoid), then a product
/// of two maps of one shape.
fn squeeze_excite() -> convnet_nn::ModelSpec {
    use convnet_nn::{Activation, Conv2dConfig, DenseConfig, LayerSpec, ModelSpec};
    let mut g = ModelSpec::new(&[8, 8, 3]);
    let x = g.input();
    let conv = |f| LayerSpec::Conv2D(Conv2dConfig::new(f, 3).with_padding(Padding::Same));
    let h = g.apply(conv(12), &[&x]);
    let p = g.apply(LayerSpec::GlobalAveragePooling2D, &[&h]);
    let dense = |u, a| LayerSpec::Dense(DenseConfig::new(u).with_activation(a));
    let s = g.apply(dense(3, Activation::Swish), &[&p]);
    let s = g.apply(dense(12, Activation::Sigmoid), &[&s]);
    let gated = g.apply(LayerSpec::Multiply, &[&h, &s]);
    let other = g.apply(conv(12), &[&gated]);
    let both = g.apply(LayerSpec::Multiply, &[&gated, &other]);
    let q = g.apply(LayerSpec::GlobalAveragePooling2D, &[&both]);
    g.apply(dense(5, Activation::Softmax), &[&q]);
    g
}

/// A ShuffleNet V2 unit: the channels split in two (ChannelSlice -> ONNX
/// Slice), one half through 1x1, depthwise 3x3, 1x1, concatenated with the
/// other, shuffled (Reshape-Transpose-Reshape); a slice of a vector too.
fn shuffle_unit() -> convnet_nn::ModelSpec {
    use convnet_nn::{Activation, Conv2dConfig, DepthwiseConv2dConfig, LayerSpec, ModelSpec};
    let mut g = ModelSpec::new(&[8, 8, 3]);
    let x = g.input();
    let conv = |f, k| {
        LayerSpec::Conv2D(
            Conv2dConfig::new(f, k)
                .with_padding(Padding::Same)
                .with_activation(Activation::Relu),
        )
    };
    let h = g.apply(conv(12, 3), &[&x]);
    let a = g.apply(LayerSpec::ChannelSlice { channels: [0, 6] }, &[&h]);
    let b = g.apply(LayerSpec::ChannelSlice { channels: [6, 12] }, &[&h]);
    let b = g.apply(conv(6, 1), &[&b]);
    let dw = DepthwiseConv2dConfig::new(3).with_padding(Padding::Same);
    let b = g.apply(LayerSpec::DepthwiseConv2D(dw), &[&b]);
    let b = g.apply(conv(6, 1), &[&b]);
    let cat = g.apply(LayerSpec::Concatenate, &[&a, &b]);
    let s = g.apply(LayerSpec::ChannelShuffle { groups: 2 }, &[&cat]);
    let s = g.apply(LayerSpec::ChannelShuffle { groups: 3 }, &[&s]);
    let p = g.apply(LayerSpec::GlobalAveragePooling2D, &[&s]);
    let v = g.apply(LayerSpec::ChannelSlice { channels: [2, 11] }, &[&p]);
    g.apply(LayerSpec::Dense(convnet_nn::DenseConfig::new(4)), &[&v]);
    g
}

/// Strided valid conv, zero padding, leaky ReLU, ELU, same-padded pools, a
/// residual block, flatten of a 3x3 map, BN after dense, sigmoid, tanh.
fn mixed() -> convnet_nn::ModelSpec {
    use convnet_nn::{Activation, LayerSpec, Node};
    let opts = NotationOptions {
        padding: Padding::Same,
        ..Default::default()
    };
    let mut s = parse_notation(
        "17x15x2-8C3S2v-6C3-P3S2s-A2S1s-R[6C3-BN-6C3-BN]-F-12-BN-D0.1-5",
        &opts,
    )
    .unwrap();
    let act = |a| Node::chained(LayerSpec::Activation { activation: a });
    s.layers.insert(
        1,
        Node::chained(LayerSpec::ZeroPadding2D {
            padding: [[1, 2], [0, 1]],
        }),
    );
    s.layers
        .insert(2, act(Activation::LeakyRelu { alpha: 0.2 }));
    s.layers.insert(4, act(Activation::Elu { alpha: 0.7 }));
    s.layers.insert(5, act(Activation::Tanh));
    let n = s.layers.len();
    s.layers.insert(n - 1, act(Activation::Sigmoid));
    s
}

/// Batch-norm statistics and affine parameters away from their initial
/// (0, 1) values, so that a wrong conversion of any of them shows.
fn randomized(mut m: Model) -> Model {
    let mut rng = Rng::seed_from_u64(11);
    for p in m.params_mut() {
        let (lo, hi) = match p.name {
            "moving_variance" => (0.5, 2.0),
            "gamma" => (0.5, 1.5),
            "moving_mean" | "beta" | "bias" => (-0.3, 0.3),
            _ => continue,
        };
        p.value
            .data_mut()
            .iter_mut()
            .for_each(|v| *v = rng.gen_range(lo..hi));
    }
    m
}

fn input(m: &Model, n: usize, seed: u64) -> Tensor {
    let mut rng = Rng::seed_from_u64(seed);
    let mut shape = vec![n];
    shape.extend_from_slice(m.input_shape());
    let len: usize = shape.iter().product();
    Tensor::from_vec(&shape, (0..len).map(|_| rng.gen_range(0.0..1.0)).collect()).unwrap()
}

/// NHWC -> NCHW.
fn nchw(x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let s = x.shape();
    if s.len() != 4 {
        return (s.to_vec(), x.data().to_vec());
    }
    let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for y in 0..h {
            for xx in 0..w {
                for ch in 0..c {
                    out[((b * c + ch) * h + y) * w + xx] =
                        x.data()[((b * h + y) * w + xx) * c + ch];
                }
            }
        }
    }
    (vec![n, c, h, w], out)
}

fn run_tract(bytes: &[u8], x: &Tensor) -> Vec<f32> {
    let (shape, data) = nchw(x);
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact(&shape).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let t = tract_ndarray::ArrayD::from_shape_vec(shape, data)
        .unwrap()
        .into_tensor();
    let out = model.run(tvec!(t.into())).unwrap();
    out[0]
        .to_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn weight_bytes(m: &Model) -> Vec<u8> {
    let named: Vec<(String, &Tensor)> = m
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, &p.value))
        .collect();
    tensors_to_bytes(&named).unwrap()
}

#[test]
fn exported_models_agree_with_tract_and_round_trip() {
    let dump = std::env::var_os("CONVNET_ONNX_DUMP").map(std::path::PathBuf::from);
    for (name, mut model) in models() {
        let x = input(&model, 3, 5);
        let ours = model.predict(&x, 8).unwrap();
        let bytes = convnet_onnx::to_onnx(&model).unwrap();
        let bytes = prost::Message::encode_to_vec(&bytes);
        let theirs = run_tract(&bytes, &x);
        let d = max_diff(ours.data(), &theirs);
        assert!(d <= 1e-4, "{name}: tract differs from predict by {d}");

        // Export -> import computes the same function.
        let mut back = convnet_onnx::import::import_bytes(&bytes, name).unwrap();
        let again = back.predict(&x, 8).unwrap();
        let d2 = max_diff(ours.data(), again.data());
        assert!(d2 <= 1e-5, "{name}: the re-imported model differs by {d2}");
        // Import -> export -> import: byte-identical weights and the same description.
        let bytes2 = prost::Message::encode_to_vec(&convnet_onnx::to_onnx(&back).unwrap());
        let back2 = convnet_onnx::import::import_bytes(&bytes2, name).unwrap();
        assert!(
            weight_bytes(&back) == weight_bytes(&back2),
            "{name}: weights changed"
        );
        assert_eq!(back.spec(), back2.spec(), "{name}: description changed");
        // What ONNX cannot say survives in the metadata: dropout rates and
        // stochastic depth (an Identity in the file) come back as layers.
        let kinds = |m: &Model, kind: &str| -> Vec<String> {
            m.spec()
                .layers
                .iter()
                .filter(|n| n.layer.kind() == kind)
                .map(|n| format!("{:?}", n.layer))
                .collect()
        };
        for kind in ["Dropout", "StochasticDepth"] {
            assert_eq!(kinds(&model, kind), kinds(&back, kind), "{name}: {kind}");
        }
        eprintln!("{name}: tract max |diff| {d:.2e}, re-import {d2:.2e}");
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.onnx")), &bytes).unwrap();
            let (shape, data) = nchw(&x);
            let le = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
            std::fs::write(dir.join(format!("{name}.input.bin")), le(&data)).unwrap();
            std::fs::write(dir.join(format!("{name}.expected.bin")), le(ours.data())).unwrap();
            let meta = serde_json::json!({"input": shape, "output": ours.shape()});
            std::fs::write(dir.join(format!("{name}.json")), meta.to_string()).unwrap();
        }
    }
}
