//! Import of graph shapes that convnet's own exports never write, checked
//! against an independent runtime (tract) on the same ONNX bytes: a `Pad`
//! with different top/left/bottom/right before a `Conv` (folded into the
//! conv's padding), and a `BatchNormalization` after a channel-first
//! `Flatten` (its per-feature statistics permuted to convnet's channel-last
//! order), with an epsilon far from the default.

use convnet_nn::{parse_notation, Mode, Model, NotationOptions, Rng, Tensor};
use convnet_onnx::proto::*;
use convnet_onnx::{import::import_bytes, to_onnx};
use prost::Message;
use rand::{Rng as _, SeedableRng};
use tract_onnx::prelude::*;

fn exported(notation: &str, seed: u64) -> ModelProto {
    let spec = parse_notation(notation, &NotationOptions::default()).unwrap();
    let mut m = spec.build(seed).unwrap();
    // Non-trivial biases and batch-norm statistics.
    let mut rng = Rng::seed_from_u64(seed);
    for p in m.params_mut() {
        p.value
            .data_mut()
            .iter_mut()
            .for_each(|v| *v += rng.gen_range(0.1..0.5));
    }
    to_onnx(&m).unwrap()
}

fn f32_tensor(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

/// The input `[1, H, W, C]` (NHWC for convnet, NCHW for tract).
fn input(shape: [usize; 3], seed: u64) -> (Tensor, Vec<usize>, Vec<f32>) {
    let [h, w, c] = shape;
    let mut rng = Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..h * w * c).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut nchw = vec![0.0; x.len()];
    for y in 0..h {
        for xx in 0..w {
            for ch in 0..c {
                nchw[(ch * h + y) * w + xx] = x[(y * w + xx) * c + ch];
            }
        }
    }
    (
        Tensor::from_vec(&[1, h, w, c], x).unwrap(),
        vec![1, c, h, w],
        nchw,
    )
}

fn tract(bytes: &[u8], shape: Vec<usize>, data: Vec<f32>) -> Vec<f32> {
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

/// Imports `m` without its final softmax, runs both, returns the largest
/// difference of the logits.
fn difference(m: &ModelProto, shape: [usize; 3]) -> f32 {
    // Compare logits: the final Softmax goes, its input becomes the output.
    let mut m = m.clone();
    let g = graph(&mut m);
    if let Some(i) = g.node.iter().position(|n| n.op_type == "Softmax") {
        let sm = g.node.remove(i);
        let (from, to) = (sm.input[0].clone(), sm.output[0].clone());
        for n in &mut g.node {
            for o in n.output.iter_mut().filter(|o| **o == from) {
                *o = to.clone();
            }
        }
    }
    let bytes = m.encode_to_vec();
    let mut ours: Model = import_bytes(&bytes, "edge.onnx").unwrap();
    let (x, s, nchw) = input(shape, 7);
    let want = tract(&bytes, s, nchw);
    let got = ours.forward(&x, Mode::Eval, true);
    assert_eq!(got.len(), want.len());
    got.data()
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn graph(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().unwrap()
}

/// The first Conv without its own pads, reading a value `padded` that the
/// test must make; returns its index and the value it read before.
fn unpadded_conv(g: &mut GraphProto) -> (usize, String) {
    let conv = g.node.iter().position(|n| n.op_type == "Conv").unwrap();
    let x = g.node[conv].input[0].clone();
    for a in &mut g.node[conv].attribute {
        if a.name == "pads" {
            a.ints = vec![0, 0, 0, 0];
        }
    }
    g.node[conv].input[0] = "padded".into();
    (conv, x)
}

#[test]
fn an_asymmetric_pad_before_a_conv_keeps_its_sides() {
    // Conv 3x3 "same" on 8x8; its own pads replaced by a Pad node of top 2,
    // left 0, bottom 0, right 2: the output stays 8x8, shifted.
    let mut m = exported("8x8x2-3C3-F-5", 3);
    let g = graph(&mut m);
    let (conv, x) = unpadded_conv(g);
    // ONNX order: [x1_begin, x2_begin, ..., x1_end, x2_end, ...] over N, C, H, W.
    g.initializer.push(TensorProto {
        name: "pads".into(),
        dims: vec![8],
        data_type: 7,
        int64_data: vec![0, 0, 2, 0, 0, 0, 0, 2],
        ..Default::default()
    });
    g.node
        .insert(conv, node("Pad", &[&x, "pads"], "padded", vec![]));
    let d = difference(&m, [8, 8, 2]);
    assert!(d < 1e-4, "Pad + Conv: convnet and tract differ by {d}");
}

#[test]
fn batch_norm_after_a_channel_first_flatten_is_permuted_with_its_epsilon() {
    // 4x4x2 maps flattened channel-first (32 features), then a batch norm
    // with a different mean, variance, scale and shift per feature and an
    // epsilon (0.1) comparable with the variances.
    let mut m = exported("4x4x1-2C3-F-5", 5);
    let g = graph(&mut m);
    // convnet exports Transpose(NCHW -> NHWC) + Flatten; PyTorch's exports
    // flatten NCHW directly: the Transpose goes.
    let t = g
        .node
        .iter()
        .position(|n| n.op_type == "Transpose")
        .unwrap();
    let transpose = g.node.remove(t);
    let flat = g.node.iter().position(|n| n.op_type == "Flatten").unwrap();
    g.node[flat].input[0] = transpose.input[0].clone();
    let out = g.node[flat].output[0].clone();
    for n in g.node.iter_mut().skip(flat + 1) {
        for i in n.input.iter_mut().filter(|i| **i == out) {
            *i = "normalized".into();
        }
    }
    let k = 32;
    let series = |a: f32, b: f32| (0..k).map(|i| a + b * i as f32).collect::<Vec<f32>>();
    g.initializer.extend([
        f32_tensor("bn_scale", &[k as i64], series(0.5, 0.05)),
        f32_tensor("bn_bias", &[k as i64], series(-0.3, 0.02)),
        f32_tensor("bn_mean", &[k as i64], series(-0.2, 0.03)),
        f32_tensor("bn_var", &[k as i64], series(0.01, 0.004)),
    ]);
    let eps = AttributeProto {
        name: "epsilon".into(),
        r#type: attribute_type::FLOAT,
        f: 0.1,
        ..Default::default()
    };
    g.node.insert(
        flat + 1,
        node(
            "BatchNormalization",
            &[&out, "bn_scale", "bn_bias", "bn_mean", "bn_var"],
            "normalized",
            vec![eps],
        ),
    );
    let d = difference(&m, [4, 4, 1]);
    assert!(
        d < 1e-4,
        "Flatten + BatchNormalization: convnet and tract differ by {d}"
    );
}

#[test]
fn the_unchanged_exports_agree() {
    for (n, s) in [("8x8x2-3C3-F-5", [8, 8, 2]), ("4x4x1-2C3-F-5", [4, 4, 1])] {
        let d = difference(&exported(n, 3), s);
        assert!(d < 1e-4, "{n}: {d}");
    }
}

fn i64_tensor(name: &str, dims: &[i64], data: Vec<i64>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: data,
        ..Default::default()
    }
}

#[test]
fn pads_computed_from_constants_are_folded_at_import() {
    // The Pad of the test above, its pads computed by a chain of constant
    // ops as exporters write them: float [2, 4] -> Cast to int64 -> Mul by
    // a scalar (broadcast) -> Transpose -> Reshape to [-1] (column-major
    // order: [0, 0, 2, 0, 0, 0, 0, 2]) -> Slice of all of it -> Concat
    // with an empty Gather -> Pad.
    let mut m = exported("8x8x2-3C3-F-5", 3);
    let g = graph(&mut m);
    let (conv, x) = unpadded_conv(g);
    g.initializer.extend([
        f32_tensor("base", &[4, 2], vec![0., 0., 0., 0., 1., 0., 0., 1.]),
        i64_tensor("two", &[], vec![2]),
        i64_tensor("flat", &[1], vec![-1]),
        i64_tensor("from", &[1], vec![0]),
        i64_tensor("to", &[1], vec![i64::MAX]),
        i64_tensor("none", &[0], vec![]),
    ]);
    let int = |name: &str, v: i64| AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: v,
        ..Default::default()
    };
    let perm = AttributeProto {
        name: "perm".into(),
        r#type: attribute_type::INTS,
        ints: vec![1, 0],
        ..Default::default()
    };
    let chain = [
        node("Cast", &["base"], "base_i", vec![int("to", 7)]),
        node("Mul", &["base_i", "two"], "doubled", vec![]),
        node("Transpose", &["doubled"], "t", vec![perm]),
        node("Reshape", &["t", "flat"], "r", vec![]),
        node("Slice", &["r", "from", "to"], "s", vec![]),
        node("Gather", &["s", "none"], "empty", vec![int("axis", 0)]),
        node("Concat", &["s", "empty"], "pads", vec![int("axis", 0)]),
        node("Pad", &[&x, "pads"], "padded", vec![]),
    ];
    for (k, n) in chain.into_iter().enumerate() {
        g.node.insert(conv + k, n);
    }
    let d = difference(&m, [8, 8, 2]);
    assert!(
        d < 1e-4,
        "folded pads + Conv: convnet and tract differ by {d}"
    );
    // The pads became the conv's own: no separate padding layer.
    let ours = import_bytes(&m.encode_to_vec(), "edge.onnx").unwrap();
    assert!(ours
        .spec()
        .layers
        .iter()
        .all(|n| n.layer.kind() != "ZeroPadding2D"));
}
