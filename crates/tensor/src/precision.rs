//! The arithmetic a model's products run in (issue #30), Keras's "dtype
//! policy": `fp32`, or `bf16` (Keras's `mixed_bfloat16`): convolution
//! products take bf16 operands with fp32 sums, while weights, optimizer
//! state, batch-norm statistics, softmax and the loss stay fp32.
//!
//! A model carries its precision and hands it to its layers
//! (`convnet_nn::Model::set_precision`); the kernels take it as an argument,
//! so two models in one process (tests, the explorer, an ensemble) can run
//! in different precisions side by side.

use serde::{Deserialize, Serialize};

/// The arithmetic of a model's products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    Fp32,
    /// Products on bf16 operands with fp32 sums (mixed precision).
    Bf16,
}

impl Precision {
    /// By name: `fp32` (`float32`), or `bf16` (`mixed_bfloat16`, Keras's
    /// policy name, and `bfloat16`).
    pub fn from_name(name: &str) -> Option<Precision> {
        match name {
            "fp32" | "float32" => Some(Precision::Fp32),
            "bf16" | "bfloat16" | "mixed_bfloat16" => Some(Precision::Bf16),
            _ => None,
        }
    }

    /// Its name in files and output: `fp32` or `bf16`.
    pub fn name(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// What runs on this CPU: bf16 only where the CPU has bf16 dot products
    /// (the portable loop computes the same sums, slower than fp32, so it
    /// is for tests, not for speed); `None` when `self` is bf16 and this
    /// CPU lacks them (callers then say so once and run fp32).
    pub fn on_this_cpu(self) -> Option<Precision> {
        match self {
            Precision::Bf16 if crate::bf16::path() != crate::bf16::Path::Avx512Bf16 => None,
            p => Some(p),
        }
    }

    /// True for bf16.
    pub fn is_bf16(&self) -> bool {
        *self == Precision::Bf16
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keras_policy_names_parse() {
        for p in [Precision::Fp32, Precision::Bf16] {
            assert_eq!(Precision::from_name(p.name()), Some(p));
        }
        assert_eq!(
            Precision::from_name("mixed_bfloat16"),
            Some(Precision::Bf16)
        );
        assert_eq!(Precision::from_name("float32"), Some(Precision::Fp32));
        assert_eq!(Precision::from_name("fp16"), None);
        assert_eq!(Precision::default(), Precision::Fp32);
    }
}
