//! `convnet train --resume RUN`: a run continued from its newest state,
//! wherever it stopped, a finetune's second stage included.

use super::{Finished, NewModel, Ready, TrainArgs};
use crate::error::{CliError, CliResult};
use convnet_nn::{Model, Role};
use convnet_run::folder::{FinetunePlan, RunConfig};
use convnet_run::settings::sized_schedule;
use convnet_run::Start;
use std::path::Path;

/// `train --resume RUN`, the one command that continues any run from its
/// newest state, wherever it stopped: a finetune whose first stage is over
/// goes on into its second (see [`FinetunePlan`]).
pub fn resume(a: TrainArgs) -> CliResult<Finished> {
    let mut finished = super::train_from(a.clone(), NewModel::FromArgs)?;
    if let Some(next) = begin_stage_two(&finished, &a)? {
        finished = super::train_from(next, NewModel::FromArgs)?;
    }
    Ok(finished)
}

/// After a finetune's first stage: records in `run.json` that stage two
/// begins at this epoch count (so that a resume from here on unfreezes once,
/// exactly when its newest checkpoint is at this count) and returns the
/// arguments that run it. `None` for runs without a stage two or with one
/// under way.
pub fn begin_stage_two(finished: &Finished, a: &TrainArgs) -> CliResult<Option<TrainArgs>> {
    let world = crate::dist::world();
    let mut cfg = RunConfig::load(&finished.dir)?;
    let Some(s) = cfg.finetune.as_mut().and_then(|p| p.stage_two.as_mut()) else {
        return Ok(None);
    };
    if s.from_epoch.is_some() {
        return Ok(None);
    }
    s.from_epoch = Some(finished.epochs_done);
    let (k, lr) = (s.unfreeze_top, s.lr);
    cfg.epochs = finished.epochs_done + s.epochs;
    cfg.schedule = sized_schedule(cfg.schedule.clone(), cfg.epochs);
    if world.rank() == 0 {
        println!("Stage two: unfreezing the top {k} layers of the base at lr {lr}");
        cfg.save(&finished.dir)?;
    }
    // Every rank reads the updated run.json.
    world.barrier();
    let mut next = a.clone();
    next.resume = Some(finished.dir.clone());
    next.epochs = None;
    next.lr = None;
    next.unfreeze = None;
    // The thread pool was set up by stage one.
    next.threads = None;
    Ok(Some(next))
}

/// Where a resumed run starts: its newest checkpoint, else the start it had.
fn resume_start(cfg: &RunConfig, run: &Path) -> CliResult<Start> {
    if let Some(start) = Start::from_checkpoint(run)? {
        return Ok(start);
    }
    let mut model = if let Some(plan) = &cfg.finetune {
        // A finetune stopped before its first checkpoint was written.
        finetune_start(plan, cfg, run)?
    } else if run.join(convnet_nn::save::WEIGHTS_FILE).exists() {
        // A run that starts from given weights (`convnet insert-bn`).
        Model::load(run)?
    } else {
        // Stopped before the first checkpoint: start over, same seed.
        cfg.model.build(cfg.seed)?
    };
    model.compile(cfg.optimizer.clone(), cfg.loss);
    Ok(Start::fresh(model))
}

/// `--resume RUN`: the run's settings (with a new `--epochs`, `--lr` or
/// `--unfreeze`, or a finetune's stage two when it is next) and its start.
pub(super) fn ready_to_resume(a: &TrainArgs, run: &Path) -> CliResult<Ready> {
    let root = crate::dist::world().rank() == 0;
    let mut cfg = RunConfig::load(run)?;
    if let Some(e) = a.epochs {
        cfg.epochs = e;
        cfg.schedule = sized_schedule(cfg.schedule.clone(), e);
        if root {
            cfg.save(run)?;
        }
    }
    if let Some(p) = a.precision()? {
        if p != cfg.precision {
            // The rest of the run in another precision (its weights and
            // optimizer state are fp32 either way).
            cfg.precision = p;
            if root {
                cfg.save(run)?;
                eprintln!("Precision set to {p}");
            }
        }
    }
    let mut start = resume_start(&cfg, run)?;
    let done = start.epochs_done;
    // A finetune's stage two unfreezes when its first epoch is next.
    let (mut unfreeze, mut lr) = (a.unfreeze, a.lr);
    if let Some(s) = cfg.finetune.as_ref().and_then(|p| p.stage_two.as_ref()) {
        if s.from_epoch == Some(done) && unfreeze.is_none() {
            (unfreeze, lr) = (Some(s.unfreeze_top), Some(s.lr));
        }
    }
    let model = &mut start.model;
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
        let names = unfreeze_top(model, k)?;
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
    Ok(Ready {
        dir: run.to_path_buf(),
        cfg,
        start,
        loaded,
    })
}

/// The start of a finetune that stopped before its first checkpoint, rebuilt
/// from its source exactly as the first command built it (same cut, head,
/// seed and frozen layers); refused if the source run has changed since.
fn finetune_start(plan: &FinetunePlan, cfg: &RunConfig, run: &Path) -> CliResult<Model> {
    let mut model = convnet_run::prepare::cut_and_head(plan, cfg.seed)?;
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

/// Unfreezes the last `k` frozen layers that have weights; their names.
///
/// Batch norms stay frozen and are not counted, as Keras's fine-tuning
/// guides leave them (in inference mode, with the base's statistics): a few
/// hundred new images' batch statistics would replace what the base learned
/// them on, and the unfrozen layers above would see shifted inputs.
fn unfreeze_top(model: &mut Model, k: usize) -> CliResult<Vec<String>> {
    let nodes = &model.spec().layers;
    let frozen: Vec<String> = (0..model.layers().len())
        .filter(|&i| {
            model.is_frozen(i)
                && !model.layers()[i].params().is_empty()
                && nodes[i].layer.layer_kind().role() != Role::Normalization
        })
        .map(|i| model.wiring().names[i].clone())
        .collect();
    if k == 0 || k > frozen.len() {
        return Err(CliError::usage(format!(
            "--unfreeze {k}: the run has {} frozen layers with weights (batch norms stay frozen)",
            frozen.len()
        )));
    }
    let names = frozen[frozen.len() - k..].to_vec();
    for n in &names {
        model.set_trainable(n, true)?;
    }
    Ok(names)
}
