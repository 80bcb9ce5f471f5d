//! `fit`'s arguments as Keras takes them, turned into the run pipeline's
//! `TrainData` and `Pass`, and Keras's callbacks into the nn crate's.
//!
//! ```text
//! x, y (+ validation_data | validation_split: the last fraction, as Keras)
//!   -> TrainData { TensorExamples views }            (no copy beyond x, y)
//! callbacks (JSON from convnet.keras.callbacks)     -> EarlyStopping, ModelCheckpoint,
//!                                                      ReduceLrOnPlateau, CsvLogger
//! LearningRateScheduler(f)                          -> FitConfig::with_lr_fn (calls f)
//! hooks (progress bar, Python Callbacks), Ctrl-C     -> callbacks::Hooks; Ctrl-C stops the pass
//!                                                      after its batch, the model is kept,
//!                                                      then KeyboardInterrupt
//! ```

use crate::callbacks::{self, Hooks, Pending};
use crate::engine::{value_err, Engine};
use crate::runfile::{run_config, FitRecord, Source};
use convnet_data::{AugmentConfig, FolderOptions, LabeledImages};
use convnet_nn::{Callback, EpochLogs, FitConfig, History, Model, NnError, Precision, Verbosity};
use convnet_run::{Examples, Pass, RunError, TrainData};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::Path;

/// The training and validation examples: `validation` as given, else the
/// last `validation_split` of `x` (Keras's rule: taken before shuffling).
pub fn train_data<'a>(
    train: Examples<'a>,
    validation: Option<Examples<'a>>,
    validation_split: f32,
) -> PyResult<TrainData<'a>> {
    if !(0.0..1.0).contains(&validation_split) {
        return Err(value_err(format!(
            "validation_split: expected a fraction in [0, 1), found {validation_split}"
        )));
    }
    match validation {
        Some(v) => Ok(TrainData {
            train,
            validation: Some(v),
            augment: Default::default(),
        }),
        None => TrainData::split(train, validation_split, Default::default()).map_err(value_err),
    }
}

/// `fit`'s other arguments, as the package passes them (keywords).
pub struct Settings {
    batch_size: usize,
    epochs: usize,
    initial_epoch: usize,
    shuffle: bool,
    verbose: u8,
    callbacks: String,
    lr_schedule: Option<Py<PyAny>>,
    precision: Option<String>,
    /// The package's hooks object (progress bar, Python callbacks).
    hooks: Option<Py<PyAny>>,
    /// Shuffles an image folder's file list.
    pub seed: u64,
}

impl Settings {
    /// From the keywords `batch_size`, `epochs`, `initial_epoch`, `shuffle`,
    /// `verbose`, `callbacks` (JSON), `lr_schedule`, `precision`, `seed`.
    pub fn from_kwargs(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Settings> {
        let mut s = Settings {
            batch_size: 32,
            epochs: 1,
            initial_epoch: 0,
            shuffle: true,
            verbose: 1,
            callbacks: "[]".into(),
            lr_schedule: None,
            precision: None,
            hooks: None,
            seed: convnet_run::settings::SEED,
        };
        for (k, v) in kwargs.into_iter().flat_map(|d| d.iter()) {
            let key: String = k.extract()?;
            match key.as_str() {
                "batch_size" => s.batch_size = v.extract()?,
                "epochs" => s.epochs = v.extract()?,
                "initial_epoch" => s.initial_epoch = v.extract()?,
                "shuffle" => s.shuffle = v.extract()?,
                "verbose" => s.verbose = v.extract()?,
                "callbacks" => s.callbacks = v.extract()?,
                "lr_schedule" => s.lr_schedule = (!v.is_none()).then(|| v.unbind()),
                "precision" => s.precision = v.extract()?,
                "hooks" => s.hooks = (!v.is_none()).then(|| v.unbind()),
                "seed" => s.seed = v.extract()?,
                other => return Err(value_err(format!("fit: unexpected argument '{other}'"))),
            }
        }
        if s.batch_size == 0 {
            return Err(value_err("batch_size: expected at least 1"));
        }
        Ok(s)
    }
}

/// An `ImageDataGenerator`'s transforms (`AugmentConfig` as JSON); none: identity.
pub fn augment(json: Option<&str>) -> PyResult<AugmentConfig> {
    match json {
        None => Ok(AugmentConfig::default()),
        Some(j) => serde_json::from_str(j).map_err(value_err),
    }
}

/// The class sub-folders of `dir` as labelled images of the model's input
/// size (decoded as batches need them, `cache_mib` of them kept), and the
/// folder as the run file names it.
pub fn folder(
    model: &Model,
    dir: &Path,
    seed: u64,
    cache_mib: usize,
    validation_split: f32,
) -> PyResult<(LabeledImages, Source)> {
    let shape = model.input_shape();
    if shape.len() != 3 {
        return Err(value_err(format!(
            "flow_from_directory: the model takes {shape:?}, expected images [H, W, C]"
        )));
    }
    let opts = FolderOptions::new(shape[0], shape[1], shape[2])
        .with_seed(seed)
        .with_cache_bytes(cache_mib << 20);
    let f = convnet_data::load_image_folder(dir, &opts)
        .map_err(|e| PyOSError::new_err(format!("{}: {e}", dir.display())))?;
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let source = Source {
        data: format!("folder:{}", absolute.display()),
        classes: Some(f.classes),
        validation_split,
    };
    Ok((f.train, source))
}

/// Runs the pass on `engine`'s model and returns Keras's history dict of
/// the epochs it trained, the first one's index (later than asked when
/// `BackupAndRestore` resumed) and the pass's seconds (the span the CLI's
/// "Trained ... in Xs" reports); the model is back in `engine` whatever
/// happened.
pub fn run(
    engine: &mut Engine,
    py: Python<'_>,
    data: TrainData,
    s: Settings,
    source: Source,
) -> PyResult<(Py<PyAny>, usize, f32)> {
    if engine.model()?.loss().is_none() {
        return Err(PyRuntimeError::new_err("compile the model before fit"));
    }
    let config = FitConfig::new()
        .with_epochs(s.epochs)
        .with_batch_size(s.batch_size)
        .with_shuffle(s.shuffle)
        .with_verbosity(verbosity(s.verbose)?);
    let mut hooks = Hooks::new(py, s.hooks)?;
    let mut pass = pass(
        config,
        s.precision.as_deref(),
        s.lr_schedule,
        &hooks.pending,
    )?;
    let callbacks::Callbacks { mut own, backup } = callbacks::parse(&s.callbacks)?;
    let mut start = convnet_run::Start {
        model: engine.model.take().expect("checked above"),
        epochs_done: s.initial_epoch,
        history: History::default(),
    };
    if let Some(b) = &backup {
        pass = pass.with_checkpoints(&b.dir);
        match b.resume(&start.model) {
            Ok(Some(resumed)) => start = resumed,
            Ok(None) => {}
            Err(e) => {
                engine.model = Some(start.model);
                return Err(e);
            }
        }
    }
    let (first, before) = (start.epochs_done, start.history.epochs.len());
    let result = py.detach(|| {
        let mut extra: Vec<&mut dyn Callback> = Vec::new();
        for cb in own.iter_mut() {
            extra.push(&mut **cb);
        }
        extra.push(&mut hooks);
        convnet_run::train_keeping(start, &data, &pass, &mut extra)
    });
    let mut seconds = 0.0;
    let (outcome, mut history) = match result {
        Ok(t) => {
            engine.epochs_done = t.epochs_done;
            engine.model = Some(t.model);
            seconds = t.seconds;
            (Ok(()), t.history)
        }
        Err(failed) => {
            if let RunError::Nn(NnError::Stopped { epoch, .. }) = failed.error {
                engine.epochs_done = epoch - 1; // the epochs before the interrupted one
            }
            engine.model = Some(failed.start.model);
            (Err(value_err(failed.error)), History::default())
        }
    };
    let model = engine.model()?;
    let record = FitRecord {
        source,
        batch_size: s.batch_size,
        augment: data.augment.clone(),
        seed: s.seed,
        precision: model.precision(),
    };
    engine.run = Some(run_config(
        model,
        engine.epochs_done,
        engine.run.as_ref(),
        Some(&record),
    ));
    if let Some(e) = hooks.pending.lock().expect("not poisoned").take() {
        return Err(e);
    }
    outcome?;
    if let Some(b) = &backup {
        b.finish()?;
    }
    history.epochs.drain(..before.min(history.epochs.len()));
    Ok((history_dict(py, &history)?, first, seconds))
}

/// Keras's `verbose`: 0 silent, 1 a progress bar, 2 one line per epoch.
pub fn verbosity(verbose: u8) -> PyResult<Verbosity> {
    match verbose {
        0 => Ok(Verbosity::Silent),
        1 => Ok(Verbosity::ProgressBar),
        2 => Ok(Verbosity::EpochLines),
        v => Err(value_err(format!("verbose: expected 0, 1 or 2, found {v}"))),
    }
}

/// The pass: Keras's settings on the pipeline's `FitConfig`; `lr_schedule`
/// (Keras's `LearningRateScheduler(schedule)`: `schedule(epoch, lr)`)
/// overrides the constant rate.
pub fn pass(
    fit: FitConfig,
    precision: Option<&str>,
    lr_schedule: Option<Py<PyAny>>,
    pending: &Pending,
) -> PyResult<Pass> {
    let mut fit = fit;
    if let Some(p) = precision {
        let p = Precision::from_name(p).ok_or_else(|| {
            value_err(format!(
                "precision '{p}': expected float32 (fp32) or mixed_bfloat16 (bf16)"
            ))
        })?;
        fit = fit.with_precision(p.on_this_cpu().unwrap_or(Precision::Fp32));
    }
    if let Some(f) = lr_schedule {
        let pending = pending.clone();
        fit = fit.with_lr_fn(move |epoch, lr| {
            Python::attach(|py| {
                let got = f.call1(py, (epoch, lr)).and_then(|v| v.extract::<f32>(py));
                match got {
                    Ok(v) => v,
                    Err(e) => {
                        pending.lock().expect("not poisoned").get_or_insert(e);
                        lr
                    }
                }
            })
        });
    }
    Ok(Pass::new(fit))
}

/// One epoch's logs as Keras 3's `logs` dict, in its order (`accuracy`,
/// `loss`, `val_accuracy` and `val_loss` when validated, `learning_rate`).
pub fn logs_dict<'py>(py: Python<'py>, l: &EpochLogs) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("accuracy", l.accuracy)?;
    d.set_item("loss", l.loss)?;
    if let (Some(vl), Some(va)) = (l.val_loss, l.val_accuracy) {
        d.set_item("val_accuracy", va)?;
        d.set_item("val_loss", vl)?;
    }
    d.set_item("learning_rate", l.lr)?;
    Ok(d)
}

/// Keras's `History.history`: one list per metric, one value per epoch.
pub fn history_dict(py: Python<'_>, h: &History) -> PyResult<Py<PyAny>> {
    let d = pyo3::types::PyDict::new(py);
    let col = |f: &dyn Fn(&EpochLogs) -> Option<f32>| -> Option<Vec<f32>> {
        h.epochs.iter().map(f).collect()
    };
    d.set_item("loss", col(&|e| Some(e.loss)))?;
    d.set_item("accuracy", col(&|e| Some(e.accuracy)))?;
    if let Some(v) = col(&|e| e.val_loss) {
        d.set_item("val_loss", v)?;
    }
    if let Some(v) = col(&|e| e.val_accuracy) {
        d.set_item("val_accuracy", v)?;
    }
    d.set_item("learning_rate", col(&|e| Some(e.lr)))?;
    Ok(d.into_any().unbind())
}
