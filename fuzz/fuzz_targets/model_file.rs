//! Fuzz target `model_file`: see `convnet_nn::fuzzing::model_file` for what it feeds and checks (the
//! same function replays the committed corpus in the crate's tests).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    convnet_nn::fuzzing::model_file(data);
});
