//! The error type of the data crate.

use thiserror::Error;

/// Everything that can go wrong reading or preparing data. Messages name
/// the file, the field and what was expected.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's message.
        msg: String,
    },
    /// The file was read but its contents are wrong.
    #[error("{path}: {field}: expected {expected}, found {found}")]
    Format {
        /// The file.
        path: String,
        /// The field or region at fault.
        field: String,
        /// What a valid file has there.
        expected: String,
        /// What this file has.
        found: String,
    },
    /// Inputs that do not fit together (e.g. image and label counts).
    #[error("{0}")]
    Mismatch(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn format_err(
    path: &std::path::Path,
    field: impl Into<String>,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> DataError {
    DataError::Format {
        path: path.display().to_string(),
        field: field.into(),
        expected: expected.into(),
        found: found.into(),
    }
}

pub(crate) fn io_err(path: &std::path::Path, e: std::io::Error) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}
