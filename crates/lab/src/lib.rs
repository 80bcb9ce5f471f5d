//! Experiments, ensembles and pictures for convnet: the CNN-design
//! know-how as commands (`convnet experiment`, `convnet ensemble`) and the
//! look inside a trained net (training curves, feature maps, filters,
//! confusion matrices, reports).
#![deny(missing_docs)]

pub mod ensemble;
mod error;
pub mod experiment;
pub mod explain;
pub mod grid;
pub mod plot;
pub mod report;
pub mod saliency;

pub use error::{LabError, Result};
