//! `convnet experiment`: families of architecture variants trained with the
//! same data and settings, compared in one table, as in the Kaggle kernel
//! "How to choose CNN Architecture MNIST" (C. Deotte).
//!
//! Common settings: the run pipeline's defaults (Adam, `lr = 1e-3 x 0.95^epoch`),
//! categorical cross-entropy unless a variant names another loss.
//! Data: the first `train_size` MNIST training images; validation is the
//! last `val_size` of the 60,000 (never used for training); test is the
//! first `test_size` of the 10,000 test images.

use crate::error::{LabError, Result};
use convnet_data::{AugmentConfig, Mnist};
use convnet_nn::{
    parse_notation, FitConfig, History, Loss, Model, NotationOptions, Padding, Precision, Ranks,
    Sequential, Verbosity,
};
use convnet_run::{settings, Pass, Start, TrainData};
use serde::{Deserialize, Serialize};

/// One architecture of a family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Short label for tables and plots.
    pub name: String,
    /// The model in the compact notation (input 28x28x1 implied).
    pub notation: String,
    /// Default padding of convs without a `v`/`s` suffix.
    #[serde(default = "same")]
    pub padding: String,
    /// Loss (default categorical cross-entropy).
    #[serde(default = "cce")]
    pub loss: String,
    /// Batch size override.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Augmentation of the training batches.
    #[serde(default)]
    pub augment: Option<AugmentConfig>,
}

fn same() -> String {
    "same".into()
}
fn cce() -> String {
    "categorical_crossentropy".into()
}

impl Variant {
    /// A variant with default settings.
    pub fn new(name: impl Into<String>, notation: impl Into<String>, padding: &str) -> Self {
        Variant {
            name: name.into(),
            notation: notation.into(),
            padding: padding.into(),
            loss: cce(),
            batch_size: None,
            augment: None,
        }
    }

    /// The model description.
    pub fn model(&self) -> Result<Sequential> {
        let padding = match self.padding.as_str() {
            "valid" => Padding::Valid,
            "same" => Padding::Same,
            p => {
                return Err(LabError::Config(format!(
                    "variant '{}': padding '{p}': expected same or valid",
                    self.name
                )))
            }
        };
        let opts = NotationOptions::default()
            .with_padding(padding)
            .with_input(&[28, 28, 1]);
        Ok(parse_notation(&self.notation, &opts)?)
    }

    fn loss(&self) -> Result<Loss> {
        Loss::from_name(&self.loss).ok_or_else(|| {
            LabError::Config(format!(
                "variant '{}': unknown loss '{}'",
                self.name, self.loss
            ))
        })
    }
}

/// A named list of variants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Family {
    /// Family name (also the output folder name).
    pub name: String,
    /// What the family asks.
    #[serde(default)]
    pub question: String,
    /// The variants.
    #[serde(rename = "variant")]
    pub variants: Vec<Variant>,
}

/// Names of the built-in families.
pub const FAMILIES: [&str; 7] = [
    "conv-pool-pairs",
    "feature-maps",
    "dense-size",
    "dropout",
    "advanced",
    "loss",
    "batch-size",
];

/// The final net of the kernel (327,242 parameters).
pub const FINAL_NET: &str =
    "784-[32C3-BN-32C3-BN-32C5S2s-BN-D0.4]-[64C3-BN-64C3-BN-64C5S2s-BN-D0.4]-128C4-BN-F-D0.4-10";

/// The augmentation of the kernel: rotation 10, zoom 0.1, shifts 0.1.
pub fn kernel_augmentation() -> AugmentConfig {
    AugmentConfig::new()
        .with_rotation(10.0)
        .with_zoom(0.1)
        .with_shift(0.1, 0.1)
}

/// A built-in family by name.
pub fn builtin(name: &str) -> Result<Family> {
    let v = |n: &str, s: String, p: &str| Variant::new(n, s, p);
    let (question, variants) = match name {
        "conv-pool-pairs" => (
            "How many convolution-subsampling pairs?",
            vec![
                v("1 pair", "[24C5-P2]-256-10".into(), "same"),
                v("2 pairs", "[24C5-P2]-[48C5-P2]-256-10".into(), "same"),
                v("3 pairs", "[24C5-P2]-[48C5-P2]-[64C5-P2]-256-10".into(), "same"),
            ],
        ),
        "feature-maps" => (
            "How many feature maps?",
            [8, 16, 24, 32, 48, 64]
                .iter()
                .map(|&n| v(&format!("{n} maps"), format!("[{n}C5-P2]-[{}C5-P2]-256-10", 2 * n), "valid"))
                .collect(),
        ),
        "dense-size" => (
            "How large a dense layer?",
            [0, 32, 64, 128, 256, 512, 1024, 2048]
                .iter()
                .map(|&d| {
                    let s = if d == 0 { "[32C5-P2]-[64C5-P2]-10".to_string() } else { format!("[32C5-P2]-[64C5-P2]-{d}-10") };
                    v(&format!("{d}N"), s, "valid")
                })
                .collect(),
        ),
        "dropout" => (
            "How much dropout?",
            (0..8)
                .map(|i| {
                    let p = format!("{:.1}", i as f32 / 10.0);
                    v(&format!("D={p}"), format!("32C5-P2-D{p}-64C5-P2-D{p}-128-D{p}-10"), "valid")
                })
                .collect(),
        ),
        "advanced" => {
            let mut aug = v("final + augmentation", FINAL_NET.into(), "valid");
            aug.augment = Some(kernel_augmentation());
            (
                "Do two 3x3 convs, strided convs, batch norm and augmentation each help?",
                vec![
                    v("basic", "32C5-P2-D0.4-64C5-P2-D0.4-128-D0.4-10".into(), "valid"),
                    v("32C3-32C3 for 32C5", "32C3-32C3-P2-D0.4-64C3-64C3-P2-D0.4-128-D0.4-10".into(), "valid"),
                    v("32C5S2 for P2", "32C5-32C5S2s-D0.4-64C5-64C5S2s-D0.4-128-D0.4-10".into(), "valid"),
                    v("both + batch norm", FINAL_NET.into(), "valid"),
                    aug,
                ],
            )
        }
        "loss" => {
            let mut mse = v("softmax + MSE", "32C5-P2-D0.4-64C5-P2-D0.4-128-D0.4-10".into(), "valid");
            mse.loss = "mean_squared_error".into();
            (
                "Softmax with cross-entropy or with mean squared error: which learns faster?",
                vec![v("softmax + cross-entropy", "32C5-P2-D0.4-64C5-P2-D0.4-128-D0.4-10".into(), "valid"), mse],
            )
        }
        "batch-size" => (
            "Which batch size: accuracy per epoch and per second?",
            [16, 32, 64, 128, 256, 512]
                .iter()
                .map(|&b| {
                    let mut x = v(&format!("batch {b}"), "32C5-P2-D0.4-64C5-P2-D0.4-128-D0.4-10".into(), "valid");
                    x.batch_size = Some(b);
                    x
                })
                .collect(),
        ),
        other => {
            return Err(LabError::Config(format!(
                "unknown experiment '{other}': expected one of {}, a comma-separated list of notations, or a .toml file",
                FAMILIES.join(", ")
            )))
        }
    };
    Ok(Family {
        name: name.into(),
        question: question.into(),
        variants,
    })
}

/// A family from a comma-separated list of notations.
pub fn from_notations(list: &str, padding: &str) -> Family {
    Family {
        name: "custom".into(),
        question: String::new(),
        variants: list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Variant::new(s, s, padding))
            .collect(),
    }
}

/// A family from a TOML file (`name`, `question`, and `[[variant]]` tables
/// with `name`, `notation`, optional `padding`, `loss`, `batch_size`, `augment`).
pub fn from_toml(path: &std::path::Path) -> Result<Family> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::error::io_err(path, e))?;
    let f: Family =
        toml::from_str(&text).map_err(|e| LabError::Config(format!("{}: {e}", path.display())))?;
    if f.variants.is_empty() {
        return Err(LabError::Config(format!(
            "{}: no [[variant]] tables",
            path.display()
        )));
    }
    Ok(f)
}

/// Budget and settings shared by every variant.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentConfig {
    /// Epochs per variant.
    pub epochs: usize,
    /// Batch size (unless a variant overrides it).
    pub batch_size: usize,
    /// Training images (the first ones of MNIST's training set).
    pub train_size: usize,
    /// Validation images (the last ones of MNIST's training set).
    pub val_size: usize,
    /// Test images (the first ones of MNIST's test set).
    pub test_size: usize,
    /// Seed of every variant (weights, shuffles, dropout, augmentation).
    pub seed: u64,
    /// Output.
    pub verbosity: Verbosity,
    /// The processes sharing the work: variants and ensemble members are
    /// spread over MPI ranks (`i mod size`), each trained by one.
    pub ranks: Ranks,
    /// The arithmetic every variant trains in.
    pub precision: Precision,
}

impl ExperimentConfig {
    /// The defaults: 3 epochs on 10,000 images, 2,000 for validation, all
    /// 10,000 test images, batch 64 (a few minutes per family on 2 cores).
    pub fn quick() -> Self {
        ExperimentConfig {
            epochs: 3,
            batch_size: 64,
            train_size: 10_000,
            val_size: 2_000,
            test_size: 10_000,
            seed: 42,
            verbosity: Verbosity::EpochLines,
            ranks: Ranks::default(),
            precision: Precision::Fp32,
        }
    }
    /// The kernel's budget: 20 epochs on 54,000 images, 6,000 for validation, batch 64.
    pub fn full() -> Self {
        ExperimentConfig {
            epochs: 20,
            train_size: 54_000,
            val_size: 6_000,
            ..Self::quick()
        }
    }
}

/// What one variant achieved.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantResult {
    /// Variant name.
    pub name: String,
    /// Its notation.
    pub notation: String,
    /// Parameters.
    pub params: usize,
    /// Best validation accuracy over the epochs.
    pub best_val_accuracy: f32,
    /// Training accuracy of the last epoch.
    pub train_accuracy: f32,
    /// Test accuracy after the last epoch.
    pub test_accuracy: f32,
    /// Mean seconds per epoch.
    pub seconds_per_epoch: f32,
    /// Per-epoch history.
    pub history: History,
}

/// Trains one variant and measures it.
pub fn run_variant(
    v: &Variant,
    data: &Mnist,
    cfg: &ExperimentConfig,
) -> Result<(Model, VariantResult)> {
    let seq = v.model()?;
    let loss = v.loss()?;
    let n = data.train.len();
    if cfg.train_size + cfg.val_size > n {
        return Err(LabError::Config(format!(
            "train size {} + validation size {} exceed the {n} training images",
            cfg.train_size, cfg.val_size
        )));
    }
    let split = TrainData {
        train: data.train.range(0, cfg.train_size).into(),
        validation: Some(data.train.range(n - cfg.val_size, n).into()),
        augment: v.augment.clone().unwrap_or_default(),
    };
    let mut model = seq.build(cfg.seed)?;
    model.compile(settings::optimizer(), loss);
    let fit = FitConfig::new()
        .with_epochs(cfg.epochs)
        .with_batch_size(v.batch_size.unwrap_or(cfg.batch_size))
        .with_schedule(settings::schedule())
        .with_verbosity(cfg.verbosity)
        .with_precision(cfg.precision);
    let trained = convnet_run::train(Start::fresh(model), &split, &Pass::new(fit), &mut [])?;
    let (mut model, history) = (trained.model, trained.history);
    let test_eval = convnet_run::evaluate(&mut model, &data.test.take(cfg.test_size), 500)?;
    let last = history.epochs.last().expect("at least one epoch");
    let result = VariantResult {
        name: v.name.clone(),
        notation: v.notation.clone(),
        params: {
            let (t, nt) = model.param_counts();
            t + nt
        },
        best_val_accuracy: history
            .epochs
            .iter()
            .filter_map(|e| e.val_accuracy)
            .fold(0.0, f32::max),
        train_accuracy: last.accuracy,
        test_accuracy: test_eval.accuracy,
        seconds_per_epoch: history.epochs.iter().map(|e| e.seconds).sum::<f32>()
            / history.epochs.len() as f32,
        history: history.clone(),
    };
    Ok((model, result))
}

/// Runs every variant of a family in order.
pub fn run_family(
    family: &Family,
    data: &Mnist,
    cfg: &ExperimentConfig,
) -> Result<Vec<VariantResult>> {
    run_family_resumable(family, data, cfg, &[], &mut |_| Ok(()))
}

/// The budget a result was obtained with: results are reused only under
/// the same one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetKey {
    /// Epochs per variant.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Training, validation and test images.
    pub sizes: [usize; 3],
    /// Seed.
    pub seed: u64,
    /// The arithmetic (fp32 for results that predate it).
    #[serde(default)]
    pub precision: Precision,
}

impl ExperimentConfig {
    /// What identifies this budget.
    pub fn key(&self) -> BudgetKey {
        BudgetKey {
            epochs: self.epochs,
            batch_size: self.batch_size,
            sizes: [self.train_size, self.val_size, self.test_size],
            seed: self.seed,
            precision: self.precision,
        }
    }
}

/// A family's finished variants under one budget (`progress.json`), so
/// that a long family (the kernel's full budget) survives a stopped session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Progress {
    /// The budget.
    pub budget: BudgetKey,
    /// The variants finished so far, in the family's order.
    pub results: Vec<VariantResult>,
}

/// [`run_family`] that reuses `previous` results (a variant with the same
/// name and notation, trained under the same budget: the caller checks the
/// budget) and calls `save` with all results so far after each variant.
pub fn run_family_resumable(
    family: &Family,
    data: &Mnist,
    cfg: &ExperimentConfig,
    previous: &[VariantResult],
    save: &mut dyn FnMut(&[VariantResult]) -> Result<()>,
) -> Result<Vec<VariantResult>> {
    let talk = cfg.verbosity != Verbosity::Silent && cfg.ranks.rank() == 0;
    let n = family.variants.len();
    let mut out: Vec<Option<VariantResult>> = vec![None; n];
    // Rounds of one variant per rank (variant i on rank i mod size); after
    // each round every rank has every result, and `save` runs.
    let size = cfg.ranks.size();
    for round in (0..n).step_by(size) {
        let mut mine = None;
        for (i, v) in family.variants.iter().enumerate().skip(round).take(size) {
            if let Some(r) = previous
                .iter()
                .find(|r| r.name == v.name && r.notation == v.notation)
            {
                if talk {
                    eprintln!("[{}/{n}] {}: done in an earlier run", i + 1, v.name);
                }
                out[i] = Some(r.clone());
            } else if cfg.ranks.owns(i) {
                if cfg.verbosity != Verbosity::Silent {
                    let on = if size > 1 {
                        format!(" (rank {})", cfg.ranks.rank())
                    } else {
                        String::new()
                    };
                    eprintln!("[{}/{n}] {}: {}{on}", i + 1, v.name, v.notation);
                }
                mine = Some((i, run_variant(v, data, cfg)?.1));
            }
        }
        if share_results(&cfg.ranks, mine, &mut out)? > 0 {
            save(&out.iter().flatten().cloned().collect::<Vec<_>>())?;
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Sends every rank's result of a round to every rank (one broadcast per
/// rank); returns how many variants the round trained.
fn share_results(
    ranks: &Ranks,
    mine: Option<(usize, VariantResult)>,
    out: &mut [Option<VariantResult>],
) -> Result<usize> {
    if ranks.size() == 1 {
        let trained = usize::from(mine.is_some());
        if let Some((i, r)) = mine {
            out[i] = Some(r);
        }
        return Ok(trained);
    }
    let mut trained = 0;
    let bytes = serde_json::to_vec(&mine).expect("serializable");
    for root in 0..ranks.size() {
        let mut b = if root == ranks.rank() {
            bytes.clone()
        } else {
            Vec::new()
        };
        ranks.broadcast_bytes(&mut b, root);
        let got: Option<(usize, VariantResult)> = serde_json::from_slice(&b)
            .map_err(|e| LabError::Config(format!("rank {root} sent an unreadable result: {e}")))?;
        if let Some((i, r)) = got {
            out[i] = Some(r);
            trained += 1;
        }
    }
    Ok(trained)
}

/// The comparison table in Markdown.
pub fn markdown_table(
    family: &Family,
    results: &[VariantResult],
    cfg: &ExperimentConfig,
) -> String {
    let mut s = format!("## Experiment `{}`\n\n", family.name);
    if !family.question.is_empty() {
        s.push_str(&format!("{}\n\n", family.question));
    }
    s.push_str(&format!(
        "Budget: {} epochs, batch {}, {} training / {} validation / {} test images, seed {}; Adam, lr = 1e-3 x 0.95^epoch.\n\n",
        cfg.epochs, cfg.batch_size, cfg.train_size, cfg.val_size, cfg.test_size, cfg.seed
    ));
    s.push_str("| variant | notation | params | best val acc | train acc | test acc | s/epoch |\n|---|---|---|---|---|---|---|\n");
    for r in results {
        s.push_str(&format!(
            "| {} | `{}` | {} | {:.2} % | {:.2} % | {:.2} % | {:.1} |\n",
            r.name,
            r.notation,
            convnet_nn::summary::thousands(r.params),
            100.0 * r.best_val_accuracy,
            100.0 * r.train_accuracy,
            100.0 * r.test_accuracy,
            r.seconds_per_epoch
        ));
    }
    s
}

/// The comparison table as CSV.
pub fn csv_table(results: &[VariantResult]) -> String {
    let mut s = String::from("variant,notation,params,best_val_accuracy,train_accuracy,test_accuracy,seconds_per_epoch\n");
    for r in results {
        s.push_str(&format!(
            "\"{}\",\"{}\",{},{},{},{},{}\n",
            r.name,
            r.notation,
            r.params,
            r.best_val_accuracy,
            r.train_accuracy,
            r.test_accuracy,
            r.seconds_per_epoch
        ));
    }
    s
}
