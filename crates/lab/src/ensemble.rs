//! `convnet ensemble`: bagging. N nets of one architecture, each trained on
//! a different random 90 % of the training images (drawn without
//! replacement, seeded), combined by summing their softmax outputs.

use crate::error::Result;
use crate::experiment::{ExperimentConfig, Variant};
use convnet_data::{Augmented, Mnist};
use convnet_nn::{FitConfig, Loss, Model, OptimizerConfig, Rng, Schedule, TensorData};
use convnet_tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::Path;

/// Test accuracy of each member and of the ensemble.
#[derive(Clone, Debug)]
pub struct EnsembleResult {
    /// Each net's test accuracy.
    pub members: Vec<f32>,
    /// The ensemble's test accuracy.
    pub ensemble: f32,
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

/// Trains `n` members of `variant` and saves them under `out/net-NN`.
///
/// With `resume`, a member whose folder already holds a saved model (from an
/// earlier run that was stopped) is loaded instead of trained again, so a
/// long ensemble loses at most the member that was in training. Its bag is
/// still drawn, so the following members see the same bags as in a run that
/// was never stopped.
pub fn run_ensemble(
    variant: &Variant,
    n: usize,
    data: &Mnist,
    cfg: &ExperimentConfig,
    out: &Path,
    resume: bool,
) -> Result<EnsembleResult> {
    let seq = variant.model()?;
    let pool = cfg.train_size.min(data.train.len());
    let test = data.test.take(cfg.test_size);
    let mut probs = Vec::new();
    let mut members = Vec::new();
    let mut seconds = Vec::new();
    let mut loaded = Vec::new();
    for i in 0..n {
        let seed = cfg.seed.wrapping_add(i as u64);
        let mut idx: Vec<usize> = (0..pool).collect();
        idx.shuffle(&mut Rng::seed_from_u64(seed ^ 0xBA66));
        idx.truncate((pool as f64 * BAG_FRACTION).round() as usize);
        idx.sort_unstable();
        let dir = out.join(format!("net-{:02}", i + 1));
        if resume && dir.join("model.json").exists() {
            let mut model = Model::load(&dir)?;
            if model.spec() != &seq {
                return Err(crate::error::LabError::Config(format!(
                    "{}: the saved net is not `{}`; use another --out or remove the folder",
                    dir.display(),
                    variant.notation
                )));
            }
            let p = model.predict(&test.images, 500)?;
            let acc = accuracy(&p.argmax_rows(), &test.labels);
            if cfg.verbosity != convnet_nn::Verbosity::Silent {
                eprintln!(
                    "[net {}/{n}] loaded from {}: test accuracy {:.2} %",
                    i + 1,
                    dir.display(),
                    100.0 * acc
                );
            }
            members.push(acc);
            probs.push(p);
            seconds.push(0.0);
            loaded.push(true);
            continue;
        }
        let start = std::time::Instant::now();
        let x = data.train.images.gather_batch(&idx);
        let y = data.train.labels.gather_batch(&idx);
        let train = TensorData::new(x, y)?;
        let mut model: Model = seq.build(seed)?;
        model.compile(OptimizerConfig::adam(), Loss::SparseCategoricalCrossentropy);
        let fit = FitConfig::new()
            .with_epochs(cfg.epochs)
            .with_batch_size(cfg.batch_size)
            .with_schedule(Schedule::Exponential { decay: 0.95 })
            .with_verbosity(cfg.verbosity);
        if cfg.verbosity != convnet_nn::Verbosity::Silent {
            eprintln!("[net {}/{n}] {} images, seed {seed}", i + 1, idx.len());
        }
        match &variant.augment {
            Some(a) => model.fit(&Augmented::new(train, a.clone())?, None, &fit, &mut [])?,
            None => model.fit(&train, None, &fit, &mut [])?,
        };
        let secs = start.elapsed().as_secs_f64();
        let p = model.predict(&test.images, 500)?;
        let acc = accuracy(&p.argmax_rows(), &test.labels);
        model.save(&dir)?;
        if cfg.verbosity != convnet_nn::Verbosity::Silent {
            eprintln!(
                "[net {}/{n}] test accuracy {:.2} %, {secs:.0} s of training, saved to {}",
                i + 1,
                100.0 * acc,
                dir.display()
            );
        }
        members.push(acc);
        probs.push(p);
        seconds.push(secs);
        loaded.push(false);
    }
    let ensemble = accuracy(&combine(&probs), &test.labels);
    Ok(EnsembleResult {
        members,
        ensemble,
        seconds,
        loaded,
    })
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
