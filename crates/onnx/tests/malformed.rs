//! Bad ONNX input: a clear error naming the file, the field or node, and
//! what was expected; never a panic.

use convnet_nn::{parse_notation, NotationOptions};
use convnet_onnx::proto::*;
use convnet_onnx::{import::import_bytes, to_onnx, OnnxError};
use prost::Message;

fn small() -> ModelProto {
    let spec = parse_notation("8x8x1-2C3-P2-F-3", &NotationOptions::default()).unwrap();
    to_onnx(&spec.build(1).unwrap()).unwrap()
}

fn err(m: &ModelProto) -> String {
    match import_bytes(&m.encode_to_vec(), "bad.onnx") {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

fn has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{p}' not in: {msg}");
    }
}

#[test]
fn truncated_and_garbage_files() {
    let bytes = small().encode_to_vec();
    for cut in [1, 7, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let e = import_bytes(&bytes[..cut], "cut.onnx")
            .err()
            .expect("refused");
        assert!(matches!(e, OnnxError::Malformed { .. }), "{e}");
        has(&e.to_string(), &["cut.onnx"]);
    }
    let e = import_bytes(b"\xff\xff\xff\xff not protobuf", "junk.onnx")
        .err()
        .unwrap();
    has(&e.to_string(), &["junk.onnx", "not an ONNX model"]);
}

#[test]
fn missing_graph_inputs_and_outputs() {
    let mut m = small();
    m.graph = None;
    has(&err(&m), &["bad.onnx", "field 'graph' is missing"]);
    let mut m = small();
    let extra = m.graph.as_ref().unwrap().input[0].clone();
    m.graph.as_mut().unwrap().input.push(ValueInfoProto {
        name: "second".into(),
        ..extra
    });
    has(
        &err(&m),
        &["field 'graph.input'", "expected one input", "found 2"],
    );
    let mut m = small();
    m.graph.as_mut().unwrap().output.clear();
    has(
        &err(&m),
        &["field 'graph.output'", "expected one output, found 0"],
    );
    let mut m = small();
    m.graph.as_mut().unwrap().output[0].name = "nowhere".into();
    has(&err(&m), &["output 'nowhere' is not computed by any node"]);
}

#[test]
fn symbolic_image_size_is_refused() {
    let mut m = small();
    let dims = &mut m.graph.as_mut().unwrap().input[0]
        .r#type
        .as_mut()
        .unwrap()
        .tensor_type
        .as_mut()
        .unwrap()
        .shape
        .as_mut()
        .unwrap()
        .dim;
    dims[2].value = Some(DimValue::DimParam("H".into()));
    has(
        &err(&m),
        &["input 'input'", "dimension 2 is not a fixed size"],
    );
}

#[test]
fn tensor_data_that_does_not_match_its_dims() {
    let mut m = small();
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    let name = t.name.clone();
    t.raw_data.truncate(t.raw_data.len() - 4);
    has(
        &err(&m),
        &[
            &format!("tensor '{name}'"),
            "need 72 bytes of raw_data, found 68",
        ],
    );
    let mut m = small();
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    t.dims = vec![-2, 1, 3, 3];
    has(&err(&m), &["negative dimension"]);
    let mut m = small();
    m.graph.as_mut().unwrap().initializer[0].data_type = 16;
    has(&err(&m), &["data type 16", "expected FLOAT (1)"]);
    let mut m = small();
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    t.raw_data.clear();
    t.data_location = 1;
    t.external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "../../etc/passwd".into(),
    }];
    has(&err(&m), &["data in an external file"]);
}

#[test]
fn dangling_inputs_and_wrong_weight_shapes() {
    let mut m = small();
    m.graph.as_mut().unwrap().node[1].input[0] = "ghost".into();
    has(&err(&m), &["reads 'ghost', which no earlier node computes"]);
    let mut m = small();
    let g = m.graph.as_mut().unwrap();
    let w = g
        .initializer
        .iter_mut()
        .find(|t| t.dims.len() == 4)
        .unwrap();
    w.dims[1] = 3;
    w.raw_data = vec![0; 2 * 3 * 9 * 4];
    has(
        &err(&m),
        &["(Conv)", "W has 3 input channels, its input has 1"],
    );
}

#[test]
fn unsupported_ops_and_attributes_name_the_node() {
    let mut m = small();
    m.graph.as_mut().unwrap().node[0].op_type = "ConvTranspose".into();
    let e = err(&m);
    has(
        &e,
        &[
            "bad.onnx",
            "node 'conv2d' (ConvTranspose)",
            "operator ConvTranspose is not supported",
            "supported: Conv (any group)",
        ],
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let mut m = small();
    let conv = &mut m.graph.as_mut().unwrap().node[0];
    conv.attribute.retain(|a| a.name != "group");
    conv.attribute.push(AttributeProto {
        name: "group".into(),
        r#type: attribute_type::INT,
        i: 2,
        ..Default::default()
    });
    has(
        &err(&m),
        &[
            "(Conv)",
            "group 2: the input's 1 channels and W's 2 filters must split into 2 groups",
        ],
    );
    let mut m = small();
    m.graph.as_mut().unwrap().node[0]
        .attribute
        .push(AttributeProto {
            name: "quantize".into(),
            r#type: attribute_type::INT,
            ..Default::default()
        });
    has(
        &err(&m),
        &["attribute 'quantize' is not supported (known: kernel_shape"],
    );
    // A Clip with other bounds than ReLU6's or ReLU's (opset 6's attributes).
    let mut m = small();
    let relu = m
        .graph
        .as_mut()
        .unwrap()
        .node
        .iter_mut()
        .find(|n| n.op_type == "Relu");
    let relu = relu.expect("the conv's ReLU");
    relu.op_type = "Clip".into();
    relu.attribute.push(AttributeProto {
        name: "max".into(),
        r#type: attribute_type::FLOAT,
        f: 1.0,
        ..Default::default()
    });
    has(
        &err(&m),
        &[
            "(Clip)",
            "Clip(min none, max 1): only Clip(0, 6) (ReLU6) and Clip(0) (ReLU)",
        ],
    );
    let mut m = small();
    m.graph.as_mut().unwrap().node[0].domain = "com.microsoft".into();
    has(&err(&m), &["domain 'com.microsoft' is not supported"]);
}

#[test]
fn external_data_must_lie_beside_the_model_and_fit_in_its_file() {
    let dir = std::env::temp_dir().join(format!("convnet-onnx-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |location: &str, offset: &str| {
        let mut m = small();
        let t = &mut m.graph.as_mut().unwrap().initializer[0];
        let len = t.raw_data.len();
        t.raw_data.clear();
        t.data_location = 1;
        t.external_data = vec![
            StringStringEntryProto {
                key: "location".into(),
                value: location.into(),
            },
            StringStringEntryProto {
                key: "offset".into(),
                value: offset.into(),
            },
            StringStringEntryProto {
                key: "length".into(),
                value: len.to_string(),
            },
        ];
        let p = dir.join("m.onnx");
        std::fs::write(&p, m.encode_to_vec()).unwrap();
        convnet_onnx::import(&p).err().map(|e| e.to_string())
    };
    has(
        &write("../secret.bin", "0").unwrap(),
        &["m.onnx", "must be a file name in the model's folder"],
    );
    has(
        &write("/etc/passwd", "0").unwrap(),
        &["must be a file name in the model's folder"],
    );
    has(
        &write("absent.bin", "0").unwrap(),
        &["absent.bin", "external data of tensor"],
    );
    std::fs::write(dir.join("w.bin"), vec![0u8; 100]).unwrap();
    let outside = write("w.bin", "64").unwrap();
    has(
        &outside,
        &["lies outside ", "w.bin (100 bytes)", "(bytes 64.."],
    );
    assert!(!outside.contains("Some("), "{outside}");
    has(
        &write("w.bin", "x").unwrap(),
        &["external data 'offset' is 'x', expected a byte count"],
    );
    assert!(
        write("w.bin", "0").is_none(),
        "a valid external file imports"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn constant_folding_refuses_what_it_cannot_compute() {
    let i64s = |name: &str, dims: &[i64], v: Vec<i64>| TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: v,
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str]| NodeProto {
        op_type: op.into(),
        name: format!("my_{op}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![format!("{op}_out")],
        ..Default::default()
    };
    for (op, inputs, consts, needle) in [
        // 2^32 values: refused before anything is allocated.
        (
            "ConstantOfShape",
            vec!["shape"],
            vec![i64s("shape", &[2], vec![1 << 16, 1 << 16])],
            "larger than 16777216 values",
        ),
        (
            "ConstantOfShape",
            vec!["shape"],
            vec![i64s("shape", &[1], vec![-3])],
            "negative dimension in shape [-3]",
        ),
        (
            "Div",
            vec!["a", "b"],
            vec![i64s("a", &[2], vec![4, 6]), i64s("b", &[2], vec![2, 0])],
            "an integer division by zero",
        ),
        (
            "Add",
            vec!["a", "b"],
            vec![i64s("a", &[2], vec![1, 2]), i64s("b", &[3], vec![1, 2, 3])],
            "shapes [2] and [3] do not broadcast",
        ),
        (
            "Slice",
            vec!["a", "b", "b", "b", "z"],
            vec![
                i64s("a", &[2], vec![1, 2]),
                i64s("b", &[1], vec![0]),
                i64s("z", &[1], vec![0]),
            ],
            "a step of 0",
        ),
    ] {
        let mut m = small();
        let g = m.graph.as_mut().unwrap();
        g.initializer.extend(consts);
        g.node.insert(0, node(op, &inputs));
        let e = err(&m);
        has(&e, &["bad.onnx", &format!("node 'my_{op}' ({op})"), needle]);
    }
}
