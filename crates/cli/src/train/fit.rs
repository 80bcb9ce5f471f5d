//! A ready run trained through the run pipeline (`convnet_run::train`):
//! rank 0 checkpoints, saves, reports and draws; `--serve` feeds the
//! explorer while it trains.

use super::{Finished, Ready, TrainArgs};
use crate::error::CliResult;
use convnet_data::LabeledImages;
use convnet_nn::{Callback, FitConfig, Precision};
use convnet_run::folder::RunConfig;
use convnet_run::{write_metrics, Loaded, Pass, TrainData, Trained};
use std::path::Path;

/// The explorer served while the run trains (`--serve`): the callback
/// that feeds it and its address.
type Served = (crate::serve::LiveCallback, String);

fn serve_live(a: &TrainArgs, dir: &Path, precision: Precision, ranks: usize) -> CliResult<Served> {
    let live = std::sync::Arc::new(crate::serve::Live::of_ranks(ranks));
    let explorer = crate::serve::Explorer::open(dir, Some(live.clone()), precision)?;
    let (srv, addr) = crate::serve::bind(&a.serve_host, a.serve_port)?;
    println!("Serving the explorer at http://{addr}/ while training");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let explorer = std::sync::Arc::new(explorer);
    std::thread::spawn(move || crate::serve::run_server(srv, explorer));
    Ok((crate::serve::LiveCallback(live), addr))
}

/// Trains a ready run through the pipeline; rank 0 then saves it, reports
/// on its test (or validation) data and draws its pictures.
pub(super) fn train_ready(a: &TrainArgs, ready: Ready) -> CliResult<Finished> {
    let world = crate::dist::world();
    // Rank 0 writes the run folder and prints; the other ranks only train.
    let root = world.rank() == 0;
    let Ready {
        dir,
        cfg,
        start,
        loaded,
    } = ready;
    let all = match cfg.limit {
        Some(n) => loaded.train.take(n),
        None => loaded.train.clone(),
    };
    // Validation: the last fraction of the training samples, never augmented.
    let data = TrainData::split(all, cfg.validation_split, cfg.augment.clone())?;
    let precision = crate::precision(cfg.precision.name())?;
    let fit = FitConfig::new()
        .with_epochs(cfg.epochs)
        .with_batch_size(cfg.batch_size)
        .with_schedule(cfg.schedule.clone())
        .with_verbosity(a.verbosity(root))
        .with_shards(a.shards)
        .with_sync_batch_norm(a.sync_bn)
        .with_collective(world.clone())
        .with_precision(precision);
    if world.size() > 1 && root {
        eprintln!(
            "Data-parallel over {} ranks: batches of {} split into shards of about {}, batch-norm statistics {}",
            world.size(),
            cfg.batch_size,
            cfg.batch_size.div_ceil(world.size()),
            if a.sync_bn { "over all ranks" } else { "per rank" }
        );
    }
    let mut pass = Pass::new(fit)
        .with_l2(cfg.l2)
        .with_patience(cfg.early_stopping, cfg.reduce_lr_on_plateau);
    if root {
        pass = pass.with_checkpoints(&dir);
    }
    let mut served = match a.serve && root {
        true => Some(serve_live(a, &dir, precision, world.size())?),
        false => None,
    };
    let mut extra: Vec<&mut dyn Callback> = Vec::new();
    if let Some((cb, _)) = served.as_mut() {
        extra.push(cb);
    }
    crate::alloc::purge_immediately_if_large(start.model.spec().training_bytes(cfg.batch_size)?);
    let mut trained = convnet_run::train(start, &data, &pass, &mut extra)?;
    let finished = Finished {
        dir: dir.clone(),
        epochs_done: trained.epochs_done,
    };
    if !root {
        // Until rank 0 has written the run (finetune's second stage reads it).
        world.barrier();
        return Ok(finished);
    }
    trained.save(&dir)?;
    println!(
        "Trained {} epoch(s) in {:.1}s; run saved in {}",
        trained.new_epochs,
        trained.seconds,
        dir.display()
    );
    report(&mut trained, &cfg, &loaded, &data, &dir)?;
    world.barrier();
    if let Some((cb, addr)) = served {
        cb.0.finish();
        println!("Training done; the explorer stays at http://{addr}/ (Ctrl-C stops)");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        loop {
            std::thread::park();
        }
    }
    Ok(finished)
}

/// The result line (test accuracy, else validation, else training), the
/// run's pictures and report, skipped images and peak memory.
fn report(
    trained: &mut Trained,
    cfg: &RunConfig,
    loaded: &Loaded,
    data: &TrainData,
    dir: &Path,
) -> CliResult<()> {
    let (result_line, eval): (String, Option<(&LabeledImages, &str)>) = match &loaded.test {
        Some(test) => {
            let e = convnet_run::evaluate(&mut trained.model, test, 256)?;
            let line = format!(
                "Test accuracy: {:.4} ({:.2} %), test loss {:.4}, on {} images",
                e.accuracy,
                e.accuracy * 100.0,
                e.loss,
                test.len()
            );
            println!("{line}");
            write_metrics(dir, &e, test.len())?;
            (line, Some((test, "test")))
        }
        None => {
            let n_val = data.validation.as_ref().map_or(0, |v| v.len());
            let line = match trained.history.epochs.last() {
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
            let validation = data.validation.as_ref().and_then(|v| v.images());
            (line, validation.map(|v| (v, "validation")))
        }
    };
    crate::pictures::write_run_pictures(
        dir,
        &mut trained.model,
        cfg,
        &trained.history,
        eval,
        &result_line,
    )?;
    println!("Pictures and report.html written to {}", dir.display());
    let skipped = loaded.train.skipped();
    if skipped > 0 {
        println!("Skipped {skipped} unreadable image(s) (warnings above name them)");
    }
    if let Some(line) = crate::alloc::peak_rss_line() {
        println!("{line}");
    }
    Ok(())
}
