//! Fuzz target `onnx`: see `convnet_onnx::fuzzing::onnx` for what it feeds and checks (the
//! same function replays the committed corpus in the crate's tests).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    convnet_onnx::fuzzing::onnx(data);
});
