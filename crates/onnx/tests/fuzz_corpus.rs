//! Replays the committed, minimized corpus of the `onnx` fuzz target
//! (`fuzz/seeds/onnx`): every input the fuzzer kept must still run without
//! a panic.

use convnet_nn::fuzzing::replay_corpus;
use convnet_onnx::fuzzing::onnx;

#[test]
fn onnx_corpus() {
    assert!(replay_corpus("onnx", onnx) > 50);
}
