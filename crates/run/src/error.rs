//! The error of the run crate: bad usage or input (a flag, a file, a run
//! folder), a failure of the environment, or one from the layers below.

use convnet_data::DataError;
use convnet_nn::NnError;
use thiserror::Error;

/// Errors of opening, training and reading runs.
#[derive(Debug, Error)]
pub enum RunError {
    /// Bad usage or input: a setting, a run folder, a data source; the
    /// message names it and what was expected.
    #[error("{0}")]
    Usage(String),
    /// The environment failed (a folder that cannot be made).
    #[error("{0}")]
    Runtime(String),
    /// From models and training.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// From data loading.
    #[error(transparent)]
    Data(#[from] DataError),
}

impl RunError {
    /// Bad usage or input.
    pub fn usage(msg: impl Into<String>) -> Self {
        RunError::Usage(msg.into())
    }
    /// A failure of the environment.
    pub fn runtime(msg: impl Into<String>) -> Self {
        RunError::Runtime(msg.into())
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, RunError>;
