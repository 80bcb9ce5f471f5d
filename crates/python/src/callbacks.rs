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
    ModelSpec, ReduceLrOnPlateau,
};
use convnet_run::Start;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
            Some(s) if !same_architecture(s.model.spec(), model.spec()) => Err(value_err(format!(
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

/// The same layers, settings and connections, whatever the nodes are named
/// (Keras's automatic names differ between two builds of one model).
fn same_architecture(a: &ModelSpec, b: &ModelSpec) -> bool {
    let wiring = |s: &ModelSpec| s.wiring().map(|w| w.inputs).ok();
    a.input_shape == b.input_shape
        && a.layers.len() == b.layers.len()
        && a.layers
            .iter()
            .zip(&b.layers)
            .all(|(x, y)| x.layer == y.layer && x.trainable == y.trainable)
        && wiring(a).is_some()
        && wiring(a) == wiring(b)
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

/// The Python side of a `fit` as the engine runs it: Ctrl-C, and the
/// package's hooks object (Keras's progress bar and the user's `Callback`s),
/// called with the GIL taken for the call only.
///
/// ```text
/// epoch begins -> hooks.on_epoch_begin(epoch)
/// batch ends   -> Python's signal handlers; hooks.on_batch_end(epoch, step, steps, loss, acc)
///                 every batch when hooks.every_batch, else each 50 ms and at the last step
/// epoch ends   -> hooks.on_epoch_end(epoch, logs) -> True: stop after this epoch
/// ```
///
/// Ctrl-C or an error in a hook stops the pass after the batch it came in
/// (`NnError::Stopped`, the model as that step left it); `fit` then raises it.
#[derive(Default)]
pub struct Hooks {
    pub pending: Pending,
    hooks: Option<Py<PyAny>>,
    every_batch: bool,
    last: Option<Instant>,
}

/// How often the progress bar is fed when no hook asks for every batch (Keras's `Progbar.interval`).
const INTERVAL: Duration = Duration::from_millis(50);

impl Hooks {
    /// The hooks object of `fit`'s `hooks=` keyword (none: Ctrl-C only).
    pub fn new(py: Python<'_>, hooks: Option<Py<PyAny>>) -> PyResult<Hooks> {
        let every_batch = match &hooks {
            Some(h) => h.getattr(py, "every_batch")?.extract(py)?,
            None => false,
        };
        Ok(Hooks {
            hooks,
            every_batch,
            ..Hooks::default()
        })
    }

    fn stopping(&self) -> bool {
        self.pending.lock().expect("not poisoned").is_some()
    }

    /// Keeps the first error to raise once the model is back.
    fn keep<T>(&self, r: PyResult<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.pending.lock().expect("not poisoned").get_or_insert(e);
                None
            }
        }
    }

    fn control(&self) -> Control {
        if self.stopping() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

impl Callback for Hooks {
    fn on_epoch_begin(&mut self, _: &mut Model, epoch: usize) -> convnet_nn::Result<()> {
        if let Some(h) = &self.hooks {
            Python::attach(|py| self.keep(h.call_method1(py, "on_epoch_begin", (epoch,))));
        }
        Ok(())
    }

    fn on_batch_end(
        &mut self,
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f32,
        acc: f32,
    ) -> Control {
        let due =
            self.every_batch || step == steps || self.last.is_none_or(|t| t.elapsed() >= INTERVAL);
        Python::attach(|py| {
            self.keep(py.check_signals());
            if let (Some(h), true) = (&self.hooks, due) {
                self.keep(h.call_method1(py, "on_batch_end", (epoch, step, steps, loss, acc)));
            }
        });
        if due {
            self.last = Some(Instant::now());
        }
        self.control()
    }

    fn on_epoch_end(
        &mut self,
        _: &mut Model,
        logs: &EpochLogs,
        _: &History,
    ) -> convnet_nn::Result<Control> {
        let mut stop = false;
        Python::attach(|py| {
            self.keep(py.check_signals());
            if let Some(h) = &self.hooks {
                let called = crate::fit::logs_dict(py, logs)
                    .and_then(|d| h.call_method1(py, "on_epoch_end", (logs.epoch - 1, d)))
                    .and_then(|r| r.extract::<bool>(py));
                stop = self.keep(called).unwrap_or(false);
            }
        });
        Ok(if stop { Control::Stop } else { self.control() })
    }
}
