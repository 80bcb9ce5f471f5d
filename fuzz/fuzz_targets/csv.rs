//! The Kaggle CSV reader must return an error, never panic, on any text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = convnet_data::csv::parse_kaggle_csv(std::path::Path::new("fuzz.csv"), text);
    }
});
