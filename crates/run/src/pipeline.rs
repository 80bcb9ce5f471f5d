//! The run pipeline: the one path from a model and labelled images to a
//! trained model, its checkpoints and its history, shared by `convnet
//! train` and `finetune` (and their MPI ranks and the explorer's live
//! training), `ensemble` members and `experiment` variants.
//!
//! ```text
//! Start (fresh model | newest checkpoint: model, optimizer, RNG, history)
//!   + TrainData (training split, validation split, augmentation)
//!   + Pass (FitConfig, L2, early stopping, plateau, checkpoint folder)
//!   -> train(): targets for the compiled loss, augmentation, callbacks
//!      [checkpointer, early stopping, plateau, the caller's], Model::fit
//!   -> Trained (model, every epoch's history) -> save(): model + history.csv
//! ```
//!
//! Invariants: the history of a resumed pass starts with the epochs before
//! it, so a run stopped anywhere and resumed gives the same weights and
//! `history.csv` as one never stopped; validation images are never
//! augmented; every file is written atomically.

use crate::error::{Result, RunError};
use crate::examples::Examples;
use crate::folder::{CHECKPOINTS, HISTORY_FILE, METRICS_FILE};
use crate::targets::{dataset, outputs_of};
use convnet_data::{AugmentConfig, Augmented, LabeledImages};
use convnet_nn::checkpoint::LATEST;
use convnet_nn::save::write_atomic;
use convnet_nn::{
    Callback, Checkpointer, DataSource, EarlyStopping, Evaluation, FitConfig, History, Model,
    ReduceLrOnPlateau,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a pass starts: a model compiled with its optimizer and loss, the
/// epochs already done and their history.
pub struct Start {
    /// The model, compiled.
    pub model: Model,
    /// Epochs done before this pass.
    pub epochs_done: usize,
    /// Their history.
    pub history: History,
}

impl Start {
    /// A compiled model that has not trained yet.
    pub fn fresh(model: Model) -> Start {
        Start {
            model,
            epochs_done: 0,
            history: History::default(),
        }
    }

    /// The newest checkpoint in `run/checkpoints`, if one was written.
    pub fn from_checkpoint(run: &Path) -> Result<Option<Start>> {
        let ckpt = run.join(CHECKPOINTS);
        if !ckpt.join(LATEST).exists() {
            return Ok(None);
        }
        let (model, state) = Model::load_checkpoint(&ckpt)?;
        Ok(Some(Start {
            model,
            epochs_done: state.epochs_done,
            history: state.history,
        }))
    }
}

/// What a pass trains on (`'a`: memory lent to tensor examples).
pub struct TrainData<'a> {
    /// The training examples.
    pub train: Examples<'a>,
    /// The validation examples, never augmented.
    pub validation: Option<Examples<'a>>,
    /// The augmentation of the training batches (identity: none).
    pub augment: AugmentConfig,
}

impl<'a> TrainData<'a> {
    /// `all` with its last `fraction` held out for validation (Keras's
    /// `validation_split`); an error if no training image is left.
    pub fn split(
        all: impl Into<Examples<'a>>,
        fraction: f32,
        augment: AugmentConfig,
    ) -> Result<TrainData<'a>> {
        let all = all.into();
        let n_val = (all.len() as f64 * fraction as f64).floor() as usize;
        let n_train = all.len() - n_val;
        if n_train == 0 {
            return Err(RunError::usage(
                "no training samples left after the validation split",
            ));
        }
        Ok(TrainData {
            train: all.range(0, n_train),
            validation: (n_val > 0).then(|| all.range(n_train, all.len())),
            augment,
        })
    }

    /// The monitored quantity of early stopping and plateaus: `val_loss`
    /// when there is validation data, else `loss`.
    pub fn monitor(&self) -> &'static str {
        if self.validation.is_some() {
            "val_loss"
        } else {
            "loss"
        }
    }
}

/// How a pass trains and what it writes.
#[derive(Clone, Debug)]
pub struct Pass {
    /// Epochs (in all: the start's count included), batch, schedule, shards, output.
    pub fit: FitConfig,
    /// L2 penalty on every kernel.
    pub l2: f32,
    /// Stop when the monitored loss has not improved for this many epochs
    /// (the best weights restored).
    pub early_stopping: Option<usize>,
    /// Divide the rate by 10 when it has not improved for this many epochs.
    pub reduce_lr_on_plateau: Option<usize>,
    /// The run folder whose `checkpoints/` gets one checkpoint per epoch
    /// (`None`: nothing written, as for experiment variants and MPI ranks
    /// other than 0).
    pub checkpoints: Option<PathBuf>,
}

impl Pass {
    /// A pass with `fit`'s settings, no L2, no callbacks, nothing written.
    pub fn new(fit: FitConfig) -> Pass {
        Pass {
            fit,
            l2: 0.0,
            early_stopping: None,
            reduce_lr_on_plateau: None,
            checkpoints: None,
        }
    }

    /// Checkpoints into `run/checkpoints` after every epoch.
    pub fn with_checkpoints(mut self, run: &Path) -> Self {
        self.checkpoints = Some(run.join(CHECKPOINTS));
        self
    }

    /// L2 on every kernel.
    pub fn with_l2(mut self, l2: f32) -> Self {
        self.l2 = l2;
        self
    }

    /// Early stopping and plateau patiences.
    pub fn with_patience(mut self, early: Option<usize>, plateau: Option<usize>) -> Self {
        self.early_stopping = early;
        self.reduce_lr_on_plateau = plateau;
        self
    }
}

/// A finished pass.
pub struct Trained {
    /// The trained model.
    pub model: Model,
    /// Every epoch of the run: the start's, then this pass's.
    pub history: History,
    /// Epochs done in all.
    pub epochs_done: usize,
    /// Epochs this pass trained (fewer than asked when early stopping ended it).
    pub new_epochs: usize,
    /// Seconds this pass took.
    pub seconds: f32,
}

/// Trains `start` on `data` as `pass` says; `extra` callbacks run after
/// the pipeline's own (checkpointer, early stopping, plateau).
pub fn train(
    start: Start,
    data: &TrainData,
    pass: &Pass,
    extra: &mut [&mut dyn Callback],
) -> Result<Trained> {
    train_keeping(start, data, pass, extra).map_err(|failed| failed.error)
}

/// A pass that failed: the error and its start, whose model holds the
/// weights it had reached (a front end that keeps the model in memory, as
/// the Python package does, loses nothing).
pub struct Failed {
    /// What went wrong.
    pub error: RunError,
    /// The model as the failure left it, with the epochs and history before the pass.
    pub start: Start,
}

/// [`train`], handing the model back when the pass fails.
pub fn train_keeping(
    start: Start,
    data: &TrainData,
    pass: &Pass,
    extra: &mut [&mut dyn Callback],
) -> std::result::Result<Trained, Box<Failed>> {
    let Start {
        mut model,
        epochs_done,
        history: previous,
    } = start;
    let result = fit_pass(&mut model, epochs_done, &previous, data, pass, extra);
    match result {
        Ok((history, seconds)) => {
            let new_epochs = history.epochs.len();
            let mut all = previous;
            all.epochs.extend(history.epochs);
            Ok(Trained {
                model,
                history: all,
                epochs_done: epochs_done + new_epochs,
                new_epochs,
                seconds,
            })
        }
        Err(error) => Err(Box::new(Failed {
            error,
            start: Start {
                model,
                epochs_done,
                history: previous,
            },
        })),
    }
}

/// The pass itself: this pass's history and its seconds.
fn fit_pass(
    model: &mut Model,
    epochs_done: usize,
    previous: &History,
    data: &TrainData,
    pass: &Pass,
    extra: &mut [&mut dyn Callback],
) -> Result<(History, f32)> {
    model.set_l2(pass.l2)?;
    let loss = compiled_loss(model)?;
    let outputs = outputs_of(model);
    let train = Augmented::new(data.train.source(loss, outputs)?, data.augment.clone())?;
    let validation = match &data.validation {
        Some(v) => Some(v.source(loss, outputs)?),
        None => None,
    };
    let fit = pass.fit.clone().with_initial_epoch(epochs_done);
    let monitor = data.monitor();
    let mut checkpointer = pass
        .checkpoints
        .as_ref()
        .map(|dir| Checkpointer::new(dir).with_previous(previous.clone()));
    let mut early = pass
        .early_stopping
        .map(|p| EarlyStopping::new(monitor, p).with_restore_best_weights(true));
    let mut plateau = pass
        .reduce_lr_on_plateau
        .map(|p| ReduceLrOnPlateau::new(monitor).with_patience(p));
    let mut callbacks: Vec<&mut dyn Callback> = Vec::new();
    if let Some(c) = checkpointer.as_mut() {
        callbacks.push(c);
    }
    if let Some(e) = early.as_mut() {
        callbacks.push(e);
    }
    if let Some(p) = plateau.as_mut() {
        callbacks.push(p);
    }
    for cb in extra.iter_mut() {
        callbacks.push(&mut **cb);
    }
    let start = Instant::now();
    let val_ref = validation.as_ref().map(|v| v as &dyn DataSource);
    let history = model.fit(&train, val_ref, &fit, &mut callbacks)?;
    Ok((history, start.elapsed().as_secs_f32()))
}

impl Trained {
    /// Writes the model (`model.json`, `weights.safetensors`) and
    /// `history.csv` into `run`.
    pub fn save(&self, run: &Path) -> Result<()> {
        self.model.save(run)?;
        write_atomic(&run.join(HISTORY_FILE), self.history.to_csv().as_bytes())?;
        Ok(())
    }
}

/// Loss and accuracy of `model` on `test` (targets for its compiled loss),
/// `batch` images at a time.
pub fn evaluate(model: &mut Model, test: &LabeledImages, batch: usize) -> Result<Evaluation> {
    let data = dataset(test, compiled_loss(model)?, outputs_of(model))?;
    Ok(model.evaluate(&data, batch)?)
}

/// The loss `model` was compiled with.
fn compiled_loss(model: &Model) -> Result<convnet_nn::Loss> {
    model
        .loss()
        .ok_or_else(|| RunError::usage("the model is not compiled"))
}

/// Writes `run/metrics.json`: the test loss, accuracy and sample count.
pub fn write_metrics(run: &Path, e: &Evaluation, samples: usize) -> Result<()> {
    let json = format!(
        "{{\n  \"test_loss\": {},\n  \"test_accuracy\": {},\n  \"test_samples\": {}\n}}\n",
        e.loss, e.accuracy, samples
    );
    write_atomic(&run.join(METRICS_FILE), json.as_bytes())?;
    Ok(())
}
