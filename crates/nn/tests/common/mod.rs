//! Helpers shared by the integration tests: reading the golden fixtures
//! written by `tools/golden/gen_golden.py`, quiet fit settings, weights.
#![allow(dead_code)]

use convnet_nn::{FitConfig, Model, Tensor, Verbosity};
use serde_json::Value;

/// `fit` settings without output: `epochs`, batches of 16.
pub fn quiet(epochs: usize) -> FitConfig {
    FitConfig::new()
        .with_epochs(epochs)
        .with_batch_size(16)
        .with_verbosity(Verbosity::Silent)
}

/// Every parameter's values, in order.
pub fn weights(m: &Model) -> Vec<Vec<f32>> {
    m.named_params()
        .into_iter()
        .map(|(_, p)| p.value.data().to_vec())
        .collect()
}

/// The cases of one fixture file in `tests/golden/`.
pub fn cases(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

/// A fixture tensor `{"shape": [...], "data": [...]}`.
pub fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap() as f32)
        .collect();
    Tensor::from_vec(&shape, data).unwrap()
}
