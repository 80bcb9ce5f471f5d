//! Entry points shared by the fuzz targets (`fuzz/`) and the tests that
//! replay their committed corpora (`tests/fuzz_corpus.rs`): each takes any
//! bytes and must return without panicking, whatever they are.

use std::path::Path;

/// The IDX reader on raw or gzipped bytes (the path of `read_idx`, minus
/// the file system).
pub fn idx(data: &[u8]) {
    let path = Path::new("fuzz.idx");
    if let Ok(bytes) = crate::idx::decode_maybe_gz(path, data.to_vec()) {
        let _ = crate::idx::parse_idx(path, &bytes);
    }
}

/// The Kaggle CSV reader on any UTF-8 text.
pub fn csv(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::csv::parse_kaggle_csv(Path::new("fuzz.csv"), text);
    }
}
