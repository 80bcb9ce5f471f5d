//! `convnet ensemble`: bagging. N nets of one architecture, each trained on
//! a different random 90 % of the training images (drawn without
//! replacement, seeded), combined by summing their softmax outputs.

use crate::error::{LabError, Result};
use crate::experiment::{ExperimentConfig, Variant};
use convnet_data::{LabeledImages, Mnist};
use convnet_nn::save::write_atomic;
use convnet_nn::{FitConfig, Loss, Model, Precision, Rng, Sequential};
use convnet_run::folder::CHECKPOINTS;
use convnet_run::{settings, Pass, Start, TrainData};
use convnet_tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File of a finished member with its seed, bag size, accuracy and time.
pub const MEMBER_FILE: &str = "member.json";

/// Test accuracy of each member and of the ensemble.
#[derive(Clone, Debug, Default)]
pub struct EnsembleResult {
    /// Each net's test accuracy.
    pub members: Vec<f32>,
    /// The ensemble's test accuracy.
    pub ensemble: f32,
    /// (k, accuracy of the first k members combined), k = 1, 2, 3, 5, 10, ...
    pub growth: Vec<(usize, f32)>,
    /// Seconds each member took to train (0 for a member loaded from disk).
    pub seconds: Vec<f64>,
    /// Whether each member was loaded from an earlier, interrupted run.
    pub loaded: Vec<bool>,
}

/// Fraction of the training images each member sees.
pub const BAG_FRACTION: f64 = 0.9;

/// Sums softmax outputs `[N, K]` of several models and returns the argmax.
pub fn combine(probs: &[Tensor]) -> Vec<usize> {
    let mut sum = probs[0].clone();
    for p in &probs[1..] {
        sum.data_mut()
            .iter_mut()
            .zip(p.data())
            .for_each(|(a, b)| *a += b);
    }
    sum.argmax_rows()
}

fn accuracy(pred: &[usize], labels: &Tensor) -> f32 {
    let hits = pred
        .iter()
        .zip(labels.data())
        .filter(|(p, l)| **p == **l as usize)
        .count();
    hits as f32 / pred.len().max(1) as f32
}

/// Folder of member `i` (0-based) under `out`.
pub fn member_dir(out: &Path, i: usize) -> PathBuf {
    out.join(format!("net-{:02}", i + 1))
}

/// What `member.json` records about a finished member.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Seed of the member's weights, shuffles and augmentation.
    pub seed: u64,
    /// Images in its bag.
    pub images: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Test accuracy when it was saved.
    pub test_accuracy: f32,
    /// Seconds of training, summed over the sessions it was trained in.
    pub seconds: f64,
}

/// The indices of member `i`'s bag: a seeded 90 % of `0..pool`, sorted.
pub fn bag(pool: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..pool).collect();
    idx.shuffle(&mut Rng::seed_from_u64(seed ^ 0xBA66));
    idx.truncate((pool as f64 * BAG_FRACTION).round() as usize);
    idx.sort_unstable();
    idx
}

/// Trains `n` members of `variant` and saves them under `out/net-NN`.
///
/// Every member writes a checkpoint per epoch to `net-NN/checkpoints` (the
/// same `Checkpointer` as `convnet train`). With `resume`, a finished member
/// (its `member.json` written, after its model and history) is loaded, a member stopped mid-training
/// continues from its newest checkpoint exactly as if it had not been
/// stopped, and the others are trained; every member's bag and seed depend
/// only on its index, so the result equals an uninterrupted run's.
pub fn run_ensemble(
    variant: &Variant,
    n: usize,
    data: &Mnist,
    cfg: &ExperimentConfig,
    out: &Path,
    resume: bool,
    tta: usize,
) -> Result<EnsembleResult> {
    let seq = variant.model()?;
    let pool = cfg.train_size.min(data.train.len());
    let test = data.test.take(cfg.test_size);
    let talk = cfg.verbosity != convnet_nn::Verbosity::Silent;
    // Member i is trained by rank i mod size (all of them in one process).
    let mut slots: Vec<Option<(f32, Tensor, f64, bool)>> = vec![None; n];
    for (i, slot) in slots.iter_mut().enumerate() {
        if !cfg.ranks.owns(i) {
            continue;
        }
        let seed = cfg.seed.wrapping_add(i as u64);
        let idx = bag(pool, seed);
        let dir = member_dir(out, i);
        let ckpt = dir.join(CHECKPOINTS);
        // A member is finished once its `member.json` is written (the last
        // of its files); until then its newest checkpoint is kept.
        if resume && dir.join(MEMBER_FILE).exists() {
            let (acc, p, secs) = load_member(&dir, &seq, variant, &test, (tta, cfg.precision))?;
            if ckpt.exists() {
                // Stopped between `member.json` and the clean-up.
                std::fs::remove_dir_all(&ckpt).map_err(|e| io(&ckpt, e))?;
            }
            if talk {
                eprintln!(
                    "[net {}/{n}] loaded from {}: test accuracy {:.2} %",
                    i + 1,
                    dir.display(),
                    100.0 * acc
                );
            }
            *slot = Some((acc, p, secs, true));
            continue;
        }
        let start = member_start(resume, &dir, &seq, variant, seed)?;
        if talk && start.epochs_done > 0 {
            eprintln!(
                "[net {}/{n}] resuming after epoch {} of {}",
                i + 1,
                start.epochs_done,
                cfg.epochs
            );
        }
        if talk && start.epochs_done == 0 {
            eprintln!("[net {}/{n}] {} images, seed {seed}", i + 1, idx.len());
        }
        let bagged = TrainData {
            train: data.train.select(&idx).into(),
            validation: None,
            augment: variant.augment.clone().unwrap_or_default(),
        };
        let fit = FitConfig::new()
            .with_epochs(cfg.epochs)
            .with_batch_size(cfg.batch_size)
            .with_schedule(settings::schedule())
            .with_verbosity(cfg.verbosity)
            .with_precision(cfg.precision);
        let pass = Pass::new(fit).with_checkpoints(&dir);
        let mut trained = convnet_run::train(start, &bagged, &pass, &mut [])?;
        let secs: f64 = trained
            .history
            .epochs
            .iter()
            .map(|e| e.seconds as f64)
            .sum();
        let p = member_outputs(&mut trained.model, &test, 1)?;
        let acc = accuracy(&p.argmax_rows(), &test.labels_tensor());
        trained.save(&dir)?;
        let mut model = trained.model;
        let record = MemberRecord {
            seed,
            images: idx.len(),
            epochs: cfg.epochs,
            test_accuracy: acc,
            seconds: secs,
        };
        let json = serde_json::to_vec_pretty(&record).expect("serializable");
        write_atomic(&dir.join(MEMBER_FILE), &json)?;
        // The member is complete: its checkpoints are no longer needed.
        std::fs::remove_dir_all(&ckpt).map_err(|e| io(&ckpt, e))?;
        if talk {
            eprintln!(
                "[net {}/{n}] test accuracy {:.2} %, {secs:.0} s of training, saved to {}",
                i + 1,
                100.0 * acc,
                dir.display()
            );
        }
        let (acc, p) = if tta > 1 {
            let p = member_outputs(&mut model, &test, tta)?;
            (accuracy(&p.argmax_rows(), &test.labels_tensor()), p)
        } else {
            (acc, p)
        };
        *slot = Some((acc, p, secs, false));
    }
    if cfg.ranks.size() > 1 {
        // Every member is saved once all ranks are here; rank 0 reads the
        // others' and combines them.
        cfg.ranks.barrier();
        if cfg.ranks.rank() != 0 {
            return Ok(EnsembleResult::default());
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() {
                let (acc, p, secs) = load_member(
                    &member_dir(out, i),
                    &seq,
                    variant,
                    &test,
                    (tta, cfg.precision),
                )?;
                *slot = Some((acc, p, secs, true));
            }
        }
    }
    let (mut members, mut probs, mut seconds, mut loaded) = (vec![], vec![], vec![], vec![]);
    for (acc, p, secs, l) in slots.into_iter().flatten() {
        members.push(acc);
        probs.push(p);
        seconds.push(secs);
        loaded.push(l);
    }
    let growth = growth(&probs, &test.labels_tensor());
    let ensemble = growth.last().map(|g| g.1).unwrap_or(0.0);
    Ok(EnsembleResult {
        members,
        ensemble,
        growth,
        seconds,
        loaded,
    })
}

/// Where member `dir` starts: its newest checkpoint when resuming (checked
/// to be this variant's net), else a fresh net from `seed` in an emptied folder.
fn member_start(
    resume: bool,
    dir: &Path,
    seq: &convnet_nn::Sequential,
    variant: &Variant,
    seed: u64,
) -> Result<Start> {
    if resume {
        if let Some(start) = Start::from_checkpoint(dir)? {
            check_same(&start.model, seq, dir, variant)?;
            return Ok(start);
        }
    }
    if dir.exists() {
        // A fresh run: nothing of an earlier member may be mixed in.
        std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let mut model: Model = seq.build(seed)?;
    model.compile(settings::optimizer(), Loss::SparseCategoricalCrossentropy);
    Ok(Start::fresh(model))
}

/// A finished member read back: its accuracy and outputs on `test` (with
/// `tta` views, in `precision`, as a newly trained member's) and its
/// training seconds.
fn load_member(
    dir: &Path,
    seq: &Sequential,
    variant: &Variant,
    test: &LabeledImages,
    (tta, precision): (usize, Precision),
) -> Result<(f32, Tensor, f64)> {
    let mut model = Model::load(dir)?;
    model.set_precision(precision);
    check_same(&model, seq, dir, variant)?;
    let p = member_outputs(&mut model, test, tta)?;
    let acc = accuracy(&p.argmax_rows(), &test.labels_tensor());
    let secs = read_record(dir).map(|r| r.seconds).unwrap_or(0.0);
    Ok((acc, p, secs))
}

/// A member's softmax outputs on `test`, averaged over `tta` views (1:
/// none) drawn from the kernel's augmentation.
pub fn member_outputs(model: &mut Model, test: &LabeledImages, tta: usize) -> Result<Tensor> {
    let cfg = convnet_run::tta_config(&convnet_data::AugmentConfig::new());
    Ok(convnet_run::predict_images(model, test, Some((&cfg, tta, TTA_SEED)), 500)?.0)
}

/// Seed of the test-time augmentation views.
pub const TTA_SEED: u64 = 0x77A;

/// The members saved under `dir` (`net-01`, `net-02`, ..., in order, up to
/// the first missing one), e.g. a committed ensemble.
pub fn load_members(dir: &Path) -> Result<Vec<Model>> {
    let mut out = Vec::new();
    while member_dir(dir, out.len()).join("model.json").exists() {
        out.push(Model::load(&member_dir(dir, out.len()))?);
    }
    if out.is_empty() {
        return Err(LabError::Config(format!(
            "{}: no ensemble members (expected net-01/model.json, net-02/model.json, ...)",
            dir.display()
        )));
    }
    let shape = out[0].input_shape().to_vec();
    if let Some(i) = out.iter().position(|m| m.input_shape() != shape.as_slice()) {
        return Err(LabError::Config(format!(
            "{}: member {} takes inputs {:?}, member 1 {:?}",
            dir.display(),
            i + 1,
            out[i].input_shape(),
            shape
        )));
    }
    Ok(out)
}

/// Evaluates saved members on `test`: each one's accuracy, the growth table
/// and the ensemble's accuracy (summed softmax), with `tta` views.
pub fn evaluate_members(
    models: &mut [Model],
    test: &LabeledImages,
    tta: usize,
) -> Result<EnsembleResult> {
    let mut probs = Vec::new();
    let mut members = Vec::new();
    for m in models.iter_mut() {
        let p = member_outputs(m, test, tta)?;
        members.push(accuracy(&p.argmax_rows(), &test.labels_tensor()));
        probs.push(p);
    }
    let growth = growth(&probs, &test.labels_tensor());
    let ensemble = growth.last().map(|g| g.1).unwrap_or(0.0);
    Ok(EnsembleResult {
        seconds: vec![0.0; members.len()],
        loaded: vec![true; members.len()],
        members,
        ensemble,
        growth,
    })
}

/// Accuracy of the ensemble of the first k members for k = 1, 2, 3, 5, 10,
/// 15, 20, ... and n.
pub fn growth(probs: &[Tensor], labels: &Tensor) -> Vec<(usize, f32)> {
    let n = probs.len();
    let mut ks: Vec<usize> = [1, 2, 3, 5]
        .into_iter()
        .chain((10..n).step_by(5))
        .filter(|&k| k < n)
        .collect();
    ks.push(n);
    ks.into_iter()
        .filter(|&k| k > 0)
        .map(|k| (k, accuracy(&combine(&probs[..k]), labels)))
        .collect()
}

fn check_same(model: &Model, seq: &Sequential, dir: &Path, variant: &Variant) -> Result<()> {
    if model.spec() != seq {
        return Err(LabError::Config(format!(
            "{}: the saved net is not `{}`; use another --out or remove the folder",
            dir.display(),
            variant.notation
        )));
    }
    Ok(())
}

/// The `member.json` of a finished member in `dir`, if readable.
pub fn read_record(dir: &Path) -> Option<MemberRecord> {
    let text = std::fs::read_to_string(dir.join(MEMBER_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn io(path: &Path, e: impl std::fmt::Display) -> LabError {
    LabError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combining_sums_probabilities() {
        let a = Tensor::from_vec(&[2, 3], vec![0.5, 0.4, 0.1, 0.1, 0.1, 0.8]).unwrap();
        let b = Tensor::from_vec(&[2, 3], vec![0.1, 0.6, 0.3, 0.5, 0.4, 0.1]).unwrap();
        // Row 0: 0.6, 1.0, 0.4 -> 1; row 1: 0.6, 0.5, 0.9 -> 2.
        assert_eq!(combine(&[a, b]), vec![1, 2]);
    }
}
