//! Training checkpoints: everything needed to continue a run exactly where
//! it stopped, and the `Checkpointer` callback that writes one per epoch.
//!
//! ```text
//! DIR/LATEST                      name of the newest complete checkpoint (written atomically)
//! DIR/epoch-0003/model.json       architecture
//! DIR/epoch-0003/weights.safetensors    parameters and batch-norm statistics
//! DIR/epoch-0003/optimizer.safetensors  optimizer slots (velocity / moments)
//! DIR/epoch-0003/state.json       epochs done, optimizer step count and config,
//!                                 RNG position, plateau factor, history
//! ```
//!
//! A checkpoint folder is complete before `LATEST` names it, and `LATEST`
//! is replaced atomically, so a crash at any moment leaves the previous
//! checkpoint usable. Older folders are removed after the switch.

use crate::history::History;
use crate::optim::OptimizerConfig;
use crate::save::{tensors_from_bytes, tensors_to_bytes, write_atomic};
use crate::{Callback, Control, EpochLogs, Model, NnError, Result, Rng, Tensor};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File naming the newest checkpoint.
pub const LATEST: &str = "LATEST";

/// Position of the ChaCha8 generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    seed: [u8; 32],
    stream: u64,
    /// `u128` word position, as a decimal string (JSON has no u128).
    word_pos: String,
}

impl RngState {
    /// Captures `rng`'s position.
    pub fn of(rng: &Rng) -> Self {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }
    /// A generator at this position.
    pub fn restore(&self) -> Result<Rng> {
        let mut rng = Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        let pos: u128 = self.word_pos.parse().map_err(|_| NnError::Config {
            what: "checkpoint state".into(),
            msg: format!("bad RNG word position '{}'", self.word_pos),
        })?;
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// The non-tensor part of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs (the next `fit` starts at this `initial_epoch`).
    pub epochs_done: usize,
    /// Optimizer configuration.
    pub optimizer: OptimizerConfig,
    /// Optimizer steps taken.
    pub iterations: u64,
    /// Slots per optimizer state kind (`a`, `b`).
    pub slots: (usize, usize),
    /// The model's RNG position.
    pub rng: RngState,
    /// ReduceLROnPlateau's factor.
    pub lr_factor: f32,
    /// The loss the model was compiled with.
    pub loss: crate::Loss,
    /// History of the completed epochs.
    pub history: History,
    /// Each layer's update count of its running statistics (batch norm's
    /// bias correction); absent in older checkpoints, whose statistics then
    /// follow Keras's update, as they did.
    #[serde(default)]
    pub update_counts: Vec<Option<u64>>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> NnError {
    NnError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

impl Model {
    /// Writes a checkpoint for `epochs_done` completed epochs into `dir`.
    pub fn save_checkpoint(&self, dir: &Path, epochs_done: usize, history: &History) -> Result<()> {
        let opt = self.optimizer().ok_or_else(|| NnError::Config {
            what: "checkpoint".into(),
            msg: "the model is not compiled".into(),
        })?;
        let name = format!("epoch-{epochs_done:04}");
        let folder = dir.join(&name);
        self.save(&folder)?;
        let state = opt.state();
        let slots_a = state.iter().filter(|(n, _)| n.starts_with("a.")).count();
        let tensors: Vec<(String, Tensor)> = state
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    Tensor::from_vec(&[s.len()], s.to_vec()).expect("1-D"),
                )
            })
            .collect();
        let named: Vec<(String, &Tensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
        write_atomic(
            &folder.join("optimizer.safetensors"),
            &tensors_to_bytes(&named)?,
        )?;
        let ts = TrainState {
            epochs_done,
            optimizer: opt.config.clone(),
            iterations: opt.iterations,
            slots: (slots_a, state.len() - slots_a),
            rng: RngState::of(self.rng()),
            lr_factor: self.lr_factor(),
            loss: self.loss().expect("compiled"),
            history: history.clone(),
            update_counts: self.update_counts(),
        };
        let json = serde_json::to_vec_pretty(&ts).expect("serializable");
        write_atomic(&folder.join("state.json"), &json)?;
        write_atomic(&dir.join(LATEST), name.as_bytes())?;
        // Remove older checkpoints only after LATEST points at the new one.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.starts_with("epoch-") && n != name {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }

    /// Loads the newest checkpoint in `dir`: the compiled model with its
    /// weights, optimizer state and RNG position, and the training state.
    pub fn load_checkpoint(dir: &Path) -> Result<(Model, TrainState)> {
        let latest = dir.join(LATEST);
        let name = std::fs::read_to_string(&latest).map_err(|e| io(&latest, e))?;
        let name = name.trim();
        if !name.starts_with("epoch-") || name.contains('/') || name.contains("..") {
            return Err(io(
                &latest,
                format!("expected a checkpoint name like 'epoch-0003', found '{name}'"),
            ));
        }
        let folder = dir.join(name);
        let mut model = Model::load(&folder)?;
        let spath = folder.join("state.json");
        let text = std::fs::read_to_string(&spath).map_err(|e| io(&spath, e))?;
        let ts: TrainState = serde_json::from_str(&text)
            .map_err(|e| io(&spath, format!("invalid checkpoint state: {e}")))?;
        let opath = folder.join("optimizer.safetensors");
        let bytes = std::fs::read(&opath).map_err(|e| io(&opath, e))?;
        let mut tensors = tensors_from_bytes(&opath, &bytes)?;
        let mut take = |prefix: &str, count: usize| -> Result<Vec<Vec<f32>>> {
            (0..count)
                .map(|i| {
                    let key = format!("{prefix}.{i}");
                    tensors
                        .remove(&key)
                        .map(|t| t.into_vec())
                        .ok_or_else(|| io(&opath, format!("missing optimizer slot '{key}'")))
                })
                .collect()
        };
        let a = take("a", ts.slots.0)?;
        let b = take("b", ts.slots.1)?;
        model.compile(ts.optimizer.clone(), ts.loss);
        model
            .optimizer_mut()
            .expect("compiled")
            .set_state(ts.iterations, a, b);
        model.set_lr_factor(ts.lr_factor);
        model.set_rng(ts.rng.restore()?);
        model.set_update_counts(&ts.update_counts);
        Ok((model, ts))
    }
}

/// Writes a checkpoint at the end of every epoch.
#[derive(Clone, Debug)]
pub struct Checkpointer {
    dir: PathBuf,
    previous: History,
}

impl Checkpointer {
    /// Checkpoints into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpointer {
            dir: dir.into(),
            previous: History::default(),
        }
    }
    /// History of the epochs before this `fit` (when resuming), kept in
    /// front of the new epochs in every checkpoint.
    pub fn with_previous(mut self, h: History) -> Self {
        self.previous = h;
        self
    }
}

impl Callback for Checkpointer {
    fn on_epoch_end(
        &mut self,
        model: &mut Model,
        logs: &EpochLogs,
        history: &History,
    ) -> Result<Control> {
        let mut all = self.previous.clone();
        all.epochs.extend(history.epochs.iter().cloned());
        model.save_checkpoint(&self.dir, logs.epoch, &all)?;
        Ok(Control::Continue)
    }
}
