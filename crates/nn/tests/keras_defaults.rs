//! Every default that convnet takes from Keras, pinned to what Keras itself
//! says: `golden/keras_defaults.json` is written by
//! `tools/golden/gen_keras_defaults.py` from Keras's `get_config()`. The
//! goldens of the optimizers and layers take their settings from their
//! fixtures, so without this file a changed default (Adam's beta_2 0.999 ->
//! 0.99, batch norm's epsilon) passed every test.

use convnet_nn::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, Initializer, LayerSpec,
    OptimizerConfig, Padding, PoolConfig, Sequential,
};
use serde_json::Value;

fn keras() -> Value {
    let text = include_str!("golden/keras_defaults.json");
    serde_json::from_str(text).expect("the fixture is JSON")
}

/// Keras's value as f32, the precision convnet keeps (Keras stores 1e-3 as
/// the float32 0.0010000000474974513).
fn f(v: &Value) -> f32 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as f32
}

fn init(v: &Value) -> Initializer {
    match v.as_str().unwrap() {
        "GlorotUniform" => Initializer::GlorotUniform,
        "HeNormal" => Initializer::HeNormal,
        "HeUniform" => Initializer::HeUniform,
        "Zeros" => Initializer::Zeros,
        "Ones" => Initializer::Ones,
        other => panic!("an initializer convnet lacks: {other}"),
    }
}

fn padding(v: &Value) -> Padding {
    match v.as_str().unwrap() {
        "valid" => Padding::Valid,
        "same" => Padding::Same,
        other => panic!("padding {other}"),
    }
}

fn pair(v: &Value) -> [usize; 2] {
    let a: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    [a[0], a[1]]
}

#[test]
fn optimizer_defaults_are_keras_s() {
    let k = keras();
    let o = &k["optimizers"];
    // weight_decay null: Keras applies none for these three.
    for name in ["sgd", "adam", "rmsprop"] {
        assert!(o[name]["weight_decay"].is_null(), "{name}");
    }
    match OptimizerConfig::sgd() {
        OptimizerConfig::Sgd {
            learning_rate,
            momentum,
            nesterov,
        } => {
            assert_eq!(learning_rate, f(&o["sgd"]["learning_rate"]));
            assert_eq!(momentum, f(&o["sgd"]["momentum"]));
            assert_eq!(nesterov, o["sgd"]["nesterov"].as_bool().unwrap());
        }
        other => panic!("{other:?}"),
    }
    match OptimizerConfig::adam() {
        OptimizerConfig::Adam {
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
        } => {
            let a = &o["adam"];
            assert_eq!(learning_rate, f(&a["learning_rate"]));
            assert_eq!(beta_1, f(&a["beta_1"]));
            assert_eq!(beta_2, f(&a["beta_2"]));
            assert_eq!(epsilon, f(&a["epsilon"]));
        }
        other => panic!("{other:?}"),
    }
    match OptimizerConfig::adamw() {
        OptimizerConfig::AdamW {
            learning_rate,
            weight_decay,
            beta_1,
            beta_2,
            epsilon,
        } => {
            let a = &o["adamw"];
            assert_eq!(learning_rate, f(&a["learning_rate"]));
            assert_eq!(weight_decay, f(&a["weight_decay"]));
            assert_eq!(beta_1, f(&a["beta_1"]));
            assert_eq!(beta_2, f(&a["beta_2"]));
            assert_eq!(epsilon, f(&a["epsilon"]));
        }
        other => panic!("{other:?}"),
    }
    match OptimizerConfig::rmsprop() {
        OptimizerConfig::RmsProp {
            learning_rate,
            rho,
            epsilon,
        } => {
            let r = &o["rmsprop"];
            assert_eq!(learning_rate, f(&r["learning_rate"]));
            assert_eq!(rho, f(&r["rho"]));
            assert_eq!(epsilon, f(&r["epsilon"]));
            // convnet's RMSprop has no momentum: Keras's default is none.
            assert_eq!(f(&r["momentum"]), 0.0);
        }
        other => panic!("{other:?}"),
    }
    // The names the CLI and model files use give the same defaults.
    for name in ["sgd", "adam", "adamw", "rmsprop"] {
        let by_name = OptimizerConfig::from_name(name).unwrap();
        assert_eq!(f(&o[name]["learning_rate"]), by_name.learning_rate());
    }
}

/// A one-layer model file with only the layer's type and required fields:
/// every other setting is the file format's default.
fn layer_from_file(json: &str) -> LayerSpec {
    let text = format!("{{\"input_shape\": [8, 8, 3], \"layers\": [{json}]}}");
    let spec: Sequential = serde_json::from_str(&text).unwrap();
    spec.layers[0].layer.clone()
}

#[test]
fn batch_norm_defaults_are_keras_s() {
    let k = keras();
    let b = &k["batch_normalization"];
    let from_file = match layer_from_file("{\"type\": \"BatchNormalization\"}") {
        LayerSpec::BatchNormalization(c) => c,
        other => panic!("{other:?}"),
    };
    for cfg in [BatchNormConfig::new(), from_file] {
        assert_eq!(cfg.momentum, f(&b["momentum"]));
        assert_eq!(cfg.epsilon, f(&b["epsilon"]));
        assert_eq!(cfg.center, b["center"].as_bool().unwrap());
        assert_eq!(cfg.scale, b["scale"].as_bool().unwrap());
    }
    // The initial values: gamma, beta, moving mean, moving variance.
    let model = Sequential::new(&[4])
        .add(LayerSpec::BatchNormalization(BatchNormConfig::new()))
        .build(0)
        .unwrap();
    let value = |name: &str| -> f32 {
        let params = model.named_params();
        let (_, p) = params
            .iter()
            .find(|(n, _)| n.ends_with(name))
            .unwrap_or_else(|| panic!("no {name}"));
        p.value.data()[0]
    };
    for (param, key) in [
        ("gamma", "gamma_initializer"),
        ("beta", "beta_initializer"),
        ("moving_mean", "moving_mean_initializer"),
        ("moving_variance", "moving_variance_initializer"),
    ] {
        let want = match init(&b[key]) {
            Initializer::Zeros => 0.0,
            Initializer::Ones => 1.0,
            other => panic!("{other:?}"),
        };
        assert_eq!(value(param), want, "{param}");
    }
}

#[test]
fn conv_dense_and_pooling_defaults_are_keras_s() {
    let k = keras();
    let c = &k["conv2d"];
    let from_file =
        match layer_from_file("{\"type\": \"Conv2D\", \"filters\": 4, \"kernel_size\": [3, 3]}") {
            LayerSpec::Conv2D(c) => c,
            other => panic!("{other:?}"),
        };
    for cfg in [Conv2dConfig::new(4, 3), from_file] {
        assert_eq!(cfg.strides, pair(&c["strides"]));
        assert_eq!(cfg.dilation_rate, pair(&c["dilation_rate"]));
        assert_eq!(cfg.padding, padding(&c["padding"]));
        assert_eq!(
            cfg.activation,
            Activation::from_name(c["activation"].as_str().unwrap()).unwrap()
        );
        assert_eq!(cfg.use_bias, c["use_bias"].as_bool().unwrap());
        assert_eq!(cfg.kernel_initializer, init(&c["kernel_initializer"]));
        assert_eq!(cfg.bias_initializer, init(&c["bias_initializer"]));
    }
    let d = &k["dense"];
    let from_file = match layer_from_file("{\"type\": \"Dense\", \"units\": 4}") {
        LayerSpec::Dense(c) => c,
        other => panic!("{other:?}"),
    };
    for cfg in [DenseConfig::new(4), from_file] {
        assert_eq!(
            cfg.activation,
            Activation::from_name(d["activation"].as_str().unwrap()).unwrap()
        );
        assert_eq!(cfg.use_bias, d["use_bias"].as_bool().unwrap());
        assert_eq!(cfg.kernel_initializer, init(&d["kernel_initializer"]));
        assert_eq!(cfg.bias_initializer, init(&d["bias_initializer"]));
    }
    // Pooling: strides default to the pool size, padding valid.
    let p = &k["max_pooling2d"];
    let size = pair(&p["pool_size"]);
    let cfg = PoolConfig::new(size[0]);
    assert_eq!(cfg.strides.unwrap_or(cfg.pool_size), pair(&p["strides"]));
    assert_eq!(cfg.padding, padding(&p["padding"]));
    let a = &k["average_pooling2d"];
    assert_eq!(cfg.padding, padding(&a["padding"]));
    assert_eq!(cfg.strides.unwrap_or(cfg.pool_size), pair(&a["strides"]));
}
