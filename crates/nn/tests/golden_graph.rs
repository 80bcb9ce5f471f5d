//! Golden tests of graph blocks against PyTorch: torchvision's ResNet
//! BasicBlock with a projection shortcut and batch norm, and GoogLeNet's
//! Inception module, in training mode: output, input gradient and every
//! parameter gradient. Fixture: `tests/golden/graph.json`, written by
//! `tools/golden/gen_graph_golden.py`. Tolerance as in `golden.rs`:
//! `|ours - PyTorch| <= 1e-4 * (1 + |PyTorch|)`.

mod common;

use common::{cases, tensor};
use convnet_nn::*;
use serde_json::Value;

#[track_caller]
fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}: index {i}: ours {g} vs PyTorch {w}"
        );
    }
}

fn conv(g: &mut ModelSpec, x: &str, filters: usize, k: usize, stride: usize, pad: usize) -> String {
    let c = Conv2dConfig::new(filters, k)
        .with_stride(stride)
        .with_padding(Padding::symmetric(pad))
        .with_bias(false);
    g.apply(LayerSpec::Conv2D(c), &[x])
}

fn bn(g: &mut ModelSpec, x: &str, eps: f32) -> String {
    let mut c = BatchNormConfig::new();
    c.epsilon = eps;
    g.apply(LayerSpec::BatchNormalization(c), &[x])
}

fn relu(g: &mut ModelSpec, x: &str) -> String {
    g.apply(
        LayerSpec::Activation {
            activation: Activation::Relu,
        },
        &[x],
    )
}

fn basic_conv(
    g: &mut ModelSpec,
    x: &str,
    filters: usize,
    k: usize,
    pad: usize,
    eps: f32,
) -> String {
    let h = conv(g, x, filters, k, 1, pad);
    let h = bn(g, &h, eps);
    relu(g, &h)
}

/// The nodes in the order the generator numbers them.
fn graph(name: &str, input: &[usize], eps: f32) -> ModelSpec {
    let mut g = ModelSpec::new(input);
    let x = g.input();
    if name == "residual" {
        let h = conv(&mut g, &x, 6, 3, 2, 1);
        let h = bn(&mut g, &h, eps);
        let h = relu(&mut g, &h);
        let h = conv(&mut g, &h, 6, 3, 1, 1);
        let h = bn(&mut g, &h, eps);
        let p = conv(&mut g, &x, 6, 1, 2, 0);
        let p = bn(&mut g, &p, eps);
        let s = g.apply(LayerSpec::Add, &[&h, &p]);
        relu(&mut g, &s);
    } else {
        let b1 = basic_conv(&mut g, &x, 4, 1, 0, eps);
        let h = basic_conv(&mut g, &x, 3, 1, 0, eps);
        let b2 = basic_conv(&mut g, &h, 5, 3, 1, eps);
        let h = basic_conv(&mut g, &x, 2, 1, 0, eps);
        let b3 = basic_conv(&mut g, &h, 3, 3, 1, eps);
        let pool = PoolConfig::new(3)
            .with_stride(1)
            .with_padding(Padding::symmetric(1))
            .with_ceil_mode(true);
        let h = g.apply(LayerSpec::MaxPooling2D(pool), &[&x]);
        let b4 = basic_conv(&mut g, &h, 2, 1, 0, eps);
        g.apply(LayerSpec::Concatenate, &[&b1, &b2, &b3, &b4]);
    }
    g
}

#[test]
fn residual_block_and_inception_module_match_pytorch() {
    let all = cases("graph.json");
    assert_eq!(all.len(), 2);
    for c in all {
        let name = c["name"].as_str().unwrap();
        let x = tensor(&c["x"]);
        let eps = c["eps"].as_f64().unwrap() as f32;
        let mut model = graph(name, &x.shape()[1..], eps).build(0).unwrap();
        let params = c["params"].as_object().unwrap();
        let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
        let mut set = 0;
        for (n, p) in names.iter().zip(model.params_mut()) {
            if let Some(v) = params.get(n) {
                let v = tensor(v);
                assert_eq!(v.shape(), p.value.shape(), "{name}: {n}");
                p.value = v;
                set += 1;
            }
        }
        assert_eq!(
            set,
            params.len(),
            "{name}: every fixture parameter is a model parameter"
        );
        let y = model.forward(&x, Mode::Train, false);
        assert_close(&y, &tensor(&c["y"]), &format!("{name} forward"));
        let dx = model.backward_with_input(tensor(&c["r"]));
        assert_close(&dx, &tensor(&c["dx"]), &format!("{name} input gradient"));
        let grads: &serde_json::Map<String, Value> = c["grads"].as_object().unwrap();
        for (n, p) in model.named_params() {
            if let Some(g) = grads.get(&n) {
                assert_close(&p.grad, &tensor(g), &format!("{name} gradient of {n}"));
            }
        }
    }
}
