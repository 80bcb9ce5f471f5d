//! Keras's callbacks as the engine runs them: the ones the nn crate has
//! (`EarlyStopping`, `ModelCheckpoint`, `ReduceLROnPlateau`, `CSVLogger`),
//! `BackupAndRestore` as the run pipeline's checkpoints (the CLI's resume),
//! and Ctrl-C.
//!
//! ```text
//! [{"class": "EarlyStopping", ...}, ...] (convnet.keras.callbacks) -> Callbacks { own, backup }
//! BackupAndRestore(dir): Pass::with_checkpoints(dir); a checkpoint there -> the pass starts
//!                        from it (weights, optimizer, RNG, epoch); deleted after a finished fit
//! ```

use crate::engine::value_err;
use convnet_nn::{
    Callback, Control, CsvLogger, EarlyStopping, EpochLogs, History, Model, ModelCheckpoint,
    ReduceLrOnPlateau,
};
use convnet_run::Start;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A Python error raised inside the pass (a scheduler function's, a
/// signal's), kept to be raised once the model is back.
pub type Pending = Arc<Mutex<Option<PyErr>>>;

/// The callbacks of one `fit`.
pub struct Callbacks {
    /// Run inside the training loop, after the pipeline's own.
    pub own: Vec<Box<dyn Callback + Send>>,
    /// Keras's `BackupAndRestore`.
    pub backup: Option<Backup>,
}

/// Keras's `BackupAndRestore(backup_dir, delete_checkpoint)`: the run
/// pipeline's per-epoch checkpoints in `dir/checkpoints`.
pub struct Backup {
    /// The backup folder.
    pub dir: PathBuf,
    /// Remove the checkpoints once a fit finishes (not when interrupted).
    pub delete: bool,
}

impl Backup {
    /// The newest checkpoint in the folder, when there is one, as the start
    /// of the pass; an error if it holds another architecture than `model`.
    pub fn resume(&self, model: &Model) -> PyResult<Option<Start>> {
        let start = Start::from_checkpoint(&self.dir)
            .map_err(|e| PyOSError::new_err(format!("BackupAndRestore: {e}")))?;
        match start {
            Some(s) if s.model.spec() != model.spec() => Err(value_err(format!(
                "BackupAndRestore: the backup in {} is of another model",
                self.dir.display()
            ))),
            other => Ok(other),
        }
    }

    /// Removes the checkpoints after a finished fit.
    pub fn finish(&self) -> PyResult<()> {
        if !self.delete {
            return Ok(());
        }
        let ckpt = self.dir.join(convnet_run::folder::CHECKPOINTS);
        match std::fs::remove_dir_all(&ckpt) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PyOSError::new_err(format!(
                "BackupAndRestore: {}: {e}",
                ckpt.display()
            ))),
            _ => Ok(()),
        }
    }
}

fn field<'a>(c: &'a Value, key: &str) -> PyResult<&'a Value> {
    c.get(key)
        .ok_or_else(|| value_err(format!("callback {c}: missing '{key}'")))
}

fn text(c: &Value, key: &str) -> PyResult<String> {
    field(c, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| value_err(format!("callback {c}: '{key}' must be a string")))
}

fn number(c: &Value, key: &str) -> PyResult<f64> {
    field(c, key)?
        .as_f64()
        .ok_or_else(|| value_err(format!("callback {c}: '{key}' must be a number")))
}

fn flag(c: &Value, key: &str) -> PyResult<bool> {
    field(c, key)?
        .as_bool()
        .ok_or_else(|| value_err(format!("callback {c}: '{key}' must be true or false")))
}

/// The callbacks that `convnet.keras.callbacks` describes as JSON objects
/// (`{"class": "EarlyStopping", "monitor": ..., ...}`, every field given).
pub fn parse(json: &str) -> PyResult<Callbacks> {
    let list: Vec<Value> = serde_json::from_str(json).map_err(value_err)?;
    let mut out: Vec<Box<dyn Callback + Send>> = Vec::new();
    let mut backup = None;
    for c in &list {
        let class = text(c, "class")?;
        let cb: Box<dyn Callback + Send> = match class.as_str() {
            "BackupAndRestore" => {
                backup = Some(Backup {
                    dir: PathBuf::from(text(c, "backup_dir")?),
                    delete: flag(c, "delete_checkpoint")?,
                });
                continue;
            }
            "EarlyStopping" => Box::new(
                EarlyStopping::new(&text(c, "monitor")?, number(c, "patience")? as usize)
                    .with_min_delta(number(c, "min_delta")? as f32)
                    .with_restore_best_weights(flag(c, "restore_best_weights")?),
            ),
            "ModelCheckpoint" => Box::new(
                ModelCheckpoint::new(text(c, "filepath")?, &text(c, "monitor")?)
                    .with_save_best_only(flag(c, "save_best_only")?),
            ),
            "ReduceLROnPlateau" => Box::new(
                ReduceLrOnPlateau::new(&text(c, "monitor")?)
                    .with_factor(number(c, "factor")? as f32)
                    .with_patience(number(c, "patience")? as usize)
                    .with_min_delta(number(c, "min_delta")? as f32)
                    .with_cooldown(number(c, "cooldown")? as usize)
                    .with_min_lr(number(c, "min_lr")? as f32),
            ),
            "CSVLogger" => Box::new(CsvLogger::new(text(c, "filename")?)),
            other => {
                return Err(value_err(format!(
                    "callback '{other}': expected EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger, BackupAndRestore or LearningRateScheduler"
                )))
            }
        };
        out.push(cb);
    }
    Ok(Callbacks { own: out, backup })
}

/// Ctrl-C during `fit`: Python's signal handler runs when asked; this asks
/// after every batch and stops the pass at the end of that epoch (the
/// model and its history kept), then `fit` raises the `KeyboardInterrupt`.
#[derive(Default)]
pub struct Interrupt {
    pub pending: Pending,
    seen: bool,
}

impl Interrupt {
    fn check(&mut self) {
        if self.seen {
            return;
        }
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            self.seen = true;
            self.pending.lock().expect("not poisoned").get_or_insert(e);
        }
    }
}

impl Callback for Interrupt {
    fn on_batch_end(&mut self, _: usize, _: usize, _: usize, _: f32, _: f32) {
        self.check();
    }

    fn on_epoch_end(
        &mut self,
        _: &mut Model,
        _: &EpochLogs,
        _: &History,
    ) -> convnet_nn::Result<Control> {
        self.check();
        let stop = self.seen || self.pending.lock().expect("not poisoned").is_some();
        Ok(if stop {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}
