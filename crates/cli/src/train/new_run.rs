//! A new run of `convnet train` or `convnet finetune`: its data, its model
//! (from `--model`, or prepared by finetune) and its settings checked, its
//! folder made and `run.json` written, before anything trains.

use super::{parse_augment, NewModel, Ready, TrainArgs};
use crate::error::{CliError, CliResult};
use crate::model_arg::{parse_input_shape, resolve_model};
use convnet_nn::{History, Loss, Sequential};
use convnet_run::folder::{new_run_dir, RunConfig, CHECKPOINTS};
use convnet_run::settings::{self, parse_loss, parse_optimizer, parse_schedule, sized_schedule};
use convnet_run::{dataset, FolderSettings, Loaded, Start};

/// The number of classes of the data: its class names, else the largest label + 1.
fn class_count(loaded: &Loaded) -> Option<usize> {
    if let Some(names) = &loaded.classes {
        return Some(names.len());
    }
    Some(loaded.train.class_count()).filter(|&k| k > 0)
}

/// The data of a new run, as `--data`, `--input` and the folder flags say.
fn load_new_data(a: &TrainArgs) -> CliResult<(Loaded, FolderSettings)> {
    let is_folder = a.data.starts_with("folder");
    let folder = FolderSettings {
        cache_mib: a.cache_mib,
        on_bad_image: convnet_data::OnError::from_name(&a.on_bad_image).ok_or_else(|| {
            CliError::usage(format!(
                "--on-bad-image '{}': expected skip or fail",
                a.on_bad_image
            ))
        })?,
    };
    let input_arg = match (&a.input, is_folder) {
        (Some(s), _) => Some(parse_input_shape(s)?),
        (None, true) => Some(vec![128, 128, 3]),
        (None, false) => None,
    };
    let loaded = convnet_run::source::load(
        &a.data,
        a.data_dir.as_deref(),
        input_arg.as_deref(),
        a.seed,
        &folder,
    )?;
    Ok((loaded, folder))
}

/// `--freeze`, `--bn-keras-moving-average` and `--bn-momentum` applied to
/// the description of a new run's model.
fn adjust_spec(a: &TrainArgs, seq: &mut Sequential, prepared: bool) -> CliResult<()> {
    if let Some(f) = &a.freeze {
        convnet_run::prepare::apply_freeze(seq, f)?;
    }
    if a.bn_keras_moving_average {
        for node in &mut seq.layers {
            if let convnet_nn::LayerSpec::BatchNormalization(b) = &mut node.layer {
                b.keras_moving_average = true;
            }
        }
    }
    if let Some(m) = a.bn_momentum {
        if prepared {
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
    Ok(())
}

/// A new run: its data, model and settings checked, its folder made and
/// `run.json` written.
pub(super) fn ready_new(a: &TrainArgs, new: NewModel) -> CliResult<Ready> {
    let root = crate::dist::world().rank() == 0;
    let notation = a.notation()?;
    let (loaded, folder) = load_new_data(a)?;
    let input = loaded.train.image_shape().to_vec();
    let classes = a.classes.or_else(|| class_count(&loaded));
    let (mut seq, prepared, plan, model_arg) = match new {
        NewModel::FromArgs => (
            resolve_model(&a.model, &input, notation, classes)?,
            None,
            None,
            a.model.clone(),
        ),
        NewModel::Prepared { model, plan } => {
            let arg = format!("finetune {} --head {}", plan.source.display(), plan.head);
            (model.spec().clone(), Some(model), Some(plan), arg)
        }
    };
    adjust_spec(a, &mut seq, prepared.is_some())?;
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
    let mut optimizer = parse_optimizer(&a.optimizer)?;
    if let Some(lr) = a.lr {
        optimizer = optimizer.with_learning_rate(lr);
    }
    optimizer = optimizer
        .with_momentum(a.momentum)
        .with_nesterov(a.nesterov);
    let epochs = a.epochs.unwrap_or(settings::EPOCHS);
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
        augment: parse_augment(a)?,
        classes: match &a.class_names {
            Some(names) => Some(convnet_run::class_names(names, outputs)?),
            None => loaded.classes.clone(),
        },
        seed: a.seed,
        folder,
        finetune: plan,
        precision: a.precision()?.unwrap_or_default(),
    };
    if let Some(avail) = convnet_nn::available_memory() {
        seq.check_memory(a.batch_size, avail)?;
    }
    let with_weights = prepared.is_some();
    let mut model = match prepared {
        // The base's weights with the head's; --freeze may have changed the flags.
        Some(mut m) => {
            m.set_trainable_flags(seq.layers.iter().map(|n| n.trainable));
            *m
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
    if with_weights && root {
        // The start as checkpoint 0, so that a run stopped before its
        // first epoch resumes from it (RNG position included) rather
        // than from scratch; run.json alone rebuilds it from the source.
        model.save_checkpoint(&dir.join(CHECKPOINTS), 0, &History::default())?;
    }
    Ok(Ready {
        dir,
        cfg,
        start: Start::fresh(model),
        loaded,
    })
}
