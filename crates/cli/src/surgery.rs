//! `convnet insert-bn`: a trained run with batch norm inserted (computing
//! the same function), written as a new run that `convnet train --resume`
//! fine-tunes; and `convnet finetune`, which prepares its model and hands it
//! to `train`'s pipeline.

use crate::error::{CliError, CliResult};
use clap::Args;
use convnet_nn::InsertAfter;
use convnet_run::folder::{new_run_dir, FinetunePlan, RunConfig, StageTwo};
use std::path::PathBuf;

/// Options of `convnet insert-bn`.
#[derive(Args)]
pub struct InsertBnArgs {
    /// A run folder written by `convnet train`.
    run: PathBuf,
    /// Where: conv (after every Conv2D), conv+dense (hidden Dense layers too), or layer names
    /// separated by commas (as `convnet summary RUN` prints them).
    #[arg(long, default_value = "conv")]
    after: String,
    /// Training batches of 256 images that calibrate the statistics.
    #[arg(long, default_value_t = 20)]
    calibrate: usize,
    /// Folder the new run goes into.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Name of the new run (default: the first free run-NNN).
    #[arg(long)]
    name: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// `convnet insert-bn`.
pub fn insert_bn(a: InsertBnArgs) -> CliResult<()> {
    crate::set_threads(a.threads)?;
    let (mut cfg, mut model) = convnet_run::open(&a.run)?;
    let after = match a.after.as_str() {
        "conv" => InsertAfter::Convs { dense: false },
        "conv+dense" => InsertAfter::Convs { dense: true },
        names => InsertAfter::Names(names.split(',').map(|s| s.trim().to_string()).collect()),
    };
    if a.calibrate == 0 {
        return Err(CliError::usage("--calibrate must be at least 1"));
    }
    let loaded = cfg.load_data()?;
    let n = (a.calibrate * 256).min(loaded.train.len());
    let calibration = loaded.train.take(n).images_tensor()?;
    let mut with_bn = model
        .insert_batch_norm(&after, &calibration, 256)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let added = with_bn.spec().layers.len() - model.spec().layers.len();
    println!(
        "Inserted {added} BatchNormalization layer(s), calibrated on {n} training images \
         (gamma = sqrt(var + eps), beta = mean)"
    );
    if let Some(test) = &loaded.test {
        let (before, _) = convnet_run::predict_images(&mut model, test, None, 256)?;
        let (after, _) = convnet_run::predict_images(&mut with_bn, test, None, 256)?;
        model.compile(cfg.optimizer.clone(), cfg.loss);
        with_bn.compile(cfg.optimizer.clone(), cfg.loss);
        let e0 = convnet_run::evaluate(&mut model, test, 256)?;
        let e1 = convnet_run::evaluate(&mut with_bn, test, 256)?;
        println!(
            "Test outputs: max |difference| {:.2e} over {} images; accuracy {:.2} % before, {:.2} % after",
            before.max_abs_diff(&after),
            test.len(),
            100.0 * e0.accuracy,
            100.0 * e1.accuracy
        );
    }
    let dir = new_run_dir(&a.out, a.name.as_deref())?;
    cfg.model = with_bn.spec().clone();
    cfg.model_arg = format!("insert-bn {} --after {}", a.run.display(), a.after);
    cfg.save(&dir)?;
    with_bn.save(&dir)?;
    println!(
        "New run in {}; fine-tune it with `convnet train --resume {} --epochs N`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Options of `convnet finetune`: the source, the cut and the head, then
/// every option of `convnet train` (data, epochs, augmentation, ...).
#[derive(Args)]
pub struct FinetuneArgs {
    /// The trained run to start from.
    source: PathBuf,
    /// The new head in the notation, e.g. GAP-D0.5-1 (a sigmoid) or F-128-D0.5-10.
    #[arg(long)]
    head: String,
    /// The layer to cut after (default: the last with an image output, before the classifier).
    #[arg(long)]
    cut: Option<String>,
    /// Stage two: after --epochs with the base frozen, unfreeze its top K layers with weights
    /// (batch norms stay frozen, in inference mode, as Keras's fine-tuning guides leave them)
    /// and train on (a fresh optimizer, as Keras recompiles).
    #[arg(long)]
    unfreeze_top: Option<usize>,
    /// Stage two's learning rate (Keras's guide: about a hundredth of stage one's).
    #[arg(long, default_value_t = 1e-5, requires = "unfreeze_top")]
    unfreeze_lr: f32,
    /// Stage two's epochs.
    #[arg(long, default_value_t = 5, requires = "unfreeze_top")]
    unfreeze_epochs: usize,
    #[command(flatten)]
    train: crate::train::TrainArgs,
}

/// `convnet finetune`: stage one of transfer learning (the base frozen, the
/// head trained), then with `--unfreeze-top K` stage two (the top K layers
/// of the base unfrozen at a lower rate), both through `train`'s pipeline.
/// The plan is kept in the run's `run.json`, so `convnet train --resume RUN`
/// (or this command with `--resume RUN`) continues it from any point; stage
/// two is also `convnet train --resume RUN --unfreeze K --lr LR` later.
pub fn finetune(a: FinetuneArgs) -> CliResult<()> {
    if a.train.resumes() {
        return crate::train::resume(a.train).map(|_| ());
    }
    if !(a.unfreeze_lr > 0.0 && a.unfreeze_lr.is_finite()) {
        return Err(CliError::usage(format!(
            "--unfreeze-lr {}: expected a finite learning rate > 0",
            a.unfreeze_lr
        )));
    }
    let base = FinetunePlan {
        source: a.source,
        cut: a.cut,
        head: a.head,
        padding: a.train.padding()?,
        activation: a.train.activation()?,
        stage_two: a.unfreeze_top.map(|k| StageTwo {
            unfreeze_top: k,
            lr: a.unfreeze_lr,
            epochs: a.unfreeze_epochs,
            from_epoch: None,
        }),
    };
    // Check stage two's count against the base before training anything.
    if let Some(k) = a.unfreeze_top {
        // The description suffices; the weights are read once, by stage one.
        let spec = RunConfig::load(&base.source)?.model;
        let cut = match &base.cut {
            Some(c) => spec
                .position(c)
                .map_err(|e| CliError::usage(e.to_string()))?,
            None => spec.position(&spec.default_cut()?)?,
        };
        let with_weights = spec.summary()?.rows[..=cut]
            .iter()
            .filter(|r| r.params > 0)
            .count();
        if k == 0 || k > with_weights {
            return Err(CliError::usage(format!(
                "--unfreeze-top {k}: the base has {with_weights} layers with weights up to the cut"
            )));
        }
    }
    // The model is prepared here (cut, head, frozen base) and handed to
    // the pipeline with its plan.
    crate::set_threads(a.train.threads())?;
    let model = Box::new(convnet_run::prepare::cut_and_head(&base, a.train.seed())?);
    let new = crate::train::NewModel::Prepared { model, plan: base };
    let finished = crate::train::train_from(a.train.clone(), new)?;
    if let Some(next) = crate::train::begin_stage_two(&finished, &a.train)? {
        crate::train::train_from(next, crate::train::NewModel::FromArgs)?;
    }
    Ok(())
}
