//! The error type of the tensor crate.

use thiserror::Error;

/// Everything that can go wrong when building tensors or geometry.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TensorError {
    /// The number of values does not match the product of the shape.
    #[error("{op}: shape {shape:?} needs {expected} values, found {found}")]
    DataLength {
        /// The operation that was attempted.
        op: &'static str,
        /// The requested shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Number of values supplied.
        found: usize,
    },
    /// A shape that an operation cannot accept.
    #[error("{op}: {msg}")]
    Shape {
        /// The operation that was attempted.
        op: &'static str,
        /// What was expected and what was found.
        msg: String,
    },
}
