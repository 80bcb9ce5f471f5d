//! The error type of the onnx crate.

use convnet_nn::NnError;
use thiserror::Error;

/// Everything that can go wrong when writing or reading an ONNX file.
#[derive(Debug, Error)]
pub enum OnnxError {
    /// The file cannot be read or written.
    #[error("{path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// Not a well-formed ONNX model: bad protobuf, missing graph, a tensor
    /// whose data does not match its dims, a dangling value name.
    #[error("{path}: {msg}")]
    Malformed {
        /// The file.
        path: String,
        /// The field at fault and what was expected.
        msg: String,
    },
    /// A well-formed model using an operator or attribute convnet has no
    /// layer for.
    #[error("{path}: node '{node}' ({op}): {msg}")]
    Unsupported {
        /// The file.
        path: String,
        /// The node's name (or its first output when unnamed).
        node: String,
        /// Its operator type.
        op: String,
        /// What is not supported and what is.
        msg: String,
    },
    /// The model the file describes is not a valid convnet model.
    #[error(transparent)]
    Nn(#[from] NnError),
}

/// Result with [`OnnxError`].
pub type Result<T> = std::result::Result<T, OnnxError>;
