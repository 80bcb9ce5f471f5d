//! Replays the committed, minimized fuzz corpora (`fuzz/seeds/`) of the IDX
//! and CSV targets: every input the fuzzer kept must still run without a
//! panic.

use convnet_data::fuzzing::{csv, idx};
use convnet_nn::fuzzing::replay_corpus;

#[test]
fn idx_corpus() {
    assert!(replay_corpus("idx", idx) > 50);
}

#[test]
fn csv_corpus() {
    assert!(replay_corpus("csv", csv) > 100);
}
