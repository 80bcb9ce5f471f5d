//! ONNX files written by PyTorch (`tools/onnx/gen_torch_fixtures.py`):
//! imported models compute PyTorch's outputs to 1e-4, and import -> export
//! -> import gives byte-identical weights.

use convnet_nn::save::tensors_to_bytes;
use convnet_nn::{LayerSpec, Model, Tensor};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// NCHW data -> our NHWC tensor.
fn nhwc(shape: &[usize], data: &[f32]) -> Tensor {
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let mut out = vec![0.0; data.len()];
    for b in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    out[((b * h + y) * w + x) * c + ch] = data[((b * c + ch) * h + y) * w + x];
                }
            }
        }
    }
    Tensor::from_vec(&[n, h, w, c], out).unwrap()
}

fn weight_bytes(m: &Model) -> Vec<u8> {
    let named: Vec<(String, &Tensor)> = m
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, &p.value))
        .collect();
    tensors_to_bytes(&named).unwrap()
}

fn count(m: &Model, kind: &str) -> usize {
    m.spec()
        .layers
        .iter()
        .filter(|n| n.layer.kind() == kind)
        .count()
}

/// Imports `dir/name.onnx`, checks it against PyTorch's output and the
/// round trip; returns the model.
fn check(dir: &Path, name: &str, tol: f32) -> Model {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let shape: Vec<usize> = meta["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let x = nhwc(&shape, &read_f32(&dir.join(format!("{name}.input.bin"))));
    let want = read_f32(&dir.join(format!("{name}.expected.bin")));
    let mut model = convnet_onnx::import(&dir.join(format!("{name}.onnx")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = model.predict(&x, 8).unwrap();
    let d = got
        .data()
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert_eq!(got.len(), want.len(), "{name}: output size");
    // Relative to the outputs' size where they exceed 1 (untrained
    // full-size nets' logits reach the hundreds).
    let scale = want.iter().fold(1.0f32, |a, b| a.max(b.abs()));
    assert!(
        d <= tol * scale,
        "{name}: differs from PyTorch by {d} (outputs up to {scale})"
    );
    let bytes = prost::Message::encode_to_vec(&convnet_onnx::to_onnx(&model).unwrap());
    let back = convnet_onnx::import::import_bytes(&bytes, name).unwrap();
    assert!(
        weight_bytes(&model) == weight_bytes(&back),
        "{name}: weights changed"
    );
    assert_eq!(model.spec(), back.spec(), "{name}: description changed");
    eprintln!(
        "{name}: max |diff| to the framework that wrote it {d:.2e} (outputs up to {scale:.1})"
    );
    model
}

#[test]
fn resnet18_layout_with_batch_norm_from_torchscript_export() {
    let m = check(&fixtures(), "resnet18-ts", 1e-4);
    // 20 batch norms (17 after convs, 3 in projections), 8 residual adds, 21 convs.
    assert_eq!(count(&m, "BatchNormalization"), 20);
    assert_eq!(count(&m, "Add"), 8);
    assert_eq!(count(&m, "Conv2D"), 20);
    // PyTorch counts gamma and beta as parameters, as we do; the moving statistics are buffers.
    assert_eq!(m.param_counts().0, 45_102);
}

#[test]
fn resnet18_layout_from_the_default_dynamo_export_with_external_data() {
    let m = check(&fixtures(), "resnet18-dynamo", 1e-4);
    // Batch norm folded into the convs by the exporter.
    assert_eq!(count(&m, "BatchNormalization"), 0);
    assert_eq!(count(&m, "GlobalAveragePooling2D"), 1);
}

#[test]
fn vgg11_bn_layout_with_a_channel_first_flatten() {
    let m = check(&fixtures(), "vgg11-bn", 1e-4);
    assert_eq!(count(&m, "BatchNormalization"), 8);
    assert_eq!(count(&m, "Dense"), 3);
    // The classifier reads a flattened 2x2x32 map: its rows were permuted.
    let flat = m.spec().output_shapes().unwrap();
    let i = m
        .spec()
        .layers
        .iter()
        .position(|n| matches!(n.layer, LayerSpec::Flatten))
        .unwrap();
    assert_eq!(flat[i], vec![128]);
}

#[test]
fn googlenet_layout_with_inception_modules_and_ceil_mode_pools() {
    let m = check(&fixtures(), "googlenet", 1e-4);
    assert_eq!(count(&m, "Concatenate"), 9);
    assert_eq!(count(&m, "BatchNormalization"), 57);
    let ceil = m
        .spec()
        .layers
        .iter()
        .filter(|n| matches!(&n.layer, LayerSpec::MaxPooling2D(p) if p.ceil_mode))
        .count();
    assert_eq!(ceil, 4 + 9);
}

/// Full-size torchvision nets at 224x224x3, every `NAME.json` of the folder
/// in `CONVNET_ONNX_FULL`: written by `gen_torch_fixtures.py --full DIR`
/// (resnet18, vgg11-bn, googlenet) or `try_torchvision.py DIR` (the 11
/// nets of #33 through both exporters, those that import); checked with
/// `CONVNET_ONNX_FULL=DIR cargo test --release -p convnet-onnx -- --ignored`.
#[test]
#[ignore]
fn torchvision_full_size_nets() {
    let dir = PathBuf::from(std::env::var("CONVNET_ONNX_FULL").expect("set CONVNET_ONNX_FULL"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no NAME.json in {}", dir.display());
    for name in &names {
        let m = check(&dir, name, 1e-4);
        let expected = match name.as_str() {
            "resnet18" => Some(11_689_512),
            "vgg11-bn" => Some(132_868_840),
            "googlenet" => Some(6_624_904),
            _ => None,
        };
        if let Some(n) = expected {
            assert_eq!(m.param_counts().0, n, "{name}");
        }
    }
}

#[test]
fn input_normalization_and_softmax_around_a_torch_net() {
    let m = check(&fixtures(), "normalized", 1e-5);
    // (x - mean) / std: one frozen batch norm in front (Sub and Div folded together);
    // the softmax fused into the classifier.
    let l = &m.spec().layers;
    assert!(l[0].layer.kind() == "BatchNormalization" && !l[0].trainable);
    assert_eq!(l[1].layer.kind(), "Conv2D");
    assert_eq!(m.head(), convnet_nn::Activation::Softmax);
    let last = m.spec().layers.last().unwrap();
    assert!(
        matches!(&last.layer, LayerSpec::Dense(d) if d.activation == convnet_nn::Activation::Softmax)
    );
}

#[test]
fn a_keras_net_through_tf2onnx_nhwc_input_folded_batch_norm_computed_reshape() {
    let m = check(&fixtures(), "keras-tf2onnx", 1e-5);
    // Keras's batch norm arrives as Mul + Add: one frozen affine layer.
    assert_eq!(count(&m, "BatchNormalization"), 1);
    assert!(m
        .spec()
        .layers
        .iter()
        .any(|n| n.layer.kind() == "BatchNormalization" && !n.trainable));
    assert_eq!(count(&m, "Add"), 1);
    assert_eq!(count(&m, "Dense"), 2);
    assert_eq!(m.input_shape(), &[28, 28, 1]);
}

#[test]
fn efficientnet_lite_blocks_with_padding_computed_by_constant_folding() {
    let m = check(&fixtures(), "mobile-lite", 1e-5);
    // Every ZeroPad2d (pads written as ConstantOfShape -> ... -> Cast) folded
    // into the conv after it; the single-input Concat is the value itself.
    assert_eq!(count(&m, "ZeroPadding2D"), 0);
    assert_eq!(count(&m, "Concatenate"), 0);
    assert_eq!(count(&m, "DepthwiseConv2D"), 3);
    assert_eq!(count(&m, "Conv2D"), 8);
    assert_eq!(count(&m, "BatchNormalization"), 11);
    assert_eq!(count(&m, "Add"), 1);
    // TensorFlow's `same` at stride 2 pads the odd pixel bottom/right.
    let pads: Vec<[usize; 4]> = m
        .spec()
        .layers
        .iter()
        .filter_map(|n| match &n.layer {
            LayerSpec::DepthwiseConv2D(c) => match c.padding {
                convnet_nn::Padding::Explicit(p) => Some(p),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(pads, vec![[1, 1, 1, 1], [1, 2, 1, 2], [0, 1, 0, 1]]);
    assert_eq!(m.param_counts().0, 4_326);
}

#[test]
fn grouped_convolutions_from_torchscript_export() {
    let m = check(&fixtures(), "grouped", 1e-5);
    let groups: Vec<usize> = m
        .spec()
        .layers
        .iter()
        .filter_map(|n| match &n.layer {
            LayerSpec::Conv2D(c) => Some(c.groups),
            _ => None,
        })
        .collect();
    assert_eq!(groups, vec![2, 4, 4]);
    // 3x3 kernels over C/G channels: 3*3*2*8 + 8, 3*3*2*8, 3*3*2*12 + 12; BN 16; fc 65.
    assert_eq!(m.param_counts().0, 152 + 144 + 228 + 16 + 65);
}

#[test]
fn shufflenet_units_split_and_shuffle_their_channels_through_both_exporters() {
    for name in ["shuffle-ts", "shuffle-dynamo"] {
        let m = check(&fixtures(), name, 1e-5);
        // Three channel shuffles (Reshape-Transpose-Reshape); two stride-1
        // units each take both halves of a split (TorchScript: two Slices
        // with ends from Shape arithmetic; dynamo: a Split whose first
        // half passes through to the Concatenate).
        assert_eq!(count(&m, "ChannelShuffle"), 3, "{name}");
        assert_eq!(count(&m, "ChannelSlice"), 4, "{name}");
        assert_eq!(count(&m, "Concatenate"), 3, "{name}");
        let slices: Vec<[usize; 2]> = m
            .spec()
            .layers
            .iter()
            .filter_map(|n| match n.layer {
                LayerSpec::ChannelSlice { channels } => Some(channels),
                _ => None,
            })
            .collect();
        assert_eq!(slices, [[0, 8], [8, 16], [0, 8], [8, 16]], "{name}");
    }
}
