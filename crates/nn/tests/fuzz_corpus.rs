//! Replays the committed, minimized fuzz corpora (`fuzz/seeds/`) of the
//! notation, model-file and checkpoint targets: every input the fuzzer kept
//! (each reached new code) must still run without a panic.

use convnet_nn::fuzzing::{checkpoint, model_file, notation, replay_corpus};

#[test]
fn notation_corpus() {
    assert!(replay_corpus("notation", notation) > 100);
}

#[test]
fn model_file_corpus() {
    assert!(replay_corpus("model_file", model_file) > 100);
}

#[test]
fn checkpoint_corpus() {
    assert!(replay_corpus("checkpoint", checkpoint) > 100);
}
