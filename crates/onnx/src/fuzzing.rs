//! The entry point of the `onnx` fuzz target (`fuzz/`), also used by the
//! test that replays its committed corpus (`tests/fuzz_corpus.rs`).

use crate::import::import_bytes;
use convnet_nn::Model;

fn reexport(m: &Model) -> Model {
    let bytes =
        prost::Message::encode_to_vec(&crate::to_onnx(m).expect("an imported model exports"));
    import_bytes(&bytes, "again.onnx").expect("an exported model imports")
}

fn weights(m: &Model) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    m.named_params()
        .into_iter()
        .map(|(n, p)| {
            (
                n,
                p.value.shape().to_vec(),
                p.value.data().iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect()
}

/// Any bytes as an ONNX file: errors are fine, panics are not. A model
/// that imports must have a summary, export, and import again with the
/// same weights, bit for bit; a second round trip changes nothing (the
/// first may turn `auto_pad` into explicit pads).
pub fn onnx(data: &[u8]) {
    if let Ok(model) = import_bytes(data, "fuzz.onnx") {
        model
            .spec()
            .summary()
            .expect("an imported model has a summary");
        let once = reexport(&model);
        assert!(
            weights(&once) == weights(&model),
            "weights changed in a round trip"
        );
        let twice = reexport(&once);
        assert_eq!(twice.spec(), once.spec());
    }
}
