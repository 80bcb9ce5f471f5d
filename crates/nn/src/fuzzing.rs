//! Entry points shared by the fuzz targets (`fuzz/`) and the tests that
//! replay their committed corpora (`tests/fuzz_corpus.rs`): each takes any
//! bytes and must return without panicking, whatever they are. Assertions
//! here are properties the fuzzer checks on every input it finds.

use crate::{parse_notation, to_notation, DenseConfig, NotationOptions, Sequential, TrainState};
use std::path::Path;

/// The notation parser: errors are fine; what it accepts must have a
/// summary and survive a round trip through `to_notation`.
pub fn notation(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = NotationOptions::default().with_input(&[28, 28, 1]);
    if let Ok(seq) = parse_notation(text, &opts) {
        seq.summary().expect("a parsed model has a summary");
        let _ = seq.training_bytes(32);
        if let Some(back) = to_notation(&seq) {
            let again = parse_notation(&back, &opts).expect("to_notation output parses");
            assert_eq!(again, seq, "{text} -> {back}");
        }
    }
}

/// Model files, JSON and TOML: a parsed model's shape checks, summary and
/// memory estimate must not panic.
pub fn model_file(data: &[u8]) {
    let mut models = Vec::new();
    if let Ok(m) = serde_json::from_slice::<Sequential>(data) {
        models.push(m);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = toml::from_str::<Sequential>(text) {
            models.push(m);
        }
    }
    for m in models {
        if m.output_shapes().is_ok() {
            let _ = m.summary();
            let _ = m.training_bytes(64);
        }
    }
}

/// Weights files (safetensors, loaded into a small model so that names and
/// shapes are checked) and checkpoint state (JSON with the RNG position).
pub fn checkpoint(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    if let Ok(tensors) = crate::save::tensors_from_bytes(path, data) {
        let seq = Sequential::new(&[4, 4, 1])
            .flatten()
            .dense(DenseConfig::new(2));
        let mut model = seq.build(0).expect("a valid model");
        let _ = model.set_weights(path, &tensors);
    }
    if let Ok(state) = serde_json::from_slice::<TrainState>(data) {
        let _ = state.rng.restore();
    }
}

/// Runs `f` on every file of the committed corpus `fuzz/seeds/<target>` of
/// this repository and returns how many there were; panics naming the first
/// file that makes `f` panic.
pub fn replay_corpus(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            panic!("fuzz input {} panics", file.display());
        }
    }
    files.len()
}
