//! The CLI's error: a one-line message and an exit code
//! (1 runtime failure, 2 bad usage or bad input).

use convnet_data::DataError;
use convnet_nn::NnError;
use std::fmt;

/// An error that ends the program.
#[derive(Debug)]
pub struct CliError {
    /// Exit code: 1 runtime failure, 2 bad usage or bad input.
    pub code: i32,
    /// The message (may span lines only for notation carets).
    pub msg: String,
}

impl CliError {
    /// Bad usage or input (exit code 2).
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError {
            code: 2,
            msg: msg.into(),
        }
    }
    /// Runtime failure (exit code 1).
    pub fn runtime(msg: impl Into<String>) -> Self {
        CliError {
            code: 1,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<NnError> for CliError {
    fn from(e: NnError) -> Self {
        match e {
            NnError::NonFinite { .. } => CliError::runtime(e.to_string()),
            // A file that cannot be written (a full disk, a read-only
            // folder) is the environment's failure, exit 1, as for every
            // write; a file that cannot be read is bad input, exit 2.
            NnError::Io { ref msg, .. }
                if msg.starts_with(convnet_nn::save::WRITE_FAILED) || msg.contains("No space") =>
            {
                CliError::runtime(e.to_string())
            }
            _ => CliError::usage(e.to_string()),
        }
    }
}

impl From<DataError> for CliError {
    fn from(e: DataError) -> Self {
        CliError::usage(e.to_string())
    }
}

/// Shorthand.
pub type CliResult<T> = Result<T, CliError>;

impl From<convnet_run::RunError> for CliError {
    fn from(e: convnet_run::RunError) -> Self {
        use convnet_run::RunError;
        match e {
            RunError::Usage(msg) => CliError::usage(msg),
            RunError::Runtime(msg) => CliError::runtime(msg),
            RunError::Nn(e) => e.into(),
            RunError::Data(e) => e.into(),
        }
    }
}
