//! The run folder: what `train` writes and `evaluate`, `predict` and
//! `train --resume` read; [`open`] opens one.
//!
//! ```text
//! RUN/run.json                 the command's settings (RunConfig)
//! RUN/model.json               architecture of the final model
//! RUN/weights.safetensors      its weights
//! RUN/history.csv              per-epoch loss, accuracy, validation, lr, seconds
//! RUN/metrics.json             test loss and accuracy
//! RUN/checkpoints/             the newest epoch checkpoint (see convnet_nn::checkpoint)
//! ```

use crate::error::{Result, RunError};
use convnet_nn::{Loss, OptimizerConfig, Precision, Schedule, Sequential};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings of a training run, saved as `run.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// The model as given (notation or file name), for the record.
    pub model_arg: String,
    /// The resolved model.
    pub model: Sequential,
    /// `--data`.
    pub data: String,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// Use only the first N training samples.
    pub limit: Option<usize>,
    /// Epochs in total.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Loss.
    pub loss: Loss,
    /// L2 on kernels.
    pub l2: f32,
    /// Validation fraction.
    pub validation_split: f32,
    /// EarlyStopping patience on val_loss (or loss).
    pub early_stopping: Option<usize>,
    /// ReduceLROnPlateau patience.
    pub reduce_lr_on_plateau: Option<usize>,
    /// Augmentation of the training batches.
    #[serde(default)]
    pub augment: convnet_data::AugmentConfig,
    /// Class names (image folders, CIFAR-10), label order.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Seed.
    pub seed: u64,
    /// How an image folder is read.
    #[serde(default)]
    pub folder: crate::source::FolderSettings,
    /// How `convnet finetune` made the run (absent for other runs): what
    /// `train --resume` needs to rebuild its start and to run its second stage.
    #[serde(default)]
    pub finetune: Option<FinetunePlan>,
    /// The arithmetic it trains in, as asked (`fp32` for runs that predate it).
    #[serde(default)]
    pub precision: Precision,
}

/// `convnet finetune`'s plan, kept in `run.json` so that one command,
/// `convnet train --resume RUN`, continues the run from any point: its start
/// is the source run cut at `cut` with `head` on top (rebuilt from the source
/// when the run stopped before its first checkpoint), and after stage one
/// (the base frozen) comes the optional stage two.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinetunePlan {
    /// The trained run the base comes from.
    pub source: PathBuf,
    /// The layer the base is cut after (default: the last with an image output).
    pub cut: Option<String>,
    /// The new head, in the notation.
    pub head: String,
    /// The default padding of the head's convolutions.
    pub padding: convnet_nn::Padding,
    /// The activation of the head's convolutions and hidden dense layers
    /// (`--activation`; ReLU in runs made before it existed).
    #[serde(default = "relu")]
    pub activation: convnet_nn::Activation,
    /// Stage two: the top layers of the base unfrozen at a lower rate.
    pub stage_two: Option<StageTwo>,
}

/// Stage two of a finetune: `unfreeze_top` frozen layers with weights
/// unfrozen, a fresh optimizer at `lr`, `epochs` more epochs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageTwo {
    /// How many of the base's top layers with weights are unfrozen.
    pub unfreeze_top: usize,
    /// The base learning rate of stage two.
    pub lr: f32,
    /// Stage two's epochs.
    pub epochs: usize,
    /// The epoch count at which stage two began, written to `run.json`
    /// before stage two's first epoch; a resume whose newest checkpoint is at
    /// this count unfreezes, one past it finds the stage already under way.
    #[serde(default)]
    pub from_epoch: Option<usize>,
}

fn relu() -> convnet_nn::Activation {
    convnet_nn::Activation::Relu
}

/// File names inside a run folder.
pub const RUN_FILE: &str = "run.json";
/// History file.
pub const HISTORY_FILE: &str = "history.csv";
/// Test metrics file.
pub const METRICS_FILE: &str = "metrics.json";
/// Checkpoint folder.
pub const CHECKPOINTS: &str = "checkpoints";

impl RunConfig {
    /// Reads `RUN/run.json`.
    pub fn load(run: &Path) -> Result<RunConfig> {
        let p = run.join(RUN_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            RunError::usage(format!(
                "{}: {e} (is '{}' a run folder made by `convnet train`?)",
                p.display(),
                run.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| RunError::usage(format!("{}: invalid run file: {e}", p.display())))
    }

    /// The run's own data (its source, folder, input size and seed).
    pub fn load_data(&self) -> Result<crate::source::Loaded> {
        crate::source::load(
            &self.data,
            self.data_dir.as_deref(),
            Some(&self.model.input_shape),
            self.seed,
            &self.folder,
        )
    }

    /// Writes `RUN/run.json` atomically.
    pub fn save(&self, run: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("serializable");
        convnet_nn::save::write_atomic(&run.join(RUN_FILE), &json)?;
        Ok(())
    }
}

/// A new run folder under `out`: `out/NAME`, or the first free `out/run-NNN`.
pub fn new_run_dir(out: &Path, name: Option<&str>) -> Result<PathBuf> {
    let dir = match name {
        Some(n) => out.join(n),
        None => (1..)
            .map(|i| out.join(format!("run-{i:03}")))
            .find(|p| !p.exists())
            .expect("some name is free"),
    };
    if dir.join(RUN_FILE).exists() {
        return Err(RunError::usage(format!(
            "{} already holds a run; pick another --name or continue it with --resume",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| RunError::runtime(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

/// Opens a trained run: its settings and its final model.
pub fn open(run: &Path) -> Result<(RunConfig, convnet_nn::Model)> {
    let cfg = RunConfig::load(run)?;
    let model = convnet_nn::Model::load(run)?;
    Ok((cfg, model))
}
