//! Weights files and checkpoint state must load or fail cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.safetensors");
    if let Ok(tensors) = convnet_nn::save::tensors_from_bytes(path, data) {
        // Loading into a real model checks names and shapes.
        let seq = convnet_nn::Sequential::new(&[4, 4, 1])
            .flatten()
            .dense(convnet_nn::DenseConfig::new(2));
        let mut model = seq.build(0).unwrap();
        let _ = model.set_weights(path, &tensors);
    }
    if let Ok(state) = serde_json::from_slice::<convnet_nn::TrainState>(data) {
        let _ = state.rng.restore();
    }
});
