//! The IDX reader must return an error, never panic, on any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convnet_data::idx::parse_idx(std::path::Path::new("fuzz.idx"), data);
});
