//! Helpers shared by the integration tests: reading the golden fixtures
//! written by `tools/golden/gen_golden.py`, quiet fit settings, weights.
#![allow(dead_code)]

use convnet_nn::{Checkpointer, FitConfig, Model, Tensor, TensorData, TrainState, Verbosity};
use rand::{Rng as _, SeedableRng};
use serde_json::Value;
use std::path::Path;

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

/// Trains a fresh `make()` for 2 epochs with a checkpoint per epoch in
/// `dir`, loads the newest checkpoint and continues it to epoch 4: the
/// resumed model, and the state the checkpoint held.
pub fn train_two_then_resume_to_four(
    make: impl Fn() -> Model,
    data: &TensorData,
    dir: &Path,
) -> (Model, TrainState) {
    let mut first = make();
    let mut ck = Checkpointer::new(dir);
    first.fit(data, None, &quiet(2), &mut [&mut ck]).unwrap();
    drop(first);
    let (mut resumed, state) = Model::load_checkpoint(dir).unwrap();
    let mut ck = Checkpointer::new(dir).with_previous(state.history.clone());
    resumed
        .fit(
            data,
            None,
            &quiet(4).with_initial_epoch(state.epochs_done),
            &mut [&mut ck],
        )
        .unwrap();
    (resumed, state)
}

/// `n` random 6x6x2 images in [0, 1), one-hot over 3 classes by the sum of
/// their first channel's pixels.
pub fn toy(n: usize, seed: u64) -> TensorData {
    let mut rng = convnet_nn::Rng::seed_from_u64(seed);
    let x = Tensor::from_vec(
        &[n, 6, 6, 2],
        (0..n * 72).map(|_| rng.gen_range(0.0..1.0)).collect(),
    )
    .unwrap();
    let mut y = Tensor::zeros(&[n, 3]);
    for i in 0..n {
        let s: f32 = x.data()[i * 72..i * 72 + 36].iter().sum();
        y.data_mut()[i * 3 + (s as usize) % 3] = 1.0;
    }
    TensorData::new(x, y).unwrap()
}
