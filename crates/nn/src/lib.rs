//! Layers, losses and initializers for convnet (and, on top of them, models
//! and training).
//!
//! Every layer implements [`Layer`]: a pure output-shape rule on its
//! [`LayerSpec`], a forward pass that keeps what its backward pass needs,
//! and a backward pass that accumulates parameter gradients and returns the
//! input gradient. Tensors are NHWC (see `convnet_tensor`).
//!
//! Randomness is always passed in explicitly as an [`Rng`] (ChaCha8, seeded),
//! so the same seed gives the same weights, dropout masks and shuffles.
#![deny(missing_docs)]

pub mod callbacks;
pub mod checkpoint;
pub mod data;
pub mod dist;
mod error;
mod fit;
pub mod fuzzing;
pub mod gradcheck;
pub mod graph;
pub mod history;
mod init;
pub mod kind;
mod layer;
pub mod layers;
mod loss;
mod model;
pub mod notation;
pub mod optim;
pub mod save;
mod schedule;
mod spec;
pub mod summary;
pub mod surgery;
pub mod zoo;

pub use callbacks::{
    Callback, Control, CsvLogger, EarlyStopping, ModelCheckpoint, ReduceLrOnPlateau,
};
pub use checkpoint::{Checkpointer, TrainState};
pub use convnet_tensor::activation::Activation;
pub use convnet_tensor::{Padding, Precision, Tensor};
pub use data::{Batch, DataSource, Subset, TensorData};
pub use dist::{Collective, Ranks, SingleProcess};
pub use error::{NnError, Result};
pub use fit::{available_memory, FitConfig, Verbosity};
pub use graph::{ModelSpec, Node, Sequential, Source, Wiring, INPUT};
pub use history::{EpochLogs, Evaluation, History};
pub use init::Initializer;
pub use kind::{LayerKind, Role, Window};
pub use layer::{Layer, Mode, Param};
pub use layers::batch_norm::BatchNormConfig;
pub use layers::conv2d::Conv2dConfig;
pub use layers::dense::DenseConfig;
pub use layers::depthwise_conv2d::DepthwiseConv2dConfig;
pub use layers::dropout::DropoutConfig;
pub use layers::pooling::PoolConfig;
pub use layers::separable_conv2d::SeparableConv2dConfig;
pub use loss::{Loss, EPSILON};
pub use model::{Inspection, Model};
pub use notation::{parse_notation, to_notation, NotationOptions};
pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::Schedule;
pub use spec::{explain_layer_error, LayerSpec, KIND_NAMES};
pub use summary::{Summary, SummaryRow};
pub use surgery::InsertAfter;

/// The random number generator used everywhere: seeded ChaCha8.
pub type Rng = rand_chacha::ChaCha8Rng;
