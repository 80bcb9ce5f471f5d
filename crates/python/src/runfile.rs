//! The run file (`run.json`) that `Model.save` writes beside the model
//! files, so that the saved folder is a run folder as `convnet train` makes
//! them: `convnet predict`, `serve`, `evaluate`, `explain` and `finetune`
//! open it.
//!
//! ```text
//! fit(x, y)                 -> data "python": the arrays are not on disk (evaluate asks for --data)
//! flow_from_directory(dir)  -> data "folder:DIR" and its class names (predict prints them)
//! load_model(run folder)    -> its run file, kept for the next save
//! never trained             -> data "python", 0 epochs, the loss compile set (or the automatic one)
//! ```

use convnet_data::AugmentConfig;
use convnet_nn::{Model, OptimizerConfig, Precision, Schedule};
use convnet_run::{folder::FinetunePlan, outputs_of, settings, RunConfig};

/// The data of a `fit`, as a run file names it.
pub struct Source {
    /// `folder:DIR`, or [`ARRAYS`].
    pub data: String,
    /// Class names, label order (an image folder's sub-folders).
    pub classes: Option<Vec<String>>,
    /// The fraction held out for validation (0 when validation data was given).
    pub validation_split: f32,
}

/// The data name of arrays handed over from Python.
pub const ARRAYS: &str = "python";

impl Source {
    /// Arrays from Python.
    pub fn arrays(validation_split: f32) -> Source {
        Source {
            data: ARRAYS.into(),
            classes: None,
            validation_split,
        }
    }
}

/// What one `fit` was, for the run file.
pub struct FitRecord {
    pub source: Source,
    pub batch_size: usize,
    pub augment: AugmentConfig,
    pub seed: u64,
    pub precision: Precision,
}

/// The run file of `model` after `epochs` epochs: the previous one's
/// settings (a loaded run's, or the last fit's) with the model as it is now.
pub fn run_config(
    model: &Model,
    epochs: usize,
    last: Option<&RunConfig>,
    fit: Option<&FitRecord>,
) -> RunConfig {
    let outputs = outputs_of(model);
    let loss = model
        .loss()
        .unwrap_or_else(|| settings::parse_loss("auto", outputs).expect("auto is known"));
    let optimizer = model
        .optimizer()
        .map(|o| o.config.clone())
        .unwrap_or_else(OptimizerConfig::adam);
    let mut cfg = match last {
        Some(c) => c.clone(),
        None => RunConfig {
            model_arg: "python".into(),
            model: model.spec().clone(),
            data: ARRAYS.into(),
            data_dir: None,
            limit: None,
            epochs,
            batch_size: 32,
            optimizer: optimizer.clone(),
            schedule: Schedule::default(),
            loss,
            l2: 0.0,
            validation_split: 0.0,
            early_stopping: None,
            reduce_lr_on_plateau: None,
            augment: AugmentConfig::default(),
            classes: None,
            seed: convnet_run::settings::SEED,
            folder: Default::default(),
            finetune: None::<FinetunePlan>,
            precision: Precision::Fp32,
        },
    };
    if let Some(f) = fit {
        cfg.data = f.source.data.clone();
        cfg.data_dir = None;
        cfg.classes = f.source.classes.clone();
        cfg.batch_size = f.batch_size;
        cfg.validation_split = f.source.validation_split;
        cfg.augment = f.augment.clone();
        cfg.seed = f.seed;
        cfg.precision = f.precision;
        cfg.finetune = None;
    }
    cfg.model = model.spec().clone();
    cfg.epochs = epochs;
    cfg.loss = loss;
    cfg.optimizer = optimizer;
    cfg
}
