//! `convnet train` (and the training half of `convnet finetune`): its
//! options; then a run made ready, new ([`new_run`]) or resumed
//! ([`resume`]), and trained through the run pipeline ([`fit`]).

mod fit;
mod new_run;
mod resume;

use crate::error::{CliError, CliResult};
use crate::model_arg::DEFAULT_MNIST_MODEL;
use clap::Args;
use convnet_data::{AugmentConfig, FillMode};
use convnet_nn::{Model, NnError, Padding, Precision, Verbosity};
use convnet_run::folder::{FinetunePlan, RunConfig};
use convnet_run::settings::{self, parse_padding, parse_schedule};
use convnet_run::{Loaded, Start};
use std::path::PathBuf;

pub use resume::{begin_stage_two, resume};

/// Options of `convnet train`.
#[derive(Args, Clone)]
pub struct TrainArgs {
    /// Model: a built-in net (resnet20, vgg11-bn, googlenet, ...), a notation such as
    /// 32C5-P2-64C5-P2-128-D0.4-10, or a .json/.toml model file.
    #[arg(long, short, default_value = DEFAULT_MNIST_MODEL)]
    model: String,
    /// Output classes of a built-in net [default: the data's classes].
    #[arg(long)]
    classes: Option<usize>,
    /// Class names in label order, shown by predict, evaluate, explain and the report: names
    /// separated by commas, or a text file with one per line [default: the data's own
    /// (Fashion-MNIST's, CIFAR-10's, a folder's sub-folder names), else the label numbers].
    #[arg(long, conflicts_with = "resume")]
    class_names: Option<String>,
    /// Freeze layers (their weights do not change; a frozen BatchNormalization uses its moving
    /// statistics): N freezes the first N layers, until:NAME every layer up to NAME.
    #[arg(long)]
    freeze: Option<String>,
    /// Momentum of every BatchNormalization's moving statistics, Keras's convention (the weight
    /// of the old value) [default: each layer's own, Keras's 0.99]. Short runs on small data
    /// want less, e.g. 0.9 (PyTorch's default), so that the statistics catch up.
    #[arg(long, conflicts_with = "resume")]
    bn_momentum: Option<f32>,
    /// Keras's exact moving statistics in every BatchNormalization (a plain exponential average
    /// from mean 0 and variance 1), instead of the default bias-corrected average, which is
    /// right from the first batch on (a short run with Keras's evaluates near chance).
    #[arg(long, conflicts_with = "resume")]
    bn_keras_moving_average: bool,
    /// With --resume: unfreeze the last K frozen layers that have weights (batch norms stay
    /// frozen) and start a fresh optimizer (with --lr, at that rate): the second stage of
    /// fine-tuning.
    #[arg(long, requires = "resume")]
    unfreeze: Option<usize>,
    /// Data: mnist (bundled), fashion-mnist (IDX files in --data-dir, default
    /// data/fashion-mnist), idx:DIR (four MNIST-format IDX files), cifar10:DIR (the binary
    /// batches), csv:FILE (Kaggle label,pixel0,...) or folder:DIR (one sub-folder of images
    /// per class, resized to --input, read lazily in bounded memory).
    #[arg(long, default_value = "mnist")]
    data: String,
    /// With folder:DIR: MiB of decoded images kept in memory between epochs (0: decode
    /// every epoch); the rest is decoded as batches need it.
    #[arg(long, default_value_t = convnet_data::folder::DEFAULT_CACHE_BYTES >> 20)]
    cache_mib: usize,
    /// With folder:DIR: what to do with an image that cannot be read: skip (warn once,
    /// count it) or fail (stop with an error naming the file).
    #[arg(long, default_value = "skip")]
    on_bad_image: String,
    /// Folder of the data files, for sources that need one.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Train on the first N training samples only.
    #[arg(long)]
    limit: Option<usize>,
    /// Input size HxWxC: the size images of a folder are resized to (default 128x128x3 for folders).
    #[arg(long)]
    input: Option<String>,
    /// Default padding of conv layers in the notation: same or valid.
    #[arg(long, default_value = "same")]
    padding: String,
    /// Activation of the notation's conv and hidden dense layers: relu, relu6, swish, tanh, ...
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Number of epochs in total [default: 3, `settings::EPOCHS`]; with --resume, a new total for the run.
    #[arg(long)]
    epochs: Option<usize>,
    /// Samples per gradient step.
    #[arg(long, default_value_t = settings::BATCH_SIZE)]
    batch_size: usize,
    /// Optimizer: adam, adamw, sgd or rmsprop.
    #[arg(long, default_value = settings::OPTIMIZER)]
    optimizer: String,
    /// Learning rate (default: the optimizer's Keras default); with --resume, a new base rate
    /// for the rest of the run (the optimizer keeps its state).
    #[arg(long)]
    lr: Option<f32>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// SGD Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Learning-rate schedule: constant, exp:DECAY (lr * DECAY^epoch), step:EVERY:FACTOR, cosine, onecycle.
    #[arg(long, default_value = settings::SCHEDULE)]
    schedule: String,
    /// Loss: auto (sparse categorical cross-entropy, or binary for one output),
    /// categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy, mse.
    #[arg(long, default_value = settings::LOSS)]
    loss: String,
    /// L2 penalty on every kernel (Keras's kernel_regularizer).
    #[arg(long, default_value_t = 0.0)]
    l2: f32,
    /// Fraction of the training samples (taken from the end) held out for validation.
    #[arg(long, default_value_t = settings::VALIDATION_SPLIT)]
    validation_split: f32,
    /// Stop when val_loss has not improved for this many epochs (restores the best weights).
    #[arg(long)]
    early_stopping: Option<usize>,
    /// Divide the learning rate by 10 when val_loss has not improved for this many epochs.
    #[arg(long)]
    reduce_lr_on_plateau: Option<usize>,
    /// Serve the explorer (`convnet serve`) during training: curves per batch and epoch,
    /// predictions with the newest checkpoint; it stays up after training until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// Port of --serve (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080, requires = "serve")]
    serve_port: u16,
    /// Address of --serve; the default serves this machine only.
    #[arg(long, default_value = "127.0.0.1", requires = "serve")]
    serve_host: String,
    /// Random seed: same seed, same result.
    #[arg(long, default_value_t = settings::SEED)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// fp32, or bf16 (Keras's mixed_bfloat16): convolutions take bf16 operands with fp32 sums
    /// (weights, optimizer, batch-norm statistics and loss stay fp32), on AVX512-BF16 (elsewhere
    /// a notice and fp32); kept in run.json [default: fp32; with --resume, the run's]
    #[arg(long)]
    precision: Option<String>,
    /// Folder for runs.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Run name (default: the first free run-NNN).
    #[arg(long)]
    name: Option<String>,
    /// Augmentation: maximum rotation in degrees.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Augmentation (Keras ImageDataGenerator)"
    )]
    rotation: f32,
    /// Augmentation: horizontal shift, fraction of the width (< 1) or pixels.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Augmentation (Keras ImageDataGenerator)"
    )]
    width_shift: f32,
    /// Augmentation: vertical shift, fraction of the height (< 1) or pixels.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Augmentation (Keras ImageDataGenerator)"
    )]
    height_shift: f32,
    /// Augmentation: maximum shear in degrees.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Augmentation (Keras ImageDataGenerator)"
    )]
    shear: f32,
    /// Augmentation: zoom factors from [1 - Z, 1 + Z].
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Augmentation (Keras ImageDataGenerator)"
    )]
    zoom: f32,
    /// Augmentation: random left-right flips.
    #[arg(long, help_heading = "Augmentation (Keras ImageDataGenerator)")]
    horizontal_flip: bool,
    /// Augmentation: random top-bottom flips.
    #[arg(long, help_heading = "Augmentation (Keras ImageDataGenerator)")]
    vertical_flip: bool,
    /// Augmentation: brightness factor range LO,HI (e.g. 0.8,1.2).
    #[arg(long, help_heading = "Augmentation (Keras ImageDataGenerator)")]
    brightness: Option<String>,
    /// Augmentation: fill mode for pixels from outside: nearest, constant, reflect or wrap.
    #[arg(
        long,
        default_value = "nearest",
        help_heading = "Augmentation (Keras ImageDataGenerator)"
    )]
    fill_mode: String,
    /// Augmentation: the value for --fill-mode constant.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Augmentation (Keras ImageDataGenerator)"
    )]
    cval: f32,
    /// Continue the run in this folder from its newest checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// No progress bars; one line per epoch.
    #[arg(long, short)]
    quiet: bool,
    /// Split every batch into N shards computed one after another, their
    /// gradients summed in order: bit for bit what `mpirun -np N convnet train`
    /// computes (batch-norm statistics per shard). Under mpirun, each rank is one shard.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Under mpirun: batch-norm statistics over the whole batch of all ranks
    /// (PyTorch's SyncBatchNorm) instead of per rank (DistributedDataParallel's default).
    #[arg(long)]
    sync_bn: bool,
}

impl TrainArgs {
    /// Whether the options continue a run (`--resume`).
    pub fn resumes(&self) -> bool {
        self.resume.is_some()
    }

    /// `--threads`.
    pub fn threads(&self) -> Option<usize> {
        self.threads
    }

    /// `--precision` as asked (`None`: not given).
    pub fn precision(&self) -> CliResult<Option<Precision>> {
        self.precision
            .as_deref()
            .map(|name| {
                Precision::from_name(name).ok_or_else(|| {
                    CliError::usage(format!(
                        "--precision '{name}': expected fp32 or bf16 (mixed_bfloat16)"
                    ))
                })
            })
            .transpose()
    }

    /// `--seed`.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `--padding`.
    pub fn padding(&self) -> CliResult<Padding> {
        Ok(parse_padding(&self.padding)?)
    }

    /// `--activation`.
    pub fn activation(&self) -> CliResult<convnet_nn::Activation> {
        Ok(settings::parse_activation(&self.activation)?)
    }

    /// How the notation reads `--model` and `--head`: `--padding`, `--activation`.
    pub fn notation(&self) -> CliResult<convnet_nn::NotationOptions> {
        Ok(convnet_nn::NotationOptions::default()
            .with_padding(self.padding()?)
            .with_activation(self.activation()?))
    }

    /// Where the output goes: progress bars, epoch lines, or nothing (MPI
    /// ranks other than 0).
    fn verbosity(&self, root: bool) -> Verbosity {
        if !root {
            Verbosity::Silent
        } else if self.quiet {
            Verbosity::EpochLines
        } else {
            Verbosity::ProgressBar
        }
    }
}

/// The numeric training flags, checked before anything is read or written:
/// each error names its flag, the value and the range expected.
fn check_flags(a: &TrainArgs) -> CliResult<()> {
    a.precision()?;
    let expect = |flag: &str, v: f32, ok: bool, range: &str| {
        if ok && v.is_finite() {
            Ok(())
        } else {
            Err(CliError::usage(format!("{flag} {v}: expected {range}")))
        }
    };
    if let Some(lr) = a.lr {
        expect("--lr", lr, lr > 0.0, "a finite learning rate > 0")?;
    }
    expect(
        "--momentum",
        a.momentum,
        (0.0..1.0).contains(&a.momentum),
        "a value in [0, 1)",
    )?;
    expect("--l2", a.l2, a.l2 >= 0.0, "a finite value >= 0")?;
    expect(
        "--validation-split",
        a.validation_split,
        (0.0..1.0).contains(&a.validation_split),
        "a fraction in [0, 1)",
    )?;
    if let Some(m) = a.bn_momentum {
        expect(
            "--bn-momentum",
            m,
            (0.0..1.0).contains(&m),
            "a value in [0, 1) (the weight of the old moving statistics)",
        )?;
    }
    if a.batch_size == 0 {
        return Err(CliError::usage("--batch-size 0: expected at least 1"));
    }
    parse_schedule(&a.schedule)?;
    Ok(())
}

fn parse_augment(a: &TrainArgs) -> CliResult<AugmentConfig> {
    let fill = FillMode::from_name(&a.fill_mode).ok_or_else(|| {
        CliError::usage(format!(
            "--fill-mode '{}': expected nearest, constant, reflect or wrap",
            a.fill_mode
        ))
    })?;
    let mut cfg = AugmentConfig::new()
        .with_rotation(a.rotation)
        .with_shift(a.width_shift, a.height_shift)
        .with_shear(a.shear)
        .with_zoom(a.zoom)
        .with_flips(a.horizontal_flip, a.vertical_flip)
        .with_fill(fill, a.cval);
    if let Some(b) = &a.brightness {
        let parts: Vec<f32> = b.split(',').filter_map(|v| v.trim().parse().ok()).collect();
        if parts.len() != 2 {
            return Err(CliError::usage(format!(
                "--brightness '{b}': expected LO,HI, e.g. 0.8,1.2"
            )));
        }
        cfg = cfg.with_brightness(parts[0], parts[1]);
    }
    cfg.validate().map_err(|e| CliError::usage(e.to_string()))?;
    Ok(cfg)
}

/// `convnet train`: a new run, or with `--resume` the continuation of one
/// (a finetune's second stage included).
pub fn train(a: TrainArgs) -> CliResult<()> {
    if a.resume.is_some() {
        resume(a).map(|_| ())
    } else {
        train_from(a, NewModel::FromArgs).map(|_| ())
    }
}

/// What a finished `train_from` leaves: the run folder and its epoch count.
pub struct Finished {
    /// The run folder.
    pub dir: PathBuf,
    /// Epochs done, in all (fewer than asked when early stopping ended the run).
    pub epochs_done: usize,
}

/// The model of a new run: from `--model`, or prepared by the caller (a
/// finetune's cut base with its new head) together with its plan.
pub enum NewModel {
    /// `--model` (ignored with `--resume`).
    FromArgs,
    /// A model with weights, made by `convnet finetune`.
    Prepared {
        /// The model: base (frozen) and head.
        model: Box<Model>,
        /// How it was made, kept in `run.json`.
        plan: FinetunePlan,
    },
}

/// A run ready to train: its folder, its settings, where it starts and its data.
struct Ready {
    dir: PathBuf,
    cfg: RunConfig,
    start: Start,
    loaded: Loaded,
}

/// `convnet train` and `convnet finetune`: prepares the run (new, or
/// resumed with `--resume`) and trains it through the run pipeline.
pub fn train_from(a: TrainArgs, new: NewModel) -> CliResult<Finished> {
    crate::set_threads(a.threads)?;
    check_flags(&a)?;
    let world = crate::dist::world();
    // Refused before the run folder is written; `fit` checks the same.
    convnet_nn::dist::check_split(a.shards, world.size(), a.sync_bn).map_err(|e| match e {
        NnError::Config { what, msg } => {
            let flag = if what == "sync_batch_norm" {
                "--sync-bn"
            } else {
                "--shards"
            };
            CliError::usage(format!("{flag} {msg}"))
        }
        e => e.into(),
    })?;
    let ready = match &a.resume {
        Some(run) => resume::ready_to_resume(&a, run)?,
        None => new_run::ready_new(&a, new)?,
    };
    fit::train_ready(&a, ready)
}
