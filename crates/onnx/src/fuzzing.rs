//! The entry point of the `onnx` fuzz target (`fuzz/`), also used by the
//! test that replays its committed corpus (`tests/fuzz_corpus.rs`).

/// Any bytes as an ONNX file: errors are fine, panics are not; a model
/// that imports must have a summary, export, and import again to the same
/// description.
pub fn onnx(data: &[u8]) {
    if let Ok(model) = crate::import::import_bytes(data, "fuzz.onnx") {
        model
            .spec()
            .summary()
            .expect("an imported model has a summary");
        let bytes = prost::Message::encode_to_vec(&crate::to_onnx(&model).expect("exports"));
        let back = crate::import::import_bytes(&bytes, "again.onnx").expect("re-imports");
        assert_eq!(back.spec(), model.spec());
    }
}
