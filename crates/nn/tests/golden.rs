//! Golden tests against PyTorch (and Keras, for SeparableConv2D).
//!
//! The fixtures in `tests/golden/` were written by
//! `tools/golden/gen_golden.py` (PyTorch in f64 on f32-rounded inputs,
//! Keras's conventions reproduced by hand; see the script's docstring), so
//! these tests need no Python.
//!
//! Tolerance policy (the one used everywhere): a value passes when
//! `|ours - golden| <= 1e-4 * (1 + |golden|)`. Our kernels compute in f32
//! with different summation orders, so we expect about 1e-6 relative error;
//! 1e-4 leaves room for long sums without hiding real mistakes.

mod common;

use common::{cases, tensor};
use convnet_nn::*;
use rand::SeedableRng;
use serde_json::Value;

const TOL: f32 = 1e-4;

fn pair(v: &Value) -> [usize; 2] {
    [
        v[0].as_u64().unwrap() as usize,
        v[1].as_u64().unwrap() as usize,
    ]
}

fn padding(v: &Value) -> Padding {
    match v.as_str().unwrap() {
        "same" => Padding::Same,
        _ => Padding::Valid,
    }
}

#[track_caller]
fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            (g - w).abs() <= TOL * (1.0 + w.abs()),
            "{what}: index {i}: ours {g} vs the reference {w}"
        );
    }
}

fn set_param(layer: &mut dyn Layer, name: &str, value: &Tensor) {
    let p = layer
        .params_mut()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter {name}"));
    assert_eq!(p.value.shape(), value.shape(), "parameter {name}");
    p.value = value.clone();
}

fn grad(layer: &dyn Layer, name: &str) -> Tensor {
    layer
        .params()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
        .grad
        .clone()
}

fn run(layer: &mut dyn Layer, x: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
    let mut rng = Rng::seed_from_u64(0);
    let y = layer.forward(x.clone(), Mode::Train, &mut rng);
    let dx = layer.backward(dy.clone());
    (y, dx)
}

/// One Conv2D case of `conv2d.json` or `grouped.json` (`groups` absent:
/// 1): forward, input, kernel and bias gradients against PyTorch's.
fn check_conv_case(c: &Value) {
    let k = pair(&c["kernel"]);
    let s = pair(&c["stride"]);
    let d = pair(&c["dilation"]);
    let groups = c["groups"].as_u64().unwrap_or(1) as usize;
    let mut cfg = Conv2dConfig::new(c["filters"].as_u64().unwrap() as usize, 1)
        .with_kernel(k[0], k[1])
        .with_groups(groups)
        .with_padding(padding(&c["padding"]));
    cfg.strides = s;
    cfg.dilation_rate = d;
    let x = tensor(&c["x"]);
    let mut rng = Rng::seed_from_u64(0);
    let mut layer = cfg.build(&x.shape()[1..], &mut rng).unwrap();
    set_param(&mut layer, "kernel", &tensor(&c["kernel_hwio"]));
    set_param(&mut layer, "bias", &tensor(&c["bias"]));
    let (y, dx) = run(&mut layer, &x, &tensor(&c["dy"]));
    let what = format!(
        "conv groups={groups} k={k:?} s={s:?} d={d:?} {}",
        c["padding"]
    );
    assert_close(&y, &tensor(&c["y"]), &format!("{what} forward"));
    assert_close(&dx, &tensor(&c["dx"]), &format!("{what} dx"));
    for (name, want) in [("kernel", "dkernel"), ("bias", "dbias")] {
        let want = tensor(&c[want]);
        assert_close(&grad(&layer, name), &want, &format!("{what} d{name}"));
    }
}

#[test]
fn conv2d_matches_pytorch() {
    let all = cases("conv2d.json");
    assert_eq!(all.len(), 8);
    all.iter().for_each(check_conv_case);
}

#[test]
fn grouped_conv2d_matches_pytorch() {
    let all = cases("grouped.json");
    assert_eq!(all.len(), 5);
    all.iter().for_each(check_conv_case);
}

#[test]
fn depthwise_conv2d_matches_pytorch() {
    let all = cases("depthwise.json");
    assert_eq!(all.len(), 7);
    for c in all {
        let k = pair(&c["kernel"]);
        let s = pair(&c["stride"]);
        let d = pair(&c["dilation"]);
        let mut cfg = DepthwiseConv2dConfig::new(1)
            .with_kernel(k[0], k[1])
            .with_depth_multiplier(c["multiplier"].as_u64().unwrap() as usize)
            .with_padding(padding(&c["padding"]));
        cfg.strides = s;
        cfg.dilation_rate = d;
        let x = tensor(&c["x"]);
        let mut rng = Rng::seed_from_u64(0);
        let mut layer = cfg.build(&x.shape()[1..], &mut rng).unwrap();
        set_param(&mut layer, "depthwise_kernel", &tensor(&c["kernel_hwcm"]));
        set_param(&mut layer, "bias", &tensor(&c["bias"]));
        let (y, dx) = run(&mut layer, &x, &tensor(&c["dy"]));
        let what = format!(
            "depthwise m={} k={k:?} s={s:?} d={d:?} {}",
            c["multiplier"], c["padding"]
        );
        assert_close(&y, &tensor(&c["y"]), &format!("{what} forward"));
        assert_close(&dx, &tensor(&c["dx"]), &format!("{what} dx"));
        assert_close(
            &grad(&layer, "depthwise_kernel"),
            &tensor(&c["dkernel"]),
            &format!("{what} dkernel"),
        );
        assert_close(
            &grad(&layer, "bias"),
            &tensor(&c["dbias"]),
            &format!("{what} dbias"),
        );
    }
}

#[test]
fn separable_conv2d_matches_keras() {
    // Keras's own SeparableConv2D (tools/golden/gen_separable_golden.py):
    // weights in its layouts and names, gradients from tf.GradientTape.
    let all = cases("separable.json");
    assert_eq!(all.len(), 4);
    for c in all {
        let u = |k: &str| c[k].as_u64().unwrap() as usize;
        let activation: Activation =
            serde_json::from_value(serde_json::json!({ "name": c["activation"] })).unwrap();
        let cfg = SeparableConv2dConfig::new(u("filters"), u("kernel"))
            .with_stride(u("strides"))
            .with_depth_multiplier(u("multiplier"))
            .with_padding(padding(&c["padding"]))
            .with_activation(activation);
        let x = tensor(&c["x"]);
        let mut layer = cfg
            .build(&x.shape()[1..], &mut Rng::seed_from_u64(0))
            .unwrap();
        for name in ["depthwise_kernel", "pointwise_kernel", "bias"] {
            set_param(&mut layer, name, &tensor(&c[name]));
        }
        let (y, dx) = run(&mut layer, &x, &tensor(&c["dy"]));
        let what = format!("separable {cfg:?}");
        assert_close(&y, &tensor(&c["y"]), &format!("{what} forward"));
        assert_close(&dx, &tensor(&c["dx"]), &format!("{what} dx"));
        for name in ["depthwise_kernel", "pointwise_kernel", "bias"] {
            let want = tensor(&c[format!("d{name}").as_str()]);
            assert_close(&grad(&layer, name), &want, &format!("{what} d{name}"));
        }
    }
}

#[test]
fn pooling_matches_pytorch() {
    let all = cases("pooling.json");
    assert_eq!(all.len(), 10);
    for c in all {
        let p = pair(&c["pool"]);
        let s = pair(&c["stride"]);
        let cfg = PoolConfig {
            pool_size: p,
            strides: Some(s),
            padding: padding(&c["padding"]),
            ceil_mode: false,
        };
        let spec = match c["kind"].as_str().unwrap() {
            "max" => LayerSpec::MaxPooling2D(cfg),
            _ => LayerSpec::AveragePooling2D(cfg),
        };
        let x = tensor(&c["x"]);
        let mut rng = Rng::seed_from_u64(0);
        let mut layer = spec.build(&x.shape()[1..], &mut rng).unwrap();
        let (y, dx) = run(layer.as_mut(), &x, &tensor(&c["dy"]));
        let what = format!("{} pool {p:?} s={s:?} {}", c["kind"], c["padding"]);
        assert_close(&y, &tensor(&c["y"]), &format!("{what} forward"));
        assert_close(&dx, &tensor(&c["dx"]), &format!("{what} dx"));
    }
}

#[test]
fn batch_norm_matches_pytorch_with_keras_moving_statistics() {
    let all = cases("batch_norm.json");
    assert_eq!(all.len(), 2);
    for c in all {
        let x = tensor(&c["x"]);
        let mut rng = Rng::seed_from_u64(0);
        // Keras's and PyTorch's update (no bias correction), which convnet keeps behind a switch.
        let mut layer = BatchNormConfig::new()
            .with_keras_moving_average(true)
            .build(&x.shape()[1..])
            .unwrap();
        set_param(&mut layer, "gamma", &tensor(&c["gamma"]));
        set_param(&mut layer, "beta", &tensor(&c["beta"]));
        let (y, dx) = run(&mut layer, &x, &tensor(&c["dy"]));
        let what = format!("batch norm {:?}", x.shape());
        assert_close(&y, &tensor(&c["y_train"]), &format!("{what} train forward"));
        assert_close(&dx, &tensor(&c["dx"]), &format!("{what} dx"));
        assert_close(
            &grad(&layer, "gamma"),
            &tensor(&c["dgamma"]),
            &format!("{what} dgamma"),
        );
        assert_close(
            &grad(&layer, "beta"),
            &tensor(&c["dbeta"]),
            &format!("{what} dbeta"),
        );
        let state = |name: &str| {
            layer
                .params()
                .into_iter()
                .find(|p| p.name == name)
                .unwrap()
                .value
                .clone()
        };
        assert_close(
            &state("moving_mean"),
            &tensor(&c["moving_mean"]),
            "moving mean",
        );
        assert_close(
            &state("moving_variance"),
            &tensor(&c["moving_variance"]),
            "moving variance",
        );
        let y_eval = layer.forward(x.clone(), Mode::Eval, &mut rng);
        assert_close(
            &y_eval,
            &tensor(&c["y_eval"]),
            &format!("{what} eval forward"),
        );
    }
}

#[test]
fn losses_match_pytorch() {
    let all = cases("losses.json");
    assert_eq!(all.len(), 7);
    for c in all {
        let name = c["loss"].as_str().unwrap();
        let loss = Loss::from_name(name).unwrap_or_else(|| panic!("unknown loss {name}"));
        let (value, g) = loss.compute(&tensor(&c["pred"]), &tensor(&c["target"]));
        let want = c["value"].as_f64().unwrap() as f32;
        assert!(
            (value - want).abs() <= TOL * (1.0 + want.abs()),
            "{name}: ours {value} vs PyTorch {want}"
        );
        assert_close(&g, &tensor(&c["grad"]), &format!("{name} gradient"));
    }
}

#[test]
fn dense_with_each_activation_matches_pytorch() {
    let all = cases("dense_activations.json");
    assert_eq!(all.len(), 7);
    for c in all {
        let name = c["activation"].as_str().unwrap();
        let act = Activation::from_name(name).unwrap();
        let x = tensor(&c["x"]);
        let mut rng = Rng::seed_from_u64(0);
        let mut layer = DenseConfig::new(5)
            .with_activation(act)
            .build(&x.shape()[1..], &mut rng)
            .unwrap();
        set_param(&mut layer, "kernel", &tensor(&c["kernel"]));
        set_param(&mut layer, "bias", &tensor(&c["bias"]));
        let (y, dx) = run(&mut layer, &x, &tensor(&c["dy"]));
        assert_close(&y, &tensor(&c["y"]), &format!("dense+{name} forward"));
        assert_close(&dx, &tensor(&c["dx"]), &format!("dense+{name} dx"));
        assert_close(
            &grad(&layer, "kernel"),
            &tensor(&c["dkernel"]),
            &format!("dense+{name} dkernel"),
        );
        assert_close(
            &grad(&layer, "bias"),
            &tensor(&c["dbias"]),
            &format!("dense+{name} dbias"),
        );
    }
}
