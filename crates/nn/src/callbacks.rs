//! Callbacks: EarlyStopping, ModelCheckpoint, CsvLogger, ReduceLROnPlateau.
//!
//! A callback sees the model after every epoch and may stop training.
//! (Keras's TerminateOnNaN is built into `fit`, which always stops with
//! [`crate::NnError::NonFinite`] naming the epoch and batch.)

use crate::history::{csv_row, EpochLogs, History, CSV_HEADER};
use crate::{Model, Result, Tensor};
use std::io::Write;
use std::path::PathBuf;

/// What `fit` should do after a callback ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop: after this epoch when said at an epoch's end; at once, with
    /// [`crate::NnError::Stopped`], when said after a batch.
    Stop,
}

/// Hooks into `fit`.
pub trait Callback {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _model: &mut Model) -> Result<()> {
        Ok(())
    }
    /// Before each epoch (0-based), before its first batch.
    fn on_epoch_begin(&mut self, _model: &mut Model, _epoch: usize) -> Result<()> {
        Ok(())
    }
    /// After each epoch, with its logs and the history so far.
    fn on_epoch_end(
        &mut self,
        _model: &mut Model,
        _logs: &EpochLogs,
        _history: &History,
    ) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After the last epoch.
    fn on_train_end(&mut self, _model: &mut Model) -> Result<()> {
        Ok(())
    }
    /// Before each training step: the epoch (0-based), the step (1-based)
    /// and the learning rate it would use. A callback may change the rate
    /// from this step on with [`Model::set_lr_factor`] (the schedule's
    /// value times that factor), as the explorer's rate box does.
    fn on_batch_begin(
        &mut self,
        _model: &mut Model,
        _epoch: usize,
        _step: usize,
        _lr: f32,
    ) -> Result<()> {
        Ok(())
    }
    /// After each training step: the epoch (0-based), the step within it
    /// (1-based) out of `steps`, and the epoch's running mean loss and
    /// accuracy so far (what the progress bar shows). For live displays
    /// and interrupts: [`Control::Stop`] ends `fit` at once with
    /// [`crate::NnError::Stopped`] (the model as this step left it). Under
    /// MPI every rank must say the same.
    fn on_batch_end(
        &mut self,
        _epoch: usize,
        _step: usize,
        _steps: usize,
        _loss: f32,
        _accuracy: f32,
    ) -> Control {
        Control::Continue
    }
}

/// Whether a monitored metric improves upwards (accuracies) or downwards (losses).
fn higher_is_better(monitor: &str) -> bool {
    monitor.contains("acc")
}

/// Tracks the best value of a metric.
#[derive(Clone, Debug)]
struct Best {
    monitor: String,
    min_delta: f32,
    best: Option<f32>,
}

impl Best {
    fn new(monitor: &str, min_delta: f32) -> Self {
        Best {
            monitor: monitor.into(),
            min_delta,
            best: None,
        }
    }
    /// The monitored value (falling back from `val_x` to `x` when there is
    /// no validation), and whether it improved on the best so far.
    fn update(&mut self, logs: &EpochLogs) -> (f32, bool) {
        let v = logs
            .get(&self.monitor)
            .or_else(|| logs.get(self.monitor.trim_start_matches("val_")))
            .unwrap_or(f32::NAN);
        let better = match self.best {
            None => v.is_finite(),
            Some(b) if higher_is_better(&self.monitor) => v > b + self.min_delta,
            Some(b) => v < b - self.min_delta,
        };
        if better {
            self.best = Some(v);
        }
        (v, better)
    }
}

fn snapshot(model: &Model) -> Vec<Tensor> {
    model
        .named_params()
        .into_iter()
        .map(|(_, p)| p.value.clone())
        .collect()
}

fn restore(model: &mut Model, weights: &[Tensor]) {
    for (p, w) in model.params_mut().into_iter().zip(weights) {
        p.value = w.clone();
    }
}

/// Stops when the monitored metric has not improved for `patience` epochs.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    best: Best,
    patience: usize,
    restore_best_weights: bool,
    wait: usize,
    best_weights: Option<Vec<Tensor>>,
    /// The epoch (1-based) at which training was stopped, if it was.
    pub stopped_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Monitors `monitor` (e.g. `val_loss`) with the given patience.
    pub fn new(monitor: &str, patience: usize) -> Self {
        EarlyStopping {
            best: Best::new(monitor, 0.0),
            patience,
            restore_best_weights: false,
            wait: 0,
            best_weights: None,
            stopped_epoch: None,
        }
    }
    /// Minimum change that counts as an improvement.
    pub fn with_min_delta(mut self, d: f32) -> Self {
        self.best.min_delta = d;
        self
    }
    /// Restore the best epoch's weights when training ends.
    pub fn with_restore_best_weights(mut self, r: bool) -> Self {
        self.restore_best_weights = r;
        self
    }
}

impl Callback for EarlyStopping {
    fn on_epoch_end(
        &mut self,
        model: &mut Model,
        logs: &EpochLogs,
        _: &History,
    ) -> Result<Control> {
        let (_, better) = self.best.update(logs);
        if better {
            self.wait = 0;
            if self.restore_best_weights {
                self.best_weights = Some(snapshot(model));
            }
            return Ok(Control::Continue);
        }
        self.wait += 1;
        if self.wait >= self.patience {
            self.stopped_epoch = Some(logs.epoch);
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }
    fn on_train_end(&mut self, model: &mut Model) -> Result<()> {
        if let Some(w) = &self.best_weights {
            restore(model, w);
        }
        Ok(())
    }
}

/// Saves the model after each epoch, or only when the monitored metric improves.
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    dir: PathBuf,
    best: Best,
    save_best_only: bool,
    /// Number of saves made.
    pub saves: usize,
}

impl ModelCheckpoint {
    /// Saves into `dir` (see [`Model::save`]), monitoring `monitor`.
    pub fn new(dir: impl Into<PathBuf>, monitor: &str) -> Self {
        ModelCheckpoint {
            dir: dir.into(),
            best: Best::new(monitor, 0.0),
            save_best_only: false,
            saves: 0,
        }
    }
    /// Save only when the metric improves.
    pub fn with_save_best_only(mut self, b: bool) -> Self {
        self.save_best_only = b;
        self
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(
        &mut self,
        model: &mut Model,
        logs: &EpochLogs,
        _: &History,
    ) -> Result<Control> {
        let (_, better) = self.best.update(logs);
        if better || !self.save_best_only {
            model.save(&self.dir)?;
            self.saves += 1;
        }
        Ok(Control::Continue)
    }
}

/// Appends one line per epoch to a CSV file (header first if the file is new).
#[derive(Clone, Debug)]
pub struct CsvLogger {
    path: PathBuf,
}

impl CsvLogger {
    /// Logs to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvLogger { path: path.into() }
    }
}

impl Callback for CsvLogger {
    fn on_epoch_end(&mut self, _: &mut Model, logs: &EpochLogs, _: &History) -> Result<Control> {
        let io = |e: std::io::Error| crate::NnError::Io {
            path: self.path.display().to_string(),
            msg: e.to_string(),
        };
        let new = !self.path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        if new {
            writeln!(f, "{CSV_HEADER}").map_err(io)?;
        }
        writeln!(f, "{}", csv_row(logs)).map_err(io)?;
        Ok(Control::Continue)
    }
}

/// Multiplies the learning rate by `factor` when the monitored metric has
/// not improved for `patience` epochs (Keras's defaults: factor 0.1,
/// patience 10, min_delta 1e-4, cooldown 0, min_lr 0).
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    best: Best,
    factor: f32,
    patience: usize,
    cooldown: usize,
    min_lr: f32,
    wait: usize,
    cooldown_left: usize,
}

impl ReduceLrOnPlateau {
    /// Monitors `monitor` with Keras's defaults.
    pub fn new(monitor: &str) -> Self {
        ReduceLrOnPlateau {
            best: Best::new(monitor, 1e-4),
            factor: 0.1,
            patience: 10,
            cooldown: 0,
            min_lr: 0.0,
            wait: 0,
            cooldown_left: 0,
        }
    }
    /// Factor applied at each reduction.
    pub fn with_factor(mut self, f: f32) -> Self {
        self.factor = f;
        self
    }
    /// Epochs without improvement before a reduction.
    pub fn with_patience(mut self, p: usize) -> Self {
        self.patience = p;
        self
    }
    /// Smallest change of the metric that counts as an improvement.
    pub fn with_min_delta(mut self, d: f32) -> Self {
        self.best.min_delta = d;
        self
    }
    /// Epochs to wait after a reduction.
    pub fn with_cooldown(mut self, c: usize) -> Self {
        self.cooldown = c;
        self
    }
    /// Lower bound on the learning rate.
    pub fn with_min_lr(mut self, m: f32) -> Self {
        self.min_lr = m;
        self
    }
}

impl Callback for ReduceLrOnPlateau {
    fn on_epoch_end(
        &mut self,
        model: &mut Model,
        logs: &EpochLogs,
        _: &History,
    ) -> Result<Control> {
        let (_, better) = self.best.update(logs);
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.wait = 0;
        }
        if better {
            self.wait = 0;
        } else if self.cooldown_left == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let lr = logs.lr;
                let new_lr = (lr * self.factor).max(self.min_lr);
                if lr > 0.0 && new_lr < lr {
                    model.set_lr_factor(model.lr_factor() * new_lr / lr);
                }
                self.wait = 0;
                self.cooldown_left = self.cooldown;
            }
        }
        Ok(Control::Continue)
    }
}
