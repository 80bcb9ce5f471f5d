//! `convnet train`.

use crate::data_arg;
use crate::error::{CliError, CliResult};
use crate::model_arg::{parse_input_shape, resolve_model, DEFAULT_MNIST_MODEL};
use crate::run::{new_run_dir, FinetunePlan, RunConfig, CHECKPOINTS, HISTORY_FILE, METRICS_FILE};
use clap::Args;
use convnet_data::{AugmentConfig, Augmented, FillMode, LabeledImages, LabeledSource, Targets};
use convnet_nn::save::write_atomic;
use convnet_nn::{
    Callback, Checkpointer, EarlyStopping, FitConfig, History, Loss, Model, NnError,
    OptimizerConfig, Padding, ReduceLrOnPlateau, Schedule, Verbosity,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Unfreezes the last `k` frozen layers that have weights; their names.
fn unfreeze_top(model: &mut Model, k: usize) -> CliResult<Vec<String>> {
    let frozen: Vec<String> = (0..model.layers().len())
        .filter(|&i| model.is_frozen(i) && !model.layers()[i].params().is_empty())
        .map(|i| model.wiring().names[i].clone())
        .collect();
    if k == 0 || k > frozen.len() {
        return Err(CliError::usage(format!(
            "--unfreeze {k}: the run has {} frozen layers with weights",
            frozen.len()
        )));
    }
    let names = frozen[frozen.len() - k..].to_vec();
    for n in &names {
        model.set_trainable(n, true)?;
    }
    Ok(names)
}

/// The number of classes of the data: its class names, else the largest label + 1.
fn class_count(loaded: &data_arg::Loaded) -> Option<usize> {
    if let Some(names) = &loaded.classes {
        return Some(names.len());
    }
    Some(loaded.train.class_count()).filter(|&k| k > 0)
}

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
    /// With --resume: unfreeze the last K frozen layers that have weights and start a fresh
    /// optimizer (with --lr, at that rate): the second stage of fine-tuning.
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
    /// Number of epochs in total [default: 3]; with --resume, a new total for the run.
    #[arg(long)]
    epochs: Option<usize>,
    /// Samples per gradient step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Optimizer: adam, adamw, sgd or rmsprop.
    #[arg(long, default_value = "adam")]
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
    #[arg(long, default_value = "exp:0.95")]
    schedule: String,
    /// Loss: auto (sparse categorical cross-entropy, or binary for one output),
    /// categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy, mse.
    #[arg(long, default_value = "auto")]
    loss: String,
    /// L2 penalty on every kernel (Keras's kernel_regularizer).
    #[arg(long, default_value_t = 0.0)]
    l2: f32,
    /// Fraction of the training samples (taken from the end) held out for validation.
    #[arg(long, default_value_t = 0.1)]
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
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
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

pub fn parse_padding(s: &str) -> CliResult<Padding> {
    match s {
        "same" => Ok(Padding::Same),
        "valid" => Ok(Padding::Valid),
        _ => Err(CliError::usage(format!(
            "--padding '{s}': expected same or valid"
        ))),
    }
}

fn parse_schedule(s: &str) -> CliResult<Schedule> {
    let bad = || {
        CliError::usage(format!(
            "--schedule '{s}': expected constant, exp:DECAY, step:EVERY:FACTOR, cosine or onecycle"
        ))
    };
    let parts: Vec<&str> = s.split(':').collect();
    Ok(match parts.as_slice() {
        ["constant"] => Schedule::Constant,
        ["exp", d] => Schedule::Exponential {
            decay: d.parse().map_err(|_| bad())?,
        },
        ["step", every, factor] => Schedule::Step {
            every: every.parse().map_err(|_| bad())?,
            factor: factor.parse().map_err(|_| bad())?,
        },
        ["cosine"] => Schedule::Cosine {
            epochs: 0,
            min_lr: 0.0,
        },
        ["onecycle"] => Schedule::OneCycle { epochs: 0 },
        _ => return Err(bad()),
    })
    .and_then(|sched: Schedule| {
        sched
            .validate()
            .map_err(|e| CliError::usage(format!("--schedule '{s}': {e}")))?;
        Ok(sched)
    })
}

/// The numeric training flags, checked before anything is read or written:
/// each error names its flag, the value and the range expected.
fn check_flags(a: &TrainArgs) -> CliResult<()> {
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

/// Fills in the run length for schedules that need it.
fn sized_schedule(s: Schedule, epochs: usize) -> Schedule {
    match s {
        Schedule::Cosine { epochs: 0, min_lr } => Schedule::Cosine { epochs, min_lr },
        Schedule::OneCycle { epochs: 0 } => Schedule::OneCycle { epochs },
        other => other,
    }
}

fn parse_loss(s: &str, outputs: usize) -> CliResult<Loss> {
    if s == "auto" {
        return Ok(if outputs == 1 {
            Loss::BinaryCrossentropy
        } else {
            Loss::SparseCategoricalCrossentropy
        });
    }
    Loss::from_name(s).ok_or_else(|| {
        CliError::usage(format!(
            "--loss '{s}': expected auto, categorical_crossentropy, sparse_categorical_crossentropy, \
             binary_crossentropy or mse"
        ))
    })
}

/// `split` as a training source whose targets have the form `loss`
/// expects for a model with `outputs` outputs; an error names a label the
/// model cannot output. Nothing is copied: batches are converted on demand.
pub fn dataset(split: &LabeledImages, loss: Loss, outputs: usize) -> CliResult<LabeledSource> {
    let t = if outputs == 1 {
        Targets::Binary
    } else if loss.is_sparse() {
        // Sparse targets still must name one of the outputs.
        LabeledSource::new(split.clone(), Targets::OneHot(outputs))?;
        Targets::Sparse
    } else {
        Targets::OneHot(outputs)
    };
    Ok(LabeledSource::new(split.clone(), t)?)
}

pub fn outputs_of(model: &Model) -> usize {
    model.output_shape().iter().product()
}

/// `convnet train`: a new run, or with `--resume` the continuation of one
/// (a finetune's second stage included).
pub fn train(a: TrainArgs) -> CliResult<()> {
    if a.resume.is_some() {
        resume(a).map(|_| ())
    } else {
        train_from(a, None).map(|_| ())
    }
}

/// What a finished `train_from` leaves: the run folder and its epoch count.
pub struct Trained {
    /// The run folder.
    pub dir: PathBuf,
    /// Epochs done, in all (fewer than asked when early stopping ended the run).
    pub epochs_done: usize,
}

/// `train --resume RUN`, the one command that continues any run from its
/// newest state, wherever it stopped: a finetune whose first stage is over
/// goes on into its second (see [`FinetunePlan`]).
pub fn resume(a: TrainArgs) -> CliResult<Trained> {
    let mut trained = train_from(a.clone(), None)?;
    if let Some(next) = begin_stage_two(&trained, &a)? {
        trained = train_from(next, None)?;
    }
    Ok(trained)
}

/// After a finetune's first stage: records in `run.json` that stage two
/// begins at this epoch count (so that a resume from here on unfreezes once,
/// exactly when its newest checkpoint is at this count) and returns the
/// arguments that run it. `None` for runs without a stage two or with one
/// under way.
pub fn begin_stage_two(trained: &Trained, a: &TrainArgs) -> CliResult<Option<TrainArgs>> {
    let world = crate::dist::world();
    let mut cfg = RunConfig::load(&trained.dir)?;
    let Some(s) = cfg.finetune.as_mut().and_then(|p| p.stage_two.as_mut()) else {
        return Ok(None);
    };
    if s.from_epoch.is_some() {
        return Ok(None);
    }
    s.from_epoch = Some(trained.epochs_done);
    let (k, lr) = (s.unfreeze_top, s.lr);
    cfg.epochs = trained.epochs_done + s.epochs;
    cfg.schedule = sized_schedule(cfg.schedule.clone(), cfg.epochs);
    if world.rank() == 0 {
        println!("Stage two: unfreezing the top {k} layers of the base at lr {lr}");
        cfg.save(&trained.dir)?;
    }
    // Every rank reads the updated run.json.
    world.barrier();
    let mut next = a.clone();
    next.resume = Some(trained.dir.clone());
    next.epochs = None;
    next.lr = None;
    next.unfreeze = None;
    // The thread pool was set up by stage one.
    next.threads = None;
    Ok(Some(next))
}

impl TrainArgs {
    /// Whether the options continue a run (`--resume`).
    pub fn resumes(&self) -> bool {
        self.resume.is_some()
    }

    /// `--padding`.
    pub fn padding(&self) -> CliResult<Padding> {
        parse_padding(&self.padding)
    }
}

/// The start of a finetune that stopped before its first checkpoint, rebuilt
/// from its source exactly as the first command built it (same cut, head,
/// seed and frozen layers); refused if the source run has changed since.
fn finetune_start(plan: &FinetunePlan, cfg: &RunConfig, run: &Path) -> CliResult<Model> {
    let mut model = crate::surgery::cut_and_head(plan, cfg.seed)?;
    model.set_trainable_flags(cfg.model.layers.iter().map(|n| n.trainable));
    if model.spec() != &cfg.model {
        return Err(CliError::usage(format!(
            "{}: the run stopped before its first checkpoint and its start cannot be rebuilt: \
             the source run {} no longer gives the model in run.json",
            run.display(),
            plan.source.display()
        )));
    }
    Ok(model)
}

/// `convnet train`, or `convnet finetune` when `base` is given: the one
/// training pipeline. Returns the run folder and its epoch count.
pub fn train_from(a: TrainArgs, base: Option<FinetunePlan>) -> CliResult<Trained> {
    crate::set_threads(a.threads)?;
    check_flags(&a)?;
    let world = crate::dist::world();
    // Rank 0 writes the run folder and prints; the other ranks only train.
    let root = world.rank() == 0;
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
    let verbosity = if !root {
        Verbosity::Silent
    } else if a.quiet {
        Verbosity::EpochLines
    } else {
        Verbosity::ProgressBar
    };
    let (run_dir, cfg, mut model, done, previous, loaded) = match &a.resume {
        Some(run) => {
            let mut cfg = RunConfig::load(run)?;
            if let Some(e) = a.epochs {
                cfg.epochs = e;
                cfg.schedule = sized_schedule(cfg.schedule.clone(), e);
                if root {
                    cfg.save(run)?;
                }
            }
            let ckpt = run.join(CHECKPOINTS);
            let (mut model, done, history) = if ckpt.join(convnet_nn::checkpoint::LATEST).exists() {
                let (model, state) = Model::load_checkpoint(&ckpt)?;
                (model, state.epochs_done, state.history)
            } else if let Some(plan) = &cfg.finetune {
                // A finetune stopped before its first checkpoint was written.
                let mut model = finetune_start(plan, &cfg, run)?;
                model.compile(cfg.optimizer.clone(), cfg.loss);
                (model, 0, History::default())
            } else if run.join(convnet_nn::save::WEIGHTS_FILE).exists() {
                // A run that starts from given weights (`convnet insert-bn`).
                let mut model = Model::load(run)?;
                model.compile(cfg.optimizer.clone(), cfg.loss);
                (model, 0, History::default())
            } else {
                // Stopped before the first checkpoint: start over, same seed.
                let mut model = cfg.model.build(cfg.seed)?;
                model.compile(cfg.optimizer.clone(), cfg.loss);
                (model, 0, History::default())
            };
            // A finetune's stage two unfreezes when its first epoch is next.
            let (mut unfreeze, mut lr) = (a.unfreeze, a.lr);
            if let Some(s) = cfg.finetune.as_ref().and_then(|p| p.stage_two.as_ref()) {
                if s.from_epoch == Some(done) && unfreeze.is_none() {
                    (unfreeze, lr) = (Some(s.unfreeze_top), Some(s.lr));
                }
            }
            if let (Some(lr), None) = (lr, unfreeze) {
                // A new base rate for the rest of the run (a step down, say);
                // the optimizer keeps its state.
                cfg.optimizer = cfg.optimizer.clone().with_learning_rate(lr);
                if let Some(opt) = model.optimizer_mut() {
                    opt.config = opt.config.clone().with_learning_rate(lr);
                }
                if root {
                    cfg.save(run)?;
                    eprintln!("Base learning rate set to {lr}");
                }
            }
            if let Some(k) = unfreeze {
                let names = unfreeze_top(&mut model, k)?;
                if let Some(lr) = lr {
                    cfg.optimizer = cfg.optimizer.clone().with_learning_rate(lr);
                }
                // As in Keras: a changed set of trainable weights needs a fresh optimizer.
                model.compile(cfg.optimizer.clone(), cfg.loss);
                cfg.model = model.spec().clone();
                if root {
                    cfg.save(run)?;
                    eprintln!("Unfroze {}", names.join(", "));
                }
            }
            if root {
                eprintln!(
                    "Resuming {} after epoch {done} of {}",
                    run.display(),
                    cfg.epochs
                );
            }
            let loaded = cfg.load_data()?;
            (run.clone(), cfg, model, done, history, loaded)
        }
        None => {
            let padding = parse_padding(&a.padding)?;
            let is_folder = a.data.starts_with("folder");
            let folder = data_arg::FolderSettings {
                cache_mib: a.cache_mib,
                on_bad_image: convnet_data::OnError::from_name(&a.on_bad_image).ok_or_else(
                    || {
                        CliError::usage(format!(
                            "--on-bad-image '{}': expected skip or fail",
                            a.on_bad_image
                        ))
                    },
                )?,
            };
            let input_arg = match (&a.input, is_folder) {
                (Some(s), _) => Some(parse_input_shape(s)?),
                (None, true) => Some(vec![128, 128, 3]),
                (None, false) => None,
            };
            let loaded = data_arg::load(
                &a.data,
                a.data_dir.as_deref(),
                input_arg.as_deref(),
                a.seed,
                &folder,
            )?;
            let input = loaded.train.image_shape().to_vec();
            let classes = a.classes.or_else(|| class_count(&loaded));
            let (mut seq, prepared, model_arg) = match &base {
                None => (
                    resolve_model(&a.model, &input, padding, classes)?,
                    None,
                    a.model.clone(),
                ),
                Some(b) => {
                    let m = crate::surgery::cut_and_head(b, a.seed)?;
                    let arg = format!("finetune {} --head {}", b.source.display(), b.head);
                    (m.spec().clone(), Some(m), arg)
                }
            };
            if let Some(f) = &a.freeze {
                crate::surgery::apply_freeze(&mut seq, f)?;
            }
            if a.bn_keras_moving_average {
                for node in &mut seq.layers {
                    if let convnet_nn::LayerSpec::BatchNormalization(b) = &mut node.layer {
                        b.keras_moving_average = true;
                    }
                }
            }
            if let Some(m) = a.bn_momentum {
                if base.is_some() {
                    return Err(CliError::usage(
                        "--bn-momentum applies to a model trained from scratch, not to finetune's base",
                    ));
                }
                let mut n = 0;
                for node in &mut seq.layers {
                    if let convnet_nn::LayerSpec::BatchNormalization(b) = &mut node.layer {
                        b.momentum = m;
                        n += 1;
                    }
                }
                if n == 0 {
                    return Err(CliError::usage(
                        "--bn-momentum: the model has no BatchNormalization layer",
                    ));
                }
            }
            if seq.input_shape != input {
                return Err(CliError::usage(format!(
                    "the model expects inputs {:?} but the data has {:?} (set --input to match)",
                    seq.input_shape, input
                )));
            }
            let outputs: usize = seq.output_shape()?.iter().product();
            // Fail on labels the model cannot output before anything is written.
            dataset(&loaded.train, Loss::SparseCategoricalCrossentropy, outputs)?;
            let loss = parse_loss(&a.loss, outputs)?;
            let mut optimizer = OptimizerConfig::from_name(&a.optimizer).ok_or_else(|| {
                CliError::usage(format!(
                    "--optimizer '{}': expected adam, adamw, sgd or rmsprop",
                    a.optimizer
                ))
            })?;
            if let Some(lr) = a.lr {
                optimizer = optimizer.with_learning_rate(lr);
            }
            optimizer = optimizer
                .with_momentum(a.momentum)
                .with_nesterov(a.nesterov);
            let epochs = a.epochs.unwrap_or(3);
            let cfg = RunConfig {
                model_arg,
                model: seq.clone(),
                data: a.data.clone(),
                data_dir: a.data_dir.clone(),
                limit: a.limit,
                epochs,
                batch_size: a.batch_size,
                optimizer: optimizer.clone(),
                schedule: sized_schedule(parse_schedule(&a.schedule)?, epochs),
                loss,
                l2: a.l2,
                validation_split: a.validation_split,
                early_stopping: a.early_stopping,
                reduce_lr_on_plateau: a.reduce_lr_on_plateau,
                augment: parse_augment(&a)?,
                classes: match &a.class_names {
                    Some(names) => Some(data_arg::class_names(names, outputs)?),
                    None => loaded.classes.clone(),
                },
                seed: a.seed,
                folder,
                finetune: base.clone(),
            };
            if let Some(avail) = convnet_nn::available_memory() {
                seq.check_memory(a.batch_size, avail)?;
            }
            let mut model = match prepared {
                // The base's weights with the head's; --freeze may have changed the flags.
                Some(mut m) => {
                    m.set_trainable_flags(seq.layers.iter().map(|n| n.trainable));
                    m
                }
                None => seq.build(a.seed)?,
            };
            model.compile(optimizer, loss);
            let dir = crate::dist::agree_on_path(|| {
                let dir = new_run_dir(&a.out, a.name.as_deref())?;
                println!("{}", seq.summary()?);
                cfg.save(&dir)?;
                Ok(dir)
            })?;
            if base.is_some() && root {
                // The start as checkpoint 0, so that a run stopped before its
                // first epoch resumes from it (RNG position included) rather
                // than from scratch; run.json alone rebuilds it from the source.
                model.save_checkpoint(&dir.join(CHECKPOINTS), 0, &History::default())?;
            }
            (dir, cfg, model, 0, History::default(), loaded)
        }
    };
    model.set_l2(cfg.l2)?;
    let all = match cfg.limit {
        Some(n) => loaded.train.take(n),
        None => loaded.train.clone(),
    };
    // Validation: the last fraction of the training samples, never augmented.
    let n_val = (all.len() as f64 * cfg.validation_split as f64).floor() as usize;
    let n_train = all.len() - n_val;
    if n_train == 0 {
        return Err(CliError::usage(
            "no training samples left after the validation split",
        ));
    }
    let outputs = outputs_of(&model);
    let train_data = dataset(&all.range(0, n_train), cfg.loss, outputs)?;
    let val_data = if n_val > 0 {
        Some(dataset(&all.range(n_train, all.len()), cfg.loss, outputs)?)
    } else {
        None
    };
    let augmented = Augmented::new(train_data, cfg.augment.clone())?;
    let fit_cfg = FitConfig::new()
        .with_epochs(cfg.epochs)
        .with_initial_epoch(done)
        .with_batch_size(cfg.batch_size)
        .with_schedule(cfg.schedule.clone())
        .with_verbosity(verbosity)
        .with_shards(a.shards)
        .with_sync_batch_norm(a.sync_bn)
        .with_collective(world.clone());
    if world.size() > 1 && root {
        eprintln!(
            "Data-parallel over {} ranks: batches of {} split into shards of about {}, batch-norm statistics {}",
            world.size(),
            cfg.batch_size,
            cfg.batch_size.div_ceil(world.size()),
            if a.sync_bn { "over all ranks" } else { "per rank" }
        );
    }
    let monitor = if n_val > 0 { "val_loss" } else { "loss" };
    let mut checkpointer =
        Checkpointer::new(run_dir.join(CHECKPOINTS)).with_previous(previous.clone());
    let mut early = cfg
        .early_stopping
        .map(|p| EarlyStopping::new(monitor, p).with_restore_best_weights(true));
    let mut plateau = cfg
        .reduce_lr_on_plateau
        .map(|p| ReduceLrOnPlateau::new(monitor).with_patience(p));
    let mut callbacks: Vec<&mut dyn Callback> = Vec::new();
    if root {
        callbacks.push(&mut checkpointer);
    }
    if let Some(e) = early.as_mut() {
        callbacks.push(e);
    }
    if let Some(p) = plateau.as_mut() {
        callbacks.push(p);
    }
    let mut live_cb = None;
    let mut server = None;
    if a.serve && root {
        let live = std::sync::Arc::new(crate::serve::Live::default());
        let explorer = crate::serve::Explorer::open(&run_dir, Some(live.clone()))?;
        let (srv, addr) = crate::serve::bind(&a.serve_host, a.serve_port)?;
        println!("Serving the explorer at http://{addr}/ while training");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let explorer = std::sync::Arc::new(explorer);
        std::thread::spawn(move || crate::serve::run_server(srv, explorer));
        live_cb = Some(crate::serve::LiveCallback(live.clone()));
        server = Some((live, addr));
    }
    if let Some(cb) = live_cb.as_mut() {
        callbacks.push(cb);
    }
    let start = Instant::now();
    let val_ref = val_data.as_ref().map(|v| v as &dyn convnet_nn::DataSource);
    crate::alloc::purge_immediately_if_large(model.spec().training_bytes(fit_cfg.batch_size)?);
    let history = model.fit(&augmented, val_ref, &fit_cfg, &mut callbacks)?;
    let train_secs = start.elapsed().as_secs_f32();
    let trained = Trained {
        dir: run_dir.clone(),
        epochs_done: done + history.epochs.len(),
    };
    if !root {
        // Until rank 0 has written the run (finetune's second stage reads it).
        world.barrier();
        return Ok(trained);
    }
    let mut all_history = previous;
    all_history.epochs.extend(history.epochs);
    model.save(&run_dir)?;
    write_atomic(&run_dir.join(HISTORY_FILE), all_history.to_csv().as_bytes())?;
    println!(
        "Trained {} epoch(s) in {:.1}s; run saved in {}",
        all_history.epochs.len().saturating_sub(done),
        train_secs,
        run_dir.display()
    );
    let val_split = all.range(n_train, all.len());
    let (result_line, eval): (String, Option<(&LabeledImages, &str)>) = match &loaded.test {
        Some(test) => (
            report_test(&mut model, test, cfg.loss, &run_dir)?,
            Some((test, "test")),
        ),
        None => {
            let line = match all_history.epochs.last() {
                Some(last) => match (last.val_loss, last.val_accuracy) {
                    (Some(vl), Some(va)) => format!(
                        "Validation accuracy: {va:.4} ({:.2} %), validation loss {vl:.4}, on {n_val} held-out samples (the data has no test split)",
                        va * 100.0
                    ),
                    _ => format!("Final training accuracy: {:.4} (no test split, no validation)", last.accuracy),
                },
                None => "No epochs were trained".to_string(),
            };
            println!("{line}");
            (line, (n_val > 0).then_some((&val_split, "validation")))
        }
    };
    crate::pictures::write_run_pictures(
        &run_dir,
        &mut model,
        &cfg,
        &all_history,
        eval,
        &result_line,
    )?;
    println!("Pictures and report.html written to {}", run_dir.display());
    let skipped = loaded.train.skipped();
    if skipped > 0 {
        println!("Skipped {skipped} unreadable image(s) (warnings above name them)");
    }
    if let Some(line) = crate::alloc::peak_rss_line() {
        println!("{line}");
    }
    world.barrier();
    if let Some((live, addr)) = server {
        live.finish();
        println!("Training done; the explorer stays at http://{addr}/ (Ctrl-C stops)");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        loop {
            std::thread::park();
        }
    }
    Ok(trained)
}

fn report_test(
    model: &mut Model,
    test: &LabeledImages,
    loss: Loss,
    run_dir: &Path,
) -> CliResult<String> {
    let outputs = outputs_of(model);
    let data = dataset(test, loss, outputs)?;
    let e = model.evaluate(&data, 256)?;
    let line = format!(
        "Test accuracy: {:.4} ({:.2} %), test loss {:.4}, on {} images",
        e.accuracy,
        e.accuracy * 100.0,
        e.loss,
        test.len()
    );
    println!("{line}");
    let json = format!(
        "{{\n  \"test_loss\": {},\n  \"test_accuracy\": {},\n  \"test_samples\": {}\n}}\n",
        e.loss,
        e.accuracy,
        test.len()
    );
    write_atomic(&run_dir.join(METRICS_FILE), json.as_bytes())?;
    Ok(line)
}
