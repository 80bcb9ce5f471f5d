//! The one run pipeline of convnet, shared by every front end (the CLI's
//! `train`, `finetune`, `ensemble`, `experiment`, its MPI ranks and the
//! explorer, and the Python package):
//!
//! - [`folder`]: the run folder (`run.json`, model, history, metrics,
//!   checkpoints), made, opened and read;
//! - [`source`]: where labelled images come from (`mnist`, `folder:DIR`, ...);
//! - [`settings`]: the training defaults, in one place, and their parsing;
//! - [`targets`]: labelled images in the form a loss expects;
//! - [`prepare`]: a finetune's model (cut, head, frozen base) and `--freeze`;
//! - [`examples`]: what a pass trains on: labelled images or tensors;
//! - [`pipeline`]: start or resume, fit with callbacks and checkpoints,
//!   history and metrics;
//! - [`predict`]: batched prediction with test-time augmentation.
#![deny(missing_docs)]

mod error;
pub mod examples;
pub mod folder;
pub mod pipeline;
pub mod predict;
pub mod prepare;
pub mod settings;
pub mod source;
pub mod targets;

pub use error::{Result, RunError};
pub use examples::{ExampleSource, Examples, Rows, TensorExamples};
pub use folder::{new_run_dir, open, FinetunePlan, RunConfig, StageTwo};
pub use pipeline::{
    evaluate, train, train_keeping, write_metrics, Failed, Pass, Start, TrainData, Trained,
};
pub use predict::{predict_images, predict_tta, predict_tta_from, tta_config};
pub use source::{class_names, FolderSettings, Loaded};
pub use targets::{dataset, outputs_of};
