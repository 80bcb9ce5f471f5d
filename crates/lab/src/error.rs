//! The error type of the lab crate.

use thiserror::Error;

/// Errors of experiments, ensembles and pictures.
#[derive(Debug, Error)]
pub enum LabError {
    /// From models and training.
    #[error(transparent)]
    Nn(#[from] convnet_nn::NnError),
    /// From data loading.
    #[error(transparent)]
    Data(#[from] convnet_data::DataError),
    /// From the run pipeline.
    #[error(transparent)]
    Run(#[from] convnet_run::RunError),
    /// A bad experiment definition or option.
    #[error("{0}")]
    Config(String),
    /// Writing a file or drawing failed.
    #[error("{path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        msg: String,
    },
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, LabError>;

pub(crate) fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> LabError {
    LabError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}
