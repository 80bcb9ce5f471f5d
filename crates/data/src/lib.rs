//! Data for convnet: readers for MNIST-style IDX files and (later) CIFAR-10,
//! CSV and image folders, plus normalization and augmentation.
//!
//! Every reader validates its input and reports errors that name the file,
//! the field and what was expected ([`DataError`]).
#![deny(missing_docs)]

mod error;
pub mod idx;
pub mod mnist;

pub use error::{DataError, Result};
pub use mnist::{one_hot, LabeledImages, Mnist};
