//! Model files (JSON and TOML) must parse or fail cleanly, and a parsed
//! model's shape checks and summary must not panic.
#![no_main]
use convnet_nn::Sequential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
