//! compile / fit / evaluate: the training loop.
//!
//! One training step on a batch `(x, y)`:
//!
//! ```text
//! z = layers(x)                      (Mode::Train; the head is split off)
//! fused loss (softmax+CE, sigmoid+BCE):  (L, dz) = loss_from_logits(z, y)
//! otherwise:                          p = head(z); (L, dp) = loss(p, y); dz = head'(dp)
//! L += l2 * sum ||kernel||^2,         dkernel += 2 l2 kernel
//! backward(dz); optimizer step at lr = schedule(epoch) * plateau factor; zero grads
//! ```
//!
//! Accuracy follows the loss, as Keras's `"accuracy"` does: categorical
//! (argmax) for categorical losses and multi-output MSE, sparse for integer
//! labels, binary (threshold 0.5) for binary cross-entropy and 1-output MSE.

use crate::callbacks::{Callback, Control};
use crate::data::{DataSource, Subset};
use crate::dist::{Collective, ShardPlan, SingleProcess};
use crate::error::config_err;
use crate::history::{EpochLogs, Evaluation, History};
use crate::loss::count_correct;
use crate::model::Training;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::{Batch, Loss, Mode, Model, NnError, Param, Result, Schedule};
use convnet_tensor::{Precision, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::Rng as _;
use std::time::Instant;

/// How much `fit` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Nothing.
    Silent,
    /// A progress bar per epoch, then a summary line.
    #[default]
    ProgressBar,
    /// One summary line per epoch.
    EpochLines,
}

/// A per-epoch learning-rate function: `(epoch, base_lr) -> lr` (Keras's
/// `LearningRateScheduler`).
pub type LrFn = std::sync::Arc<dyn Fn(usize, f32) -> f32 + Send + Sync>;

/// Settings of `fit`, Keras's arguments.
#[derive(Clone)]
pub struct FitConfig {
    /// Last epoch (exclusive upper bound, as in Keras: `epochs=3` trains 0, 1, 2).
    pub epochs: usize,
    /// First epoch (to continue a run).
    pub initial_epoch: usize,
    /// Samples per gradient step.
    pub batch_size: usize,
    /// Reshuffle the training samples every epoch.
    pub shuffle: bool,
    /// Fraction of the samples, taken from the end before shuffling, held
    /// out for validation (ignored when validation data is given).
    pub validation_split: f32,
    /// Cap on the batches per epoch.
    pub steps_per_epoch: Option<usize>,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// A custom per-epoch learning rate; overrides `schedule` when set.
    pub lr_fn: Option<LrFn>,
    /// Output.
    pub verbosity: Verbosity,
    /// Shards per batch run one after another in this process (see
    /// [`crate::dist`]): what `mpirun -np shards` computes, in one process.
    pub shards: usize,
    /// The processes that share each batch (MPI ranks), one shard each.
    pub collective: std::sync::Arc<dyn Collective>,
    /// Batch-norm statistics over the whole batch of all ranks (PyTorch's
    /// SyncBatchNorm) instead of per rank (DistributedDataParallel's default).
    pub sync_batch_norm: bool,
    /// The arithmetic of the products during this fit and after it
    /// ([`Model::set_precision`]; `None`: the model's own, fp32 unless set).
    pub precision: Option<Precision>,
}

impl std::fmt::Debug for FitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitConfig")
            .field("epochs", &self.epochs)
            .field("initial_epoch", &self.initial_epoch)
            .field("batch_size", &self.batch_size)
            .field("shuffle", &self.shuffle)
            .field("validation_split", &self.validation_split)
            .field("steps_per_epoch", &self.steps_per_epoch)
            .field("schedule", &self.schedule)
            .field("lr_fn", &self.lr_fn.as_ref().map(|_| "custom"))
            .field("verbosity", &self.verbosity)
            .field("shards", &self.shards)
            .field("ranks", &self.collective.size())
            .field("sync_batch_norm", &self.sync_batch_norm)
            .field("precision", &self.precision)
            .finish()
    }
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 1,
            initial_epoch: 0,
            batch_size: 32,
            shuffle: true,
            validation_split: 0.0,
            steps_per_epoch: None,
            schedule: Schedule::Constant,
            lr_fn: None,
            verbosity: Verbosity::ProgressBar,
            shards: 1,
            collective: std::sync::Arc::new(SingleProcess),
            sync_batch_norm: false,
            precision: None,
        }
    }
}

impl FitConfig {
    /// Keras's defaults: 1 epoch, batch 32, shuffled, no validation.
    pub fn new() -> Self {
        Self::default()
    }
    /// Trains (and then predicts) in `precision`: [`Precision::Bf16`] is
    /// Keras's `mixed_bfloat16` policy (bf16 products, fp32 weights).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = Some(precision);
        self
    }
    /// Number of epochs.
    pub fn with_epochs(mut self, e: usize) -> Self {
        self.epochs = e;
        self
    }
    /// Epoch to start from.
    pub fn with_initial_epoch(mut self, e: usize) -> Self {
        self.initial_epoch = e;
        self
    }
    /// Batch size.
    pub fn with_batch_size(mut self, b: usize) -> Self {
        self.batch_size = b;
        self
    }
    /// Shuffle or not.
    pub fn with_shuffle(mut self, s: bool) -> Self {
        self.shuffle = s;
        self
    }
    /// Validation fraction taken from the end.
    pub fn with_validation_split(mut self, v: f32) -> Self {
        self.validation_split = v;
        self
    }
    /// Cap on batches per epoch.
    pub fn with_steps_per_epoch(mut self, s: usize) -> Self {
        self.steps_per_epoch = Some(s);
        self
    }
    /// Learning-rate schedule.
    pub fn with_schedule(mut self, s: Schedule) -> Self {
        self.schedule = s;
        self
    }
    /// A custom per-epoch learning rate, e.g. `|e, lr| lr * 0.95f32.powi(e as i32)`.
    pub fn with_lr_fn(mut self, f: impl Fn(usize, f32) -> f32 + Send + Sync + 'static) -> Self {
        self.lr_fn = Some(std::sync::Arc::new(f));
        self
    }
    /// Output.
    pub fn with_verbosity(mut self, v: Verbosity) -> Self {
        self.verbosity = v;
        self
    }
    /// Splits every batch into `n` shards computed one after another, their
    /// gradients summed in order: bit for bit what `n` MPI ranks compute.
    pub fn with_shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }
    /// Batch-norm statistics over all ranks' rows (SyncBatchNorm).
    pub fn with_sync_batch_norm(mut self, on: bool) -> Self {
        self.sync_batch_norm = on;
        self
    }
    /// Shares every batch among the processes of `c`, one shard each.
    pub fn with_collective(mut self, c: std::sync::Arc<dyn Collective>) -> Self {
        self.collective = c;
        self
    }
}

impl Model {
    /// Sets the loss and the optimizer (with fresh state).
    pub fn compile(&mut self, optimizer: OptimizerConfig, loss: Loss) {
        self.training = Some(Training {
            loss,
            optimizer: Optimizer::new(optimizer),
            l2: 0.0,
            lr_factor: 1.0,
        });
    }

    /// Adds Keras's `kernel_regularizer=l2(l2)` to every Conv2D and Dense kernel.
    pub fn set_l2(&mut self, l2: f32) -> Result<()> {
        self.training_mut()?.l2 = l2;
        Ok(())
    }

    /// The compiled loss.
    pub fn loss(&self) -> Option<Loss> {
        self.training.as_ref().map(|t| t.loss)
    }

    /// The optimizer and its state.
    pub fn optimizer(&self) -> Option<&Optimizer> {
        self.training.as_ref().map(|t| &t.optimizer)
    }

    /// The optimizer, mutable (for restoring checkpoints).
    pub fn optimizer_mut(&mut self) -> Option<&mut Optimizer> {
        self.training.as_mut().map(|t| &mut t.optimizer)
    }

    /// The multiplier ReduceLROnPlateau applies to the scheduled rate.
    pub fn lr_factor(&self) -> f32 {
        self.training.as_ref().map_or(1.0, |t| t.lr_factor)
    }

    /// Sets that multiplier.
    pub fn set_lr_factor(&mut self, f: f32) {
        if let Some(t) = &mut self.training {
            t.lr_factor = f;
        }
    }

    pub(crate) fn training_mut(&mut self) -> Result<&mut Training> {
        self.training
            .as_mut()
            .ok_or_else(|| config_err("model", "call compile() before fit() or evaluate()"))
    }

    /// The loss actually applied to the logits, and whether it is fused.
    fn effective_loss(&self, loss: Loss) -> (Loss, bool) {
        match loss.fused_with(self.head()) {
            Some(f) => (f, true),
            None => (loss, false),
        }
    }

    /// Loss, its gradient w.r.t. the logits, and the probabilities.
    pub(crate) fn loss_and_grad(
        &self,
        loss: Loss,
        z: &Tensor,
        y: &Tensor,
    ) -> (f32, Tensor, Tensor) {
        let (eff, fused) = self.effective_loss(loss);
        let row = z.sample_len().max(1);
        let mut p = z.clone();
        self.head().forward(p.data_mut(), row);
        if fused {
            let (l, dz) = eff.compute(z, y);
            (l, dz, p)
        } else {
            let (l, mut dz) = eff.compute(&p, y);
            self.head().backward(p.data(), dz.data_mut(), row);
            (l, dz, p)
        }
    }

    /// Checks a batch's shapes against the model and the loss.
    pub(crate) fn check_batch(&self, loss: Loss, x: &Tensor, y: &Tensor) -> Result<()> {
        self.check_input(x, "inputs")?;
        let mut out = vec![x.batch()];
        out.extend_from_slice(self.output_shape());
        loss.check_targets(&out, y.shape())
    }

    /// One gradient step on a batch; returns the loss (before the step)
    /// and the number of correct predictions.
    pub fn train_step(&mut self, x: &Tensor, y: &Tensor, lr: f32) -> Result<(f32, usize, usize)> {
        let loss = self.training_mut()?.loss;
        self.check_batch(loss, x, y)?;
        let z = self.forward(x, Mode::Train, false);
        let (mut l, dz, p) = self.loss_and_grad(loss, &z, y);
        let (hits, total) = count_correct(loss, &p, y);
        self.backward(dz);
        l += self.apply_gradients(lr)? as f32;
        Ok((l, hits, total))
    }

    /// The optimizer step on the accumulated gradients (with the L2 term
    /// added to every kernel's), then zeroed gradients. Returns the L2
    /// penalty `l2 * sum ||kernel||^2` to add to the loss.
    pub(crate) fn apply_gradients(&mut self, lr: f32) -> Result<f64> {
        let l2 = self.training_mut()?.l2;
        let frozen = self.frozen_flags();
        let Model {
            layers, training, ..
        } = self;
        let mut penalty = 0.0f64;
        let mut pairs: Vec<(&mut [f32], &[f32])> = Vec::new();
        for p in crate::dist::optimized_params(layers, &frozen) {
            if l2 > 0.0 && p.name == "kernel" {
                let (v, g) = (p.value.data(), p.grad.data_mut());
                for (g, w) in g.iter_mut().zip(v) {
                    *g += 2.0 * l2 * w;
                    penalty += (w * w) as f64;
                }
            }
            let Param { value, grad, .. } = p;
            pairs.push((value.data_mut(), grad.data()));
        }
        let training = training.as_mut().expect("checked by training_mut");
        training.optimizer.step(&mut pairs, lr);
        self.zero_grad();
        Ok(l2 as f64 * penalty)
    }

    /// Trains on `train`, Keras-style. Validation comes from `validation`
    /// if given, otherwise from `config.validation_split` (the last samples
    /// of `train`, before shuffling).
    pub fn fit(
        &mut self,
        train: &dyn DataSource,
        validation: Option<&dyn DataSource>,
        config: &FitConfig,
        callbacks: &mut [&mut dyn Callback],
    ) -> Result<History> {
        self.training_mut()?;
        if let Some(opt) = self.optimizer() {
            opt.config.validate()?;
        }
        config.schedule.validate()?;
        let (trainable, fixed) = self.param_counts();
        if trainable == 0 && fixed > 0 {
            return Err(config_err(
                "freeze",
                "every layer with weights is frozen: nothing left to train",
            ));
        }
        if config.batch_size == 0 {
            return Err(config_err("batch_size", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&config.validation_split) {
            return Err(config_err(
                "validation_split",
                format!("must be in [0, 1), found {}", config.validation_split),
            ));
        }
        if train.input_shape() != self.input_shape() {
            return Err(config_err(
                "training data",
                format!(
                    "samples have shape {:?} but the model expects {:?}",
                    train.input_shape(),
                    self.input_shape()
                ),
            ));
        }
        if let Some(avail) = available_memory() {
            self.spec().check_memory(config.batch_size, avail)?;
        }
        let n_all = train.len();
        let n_val = if validation.is_none() {
            (n_all as f64 * config.validation_split as f64).floor() as usize
        } else {
            0
        };
        let n_train = n_all - n_val;
        if n_train == 0 {
            return Err(config_err("training data", "no samples left to train on"));
        }
        let train_view = Subset::new(train, (0..n_train).collect());
        let split_view = Subset::new(train, (n_train..n_all).collect());
        let val: Option<&dyn DataSource> = match validation {
            Some(v) => Some(v),
            None if n_val > 0 => Some(&split_view),
            None => None,
        };
        if let Some(p) = config.precision {
            self.set_precision(p);
        }
        let comm = config.collective.as_ref();
        let plan = ShardPlan::new(config.shards, comm, config.sync_batch_norm)?;
        let sync_bn = config.sync_batch_norm && comm.size() > 1;
        if sync_bn {
            self.set_sync_batch_norm(Some(config.collective.clone()));
        }
        let outcome = self.fit_epochs(&train_view, val, config, callbacks, &plan);
        if sync_bn {
            self.set_sync_batch_norm(None);
        }
        outcome
    }

    /// Batch-norm statistics over the ranks of `ranks` (`None`: per process).
    pub fn set_sync_batch_norm(&mut self, ranks: Option<std::sync::Arc<dyn Collective>>) {
        for l in &mut self.layers {
            l.set_sync(ranks.clone());
        }
    }

    /// The epochs of [`Model::fit`], after its checks.
    fn fit_epochs(
        &mut self,
        train_view: &Subset<'_>,
        val: Option<&dyn DataSource>,
        config: &FitConfig,
        callbacks: &mut [&mut dyn Callback],
        plan: &ShardPlan,
    ) -> Result<History> {
        let comm = config.collective.as_ref();
        let n_train = train_view.len();
        let steps_full = n_train.div_ceil(config.batch_size);
        let steps = config
            .steps_per_epoch
            .map_or(steps_full, |s| s.min(steps_full));
        let base_lr = self.training_mut()?.optimizer.config.learning_rate();

        for cb in callbacks.iter_mut() {
            cb.on_train_begin(self)?;
        }
        let mut history = History::default();
        for epoch in config.initial_epoch..config.epochs {
            let start = Instant::now();
            let scheduled = match &config.lr_fn {
                Some(f) => f(epoch, base_lr),
                None => config.schedule.rate(base_lr, epoch),
            };
            let mut lr = scheduled * self.lr_factor();
            let mut order: Vec<usize> = (0..n_train).collect();
            if config.shuffle {
                order.shuffle(&mut self.rng);
            }
            order.truncate(steps * config.batch_size);
            let seed: u64 = self.rng.gen();
            for cb in callbacks.iter_mut() {
                cb.on_epoch_begin(self, epoch)?;
            }
            let bar = progress_bar(config.verbosity, steps, epoch, config.epochs);
            let (mut sum_loss, mut hits, mut total) = (0.0f64, 0usize, 0usize);
            let mut steps_run = 0usize;
            let chunks: Vec<Vec<usize>> = order
                .chunks(config.batch_size)
                .map(|c| c.to_vec())
                .collect();
            // Batches (this process's shards of them, each augmented from its
            // own seed) are produced on a background thread, two ahead of
            // the training step.
            let outcome: Result<()> = std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel(2);
                let source = train_view;
                scope.spawn(move || {
                    for (i, idx) in chunks.iter().enumerate() {
                        let batch_seed = seed.wrapping_add(i as u64);
                        let shards: Result<Vec<(usize, Batch)>> = (plan.first
                            ..plan.first + plan.count)
                            .map(|s| {
                                let b = source.batch(plan.shard(idx, s), plan.seed(batch_seed, s));
                                b.map(|b| (s, b))
                            })
                            .collect();
                        if tx.send(shards).is_err() {
                            break; // training stopped early
                        }
                    }
                });
                for (bi, shards) in rx.iter().enumerate() {
                    let mut shards = shards?;
                    lr = batch_begin_rate(self, callbacks, comm, (epoch, bi + 1), scheduled)?;
                    let step = if plan.total == 1 {
                        let (_, (x, y)) = shards.pop().expect("one shard");
                        if x.batch() == 0 {
                            None // every image of the batch was unreadable and skipped
                        } else {
                            Some(self.train_step(&x, &y, lr)?)
                        }
                    } else {
                        self.train_step_shards(
                            &shards,
                            plan,
                            comm,
                            seed.wrapping_add(bi as u64),
                            lr,
                        )?
                    };
                    let Some((l, h, t)) = step else { continue };
                    steps_run += 1;
                    if !l.is_finite() {
                        bar.abandon();
                        return Err(NnError::NonFinite {
                            epoch: epoch + 1,
                            batch: bi + 1,
                            value: l,
                        });
                    }
                    sum_loss += l as f64;
                    hits += h;
                    total += t;
                    bar.set_position(bi as u64 + 1);
                    let (mean_loss, mean_acc) = (
                        sum_loss / steps_run as f64,
                        hits as f64 / total.max(1) as f64,
                    );
                    bar.set_message(format!("loss {mean_loss:.4} acc {mean_acc:.4}"));
                    let step = (epoch, bi + 1, steps);
                    if batch_end_stops(callbacks, step, mean_loss as f32, mean_acc as f32) {
                        bar.abandon();
                        return Err(NnError::Stopped {
                            epoch: epoch + 1,
                            batch: bi + 1,
                        });
                    }
                }
                Ok(())
            });
            outcome?;
            bar.finish_and_clear();
            if steps_run == 0 {
                return Err(nothing_read(epoch));
            }
            let (val_loss, val_accuracy) = match val {
                Some(v) => {
                    let e = self.validate(v, 256.max(config.batch_size), plan, comm)?;
                    (Some(e.loss), Some(e.accuracy))
                }
                None => (None, None),
            };
            let logs = EpochLogs {
                epoch: epoch + 1,
                loss: (sum_loss / steps_run as f64) as f32,
                accuracy: hits as f32 / total.max(1) as f32,
                val_loss,
                val_accuracy,
                lr,
                seconds: start.elapsed().as_secs_f32(),
            };
            if config.verbosity != Verbosity::Silent {
                eprintln!("{}", epoch_line(&logs, config.epochs));
            }
            history.epochs.push(logs.clone());
            if epoch_end_stops(self, callbacks, &logs, &history)? {
                break;
            }
        }
        for cb in callbacks.iter_mut() {
            cb.on_train_end(self)?;
        }
        Ok(history)
    }

    /// Mean loss and accuracy over a data source, in inference mode.
    pub fn evaluate(&mut self, data: &dyn DataSource, batch_size: usize) -> Result<Evaluation> {
        if data.is_empty() {
            return Err(config_err("evaluation data", "is empty"));
        }
        let sums = self.evaluation_sums(data, (0..data.len()).collect(), batch_size)?;
        Ok(sums.evaluation())
    }

    /// The validation of a data-parallel epoch: the set is cut into the
    /// plan's shards (contiguous, as a batch is), each rank evaluates its
    /// own, and the sums are added in shard order, so every rank gets the
    /// same figures for 1/N of the work, and one process with N shards the
    /// same bits as N ranks. One shard: [`Model::evaluate`].
    fn validate(
        &mut self,
        data: &dyn DataSource,
        batch_size: usize,
        plan: &ShardPlan,
        comm: &dyn Collective,
    ) -> Result<Evaluation> {
        if plan.total == 1 {
            return self.evaluate(data, batch_size);
        }
        // From +0.0: a part's sums are never -0.0, so `0 + part` is `part`.
        let all: Vec<usize> = (0..data.len()).collect();
        let mut sums = [0f64; 4];
        for s in plan.first..plan.first + plan.count {
            let part = self
                .evaluation_sums(data, plan.shard(&all, s).to_vec(), batch_size)?
                .to_array();
            sums.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        if comm.size() > 1 {
            comm.sum_f64(&mut sums);
        }
        Ok(EvalSums::from_array(sums).evaluation())
    }

    /// The loss sum and hit counts over the samples `idx` of `data`.
    fn evaluation_sums(
        &mut self,
        data: &dyn DataSource,
        idx: Vec<usize>,
        batch_size: usize,
    ) -> Result<EvalSums> {
        let loss = self
            .training
            .as_ref()
            .map(|t| t.loss)
            .ok_or_else(|| config_err("model", "call compile() before evaluate()"))?;
        let mut s = EvalSums::default();
        let batch_size = self.spec().inference_batch(batch_size);
        for batch in data.batches(idx, batch_size, 0) {
            let (x, y) = batch?;
            if x.batch() == 0 {
                continue; // every image of the batch was unreadable and skipped
            }
            self.check_batch(loss, &x, &y)?;
            let z = self.forward(&x, Mode::Eval, false);
            let (l, _, p) = self.loss_and_grad(loss, &z, &y);
            s.loss += l as f64 * x.batch() as f64;
            s.seen += x.batch();
            let (h, t) = count_correct(loss, &p, &y);
            s.hits += h;
            s.total += t;
        }
        Ok(s)
    }
}

/// What an evaluation adds up: the loss times the samples of each batch,
/// the samples, the correct predictions and the predictions counted.
#[derive(Clone, Copy, Debug, Default)]
struct EvalSums {
    loss: f64,
    seen: usize,
    hits: usize,
    total: usize,
}

impl EvalSums {
    fn evaluation(&self) -> Evaluation {
        Evaluation {
            loss: (self.loss / self.seen.max(1) as f64) as f32,
            accuracy: self.hits as f32 / self.total.max(1) as f32,
        }
    }

    /// As `f64`s for a sum over ranks (counts stay exact below 2^53).
    fn to_array(self) -> [f64; 4] {
        [
            self.loss,
            self.seen as f64,
            self.hits as f64,
            self.total as f64,
        ]
    }

    fn from_array(a: [f64; 4]) -> Self {
        EvalSums {
            loss: a[0],
            seen: a[1] as usize,
            hits: a[2] as usize,
            total: a[3] as usize,
        }
    }
}

/// Memory the system can still give this process (Linux `MemAvailable`).
pub fn available_memory() -> Option<u128> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The error of an epoch (0-based) none of whose samples could be read.
fn nothing_read(epoch: usize) -> NnError {
    config_err(
        "training data",
        format!(
            "no sample of epoch {} could be read (every one was skipped)",
            epoch + 1
        ),
    )
}

/// Every callback's `on_batch_begin` for step `(epoch, step)`, which may
/// change the model's rate factor; the step's rate after them (the
/// schedule's value times the factor). Over several ranks, rank 0's factor
/// is every rank's: a callback there (the explorer's rate box, served by
/// rank 0 only) changes the rate of all replicas, which would otherwise
/// apply the same summed gradients at different rates and drift apart.
fn batch_begin_rate(
    model: &mut Model,
    callbacks: &mut [&mut dyn Callback],
    comm: &dyn Collective,
    (epoch, step): (usize, usize),
    scheduled: f32,
) -> Result<f32> {
    let lr = scheduled * model.lr_factor();
    for cb in callbacks.iter_mut() {
        cb.on_batch_begin(model, epoch, step, lr)?;
    }
    if comm.size() > 1 {
        let mut factor = [model.lr_factor()];
        comm.broadcast_f32(&mut factor, 0);
        model.set_lr_factor(factor[0]);
    }
    Ok(scheduled * model.lr_factor())
}

/// Every callback's `on_batch_end` for step `(epoch, step, steps)`; true
/// when one says Stop (all are called first).
fn batch_end_stops(
    callbacks: &mut [&mut dyn Callback],
    (epoch, step, steps): (usize, usize, usize),
    loss: f32,
    accuracy: f32,
) -> bool {
    let mut stop = false;
    for cb in callbacks.iter_mut() {
        stop |= cb.on_batch_end(epoch, step, steps, loss, accuracy) == Control::Stop;
    }
    stop
}

/// Every callback's `on_epoch_end`; true when one says Stop (all are called first).
fn epoch_end_stops(
    model: &mut Model,
    callbacks: &mut [&mut dyn Callback],
    logs: &EpochLogs,
    history: &History,
) -> Result<bool> {
    let mut stop = false;
    for cb in callbacks.iter_mut() {
        stop |= cb.on_epoch_end(model, logs, history)? == Control::Stop;
    }
    Ok(stop)
}

fn progress_bar(v: Verbosity, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if v != Verbosity::ProgressBar {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "Epoch {}/{epochs} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ETA {{eta}}",
            epoch + 1
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn epoch_line(l: &EpochLogs, epochs: usize) -> String {
    let mut s = format!(
        "Epoch {}/{epochs} - {:.1}s - loss: {:.4} - accuracy: {:.4}",
        l.epoch, l.seconds, l.loss, l.accuracy
    );
    if let (Some(vl), Some(va)) = (l.val_loss, l.val_accuracy) {
        s.push_str(&format!(" - val_loss: {vl:.4} - val_accuracy: {va:.4}"));
    }
    s.push_str(&format!(" - lr: {:.3e}", l.lr));
    s
}
