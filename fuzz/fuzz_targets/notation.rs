//! The notation parser must return an error, never panic; what it accepts
//! must have a summary and survive a round trip through `to_notation`.
#![no_main]
use convnet_nn::{parse_notation, to_notation, NotationOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let opts = NotationOptions::default().with_input(&[28, 28, 1]);
        if let Ok(seq) = parse_notation(text, &opts) {
            seq.summary().expect("a parsed model has a summary");
            let _ = seq.training_bytes(32);
            if let Some(back) = to_notation(&seq) {
                let again = parse_notation(&back, &opts).expect("to_notation output parses");
                assert_eq!(again, seq, "{text} -> {back}");
            }
        }
    }
});
