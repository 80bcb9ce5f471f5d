//! The IDX reader must return an error, never panic, on any bytes, raw or
//! gzipped (the same path as `read_idx`, minus the file system).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx");
    if let Ok(bytes) = convnet_data::idx::decode_maybe_gz(path, data.to_vec()) {
        let _ = convnet_data::idx::parse_idx(path, &bytes);
    }
});
