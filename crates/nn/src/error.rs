//! The error type of the nn crate.

use convnet_tensor::TensorError;
use thiserror::Error;

/// Everything that can go wrong when building, running, saving or loading
/// layers and models.
#[derive(Debug, Error)]
pub enum NnError {
    /// A layer cannot accept its input shape.
    #[error("layer {index} ({layer}): {msg}")]
    Shape {
        /// Position of the layer in the model (0-based).
        index: usize,
        /// Layer kind, e.g. `Conv2D`.
        layer: String,
        /// What was expected and what was found.
        msg: String,
    },
    /// An invalid configuration value.
    #[error("{what}: {msg}")]
    Config {
        /// The setting or object at fault.
        what: String,
        /// What was expected and what was found.
        msg: String,
    },
    /// Training produced a non-finite loss.
    #[error("loss became {value} at epoch {epoch}, batch {batch}; try a lower learning rate")]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The offending value.
        value: f32,
    },
    /// A callback stopped training in the middle of an epoch
    /// ([`crate::Callback::on_batch_end`] said [`crate::Control::Stop`]).
    #[error("training stopped at epoch {epoch}, batch {batch}")]
    Stopped {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
    },
    /// A model notation that cannot be parsed; displays the notation with
    /// a caret under the offending token.
    #[error("{msg}\n  {notation}\n  {caret}", caret = caret(*start, *len))]
    Notation {
        /// The whole notation.
        notation: String,
        /// Byte offset of the offending token.
        start: usize,
        /// Its length.
        len: usize,
        /// What is wrong and what was expected.
        msg: String,
    },
    /// A tensor-level error.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Reading or writing a file failed.
    #[error("{path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        msg: String,
    },
    /// A data source could not produce a batch (an unreadable image, say);
    /// the message names the file.
    #[error("{0}")]
    Data(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, NnError>;

/// Builds an [`NnError::Config`].
pub(crate) fn config_err(what: impl Into<String>, msg: impl Into<String>) -> NnError {
    NnError::Config {
        what: what.into(),
        msg: msg.into(),
    }
}

fn caret(start: usize, len: usize) -> String {
    format!("{}{}", " ".repeat(start), "^".repeat(len.max(1)))
}
