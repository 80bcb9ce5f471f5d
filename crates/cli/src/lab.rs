//! `convnet experiment` and `convnet ensemble`.

use crate::error::{CliError, CliResult};
use clap::Args;
use convnet_data::Mnist;
use convnet_lab::experiment::{self, ExperimentConfig, Family, Variant};
use convnet_lab::plot::{line_chart, Series};
use convnet_lab::LabError;
use convnet_nn::save::write_atomic;
use convnet_nn::Verbosity;
use convnet_run::source::bundled_mnist;
use std::path::{Path, PathBuf};

impl From<LabError> for CliError {
    fn from(e: LabError) -> Self {
        match e {
            LabError::Nn(n) => n.into(),
            LabError::Data(d) => d.into(),
            LabError::Run(r) => r.into(),
            LabError::Config(m) => CliError::usage(m),
            LabError::Io { .. } => CliError::runtime(e.to_string()),
        }
    }
}

/// Budget options shared by `experiment` and `ensemble`.
#[derive(Args, Clone)]
pub struct Budget {
    /// Epochs per net [default: 3; --full: 20].
    #[arg(long)]
    epochs: Option<usize>,
    /// Training images, the first of MNIST's 60,000 [default: 10000; --full: 54000].
    #[arg(long)]
    train_size: Option<usize>,
    /// Validation images, the last of MNIST's 60,000 [default: 2000; --full: 6000].
    #[arg(long)]
    val_size: Option<usize>,
    /// Test images, the first of MNIST's 10,000 test images.
    #[arg(long, default_value_t = 10_000)]
    test_size: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The kernel's budget: 20 epochs on 54,000 images with 6,000 for validation.
    #[arg(long)]
    full: bool,
    /// Folder with the MNIST IDX files (default: the bundled copy).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print nothing but the results.
    #[arg(long, short)]
    quiet: bool,
    /// fp32, or bf16 (mixed_bfloat16): every net trains with bf16 convolution operands and
    /// fp32 sums, on AVX512-BF16 (elsewhere a notice and fp32).
    #[arg(long, default_value = "fp32")]
    precision: String,
}

impl Budget {
    fn config(&self) -> CliResult<ExperimentConfig> {
        let mut c = if self.full {
            ExperimentConfig::full()
        } else {
            ExperimentConfig::quick()
        };
        if let Some(e) = self.epochs {
            c.epochs = e;
        }
        if let Some(t) = self.train_size {
            c.train_size = t;
        }
        if let Some(v) = self.val_size {
            c.val_size = v;
        }
        c.test_size = self.test_size;
        c.batch_size = self.batch_size;
        c.seed = self.seed;
        c.ranks = convnet_nn::Ranks(crate::dist::world());
        c.verbosity = if self.quiet {
            Verbosity::Silent
        } else {
            Verbosity::EpochLines
        };
        c.precision = crate::precision(&self.precision)?;
        Ok(c)
    }

    fn data(&self) -> CliResult<Mnist> {
        Ok(Mnist::load(
            &self.data_dir.clone().unwrap_or_else(bundled_mnist),
        )?)
    }
}

/// Options of `convnet experiment`.
#[derive(Args)]
pub struct ExperimentArgs {
    /// conv-pool-pairs, feature-maps, dense-size, dropout, advanced, loss, batch-size;
    /// or a comma-separated list of notations; or a .toml family file.
    name: String,
    /// Default padding of the notations of a custom list.
    #[arg(long, default_value = "same")]
    padding: String,
    /// Folder for the results (a sub-folder per experiment).
    #[arg(long, default_value = "experiments")]
    out: PathBuf,
    /// Keep the variants an earlier, stopped run of this family finished
    /// under the same budget (OUT/NAME/progress.json) and train the rest.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    budget: Budget,
}

/// Resolves a family argument.
pub fn family(name: &str, padding: &str) -> CliResult<Family> {
    if name.to_ascii_lowercase().ends_with(".toml") {
        return Ok(experiment::from_toml(Path::new(name))?);
    }
    if experiment::FAMILIES.contains(&name) {
        return Ok(experiment::builtin(name)?);
    }
    if name.contains('C') || name.contains(',') {
        let f = experiment::from_notations(name, padding);
        for v in &f.variants {
            v.model()?;
        }
        return Ok(f);
    }
    Ok(experiment::builtin(name)?)
}

/// `convnet experiment`.
pub fn run_experiment(a: ExperimentArgs) -> CliResult<()> {
    crate::set_threads(a.budget.threads)?;
    let fam = family(&a.name, &a.padding)?;
    for v in &fam.variants {
        v.model()?;
    }
    let cfg = a.budget.config()?;
    let data = a.budget.data()?;
    let dir = a.out.join(&fam.name);
    let progress_file = dir.join("progress.json");
    let previous = match (a.resume, std::fs::read(&progress_file)) {
        (true, Ok(bytes)) => {
            let p: experiment::Progress = serde_json::from_slice(&bytes).map_err(|e| {
                CliError::usage(format!(
                    "{}: invalid progress file: {e}",
                    progress_file.display()
                ))
            })?;
            if p.budget != cfg.key() {
                return Err(CliError::usage(format!(
                    "{}: the finished variants used another budget ({:?}); run without --resume or with that budget",
                    progress_file.display(),
                    p.budget
                )));
            }
            p.results
        }
        _ => Vec::new(),
    };
    let key = cfg.key();
    let root = cfg.ranks.rank() == 0;
    let mut save = |done: &[experiment::VariantResult]| -> convnet_lab::Result<()> {
        if !root {
            return Ok(());
        }
        let p = experiment::Progress {
            budget: key.clone(),
            results: done.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&p).expect("serializable");
        convnet_nn::save::write_atomic(&progress_file, &json)?;
        Ok(())
    };
    let results = experiment::run_family_resumable(&fam, &data, &cfg, &previous, &mut save)?;
    if !root {
        return Ok(()); // rank 0 writes the tables
    }
    let md = experiment::markdown_table(&fam, &results, &cfg);
    println!("{md}");
    write_atomic(&dir.join("results.md"), md.as_bytes())?;
    write_atomic(
        &dir.join("results.csv"),
        experiment::csv_table(&results).as_bytes(),
    )?;
    let json = serde_json::to_vec_pretty(&results).expect("serializable");
    write_atomic(&dir.join("results.json"), &json)?;
    let series: Vec<Series<'_>> = results
        .iter()
        .map(|r| Series {
            label: &r.name,
            points: r
                .history
                .epochs
                .iter()
                .filter_map(|e| e.val_accuracy.map(|v| (e.epoch as f32, v)))
                .collect(),
        })
        .collect();
    let png = dir.join("val_accuracy.png");
    line_chart(
        &png,
        &format!("{}: validation accuracy", fam.name),
        "epoch",
        "validation accuracy",
        &series,
        (900, 560),
    )?;
    println!(
        "Results written to {} (results.md, results.csv, results.json, val_accuracy.png)",
        dir.display()
    );
    Ok(())
}

/// Options of `convnet ensemble`.
#[derive(Args)]
pub struct EnsembleArgs {
    /// The members' architecture (notation).
    #[arg(default_value = experiment::FINAL_NET)]
    model: String,
    /// Number of nets.
    #[arg(long, short, default_value_t = 5)]
    nets: usize,
    /// Default padding of the notation.
    #[arg(long, default_value = "valid")]
    padding: String,
    /// Train with the kernel's augmentation (rotation 10, zoom 0.1, shifts 0.1).
    #[arg(long)]
    augment: bool,
    /// Folder for the saved nets.
    #[arg(long, default_value = "ensembles/ensemble")]
    out: PathBuf,
    /// Load the members an earlier, stopped run already saved in --out
    /// instead of training them again.
    #[arg(long)]
    resume: bool,
    /// Evaluate the ensemble saved in this folder (net-01, net-02, ...) on
    /// the test images instead of training one, e.g. models/mnist-ensemble.
    #[arg(long, value_name = "DIR")]
    evaluate: Option<PathBuf>,
    /// Test-time augmentation: average each net's outputs over N views of
    /// every test image (the original and N - 1 augmented copies).
    #[arg(long, default_value_t = 1)]
    tta: usize,
    #[command(flatten)]
    budget: Budget,
}

/// The members' table, the mean and sd, the ensemble and its growth.
fn members_report(r: &convnet_lab::ensemble::EnsembleResult, seconds: bool) -> String {
    let mut report = String::from(if seconds {
        "| net | test accuracy | training seconds |\n|---|---|---|\n"
    } else {
        "| net | test accuracy |\n|---|---|\n"
    });
    for (i, m) in r.members.iter().enumerate() {
        let secs = match (r.loaded[i], r.seconds[i]) {
            (true, s) if s > 0.0 => format!("{s:.0} (earlier run)"),
            (true, _) => "loaded (earlier run)".to_string(),
            (false, s) => format!("{s:.0}"),
        };
        let secs = if seconds {
            format!(" {secs} |")
        } else {
            String::new()
        };
        report.push_str(&format!("| net {} | {:.2} % |{secs}\n", i + 1, 100.0 * m));
    }
    let mean = r.members.iter().sum::<f32>() / r.members.len() as f32;
    let var = r.members.iter().map(|m| (m - mean).powi(2)).sum::<f32>()
        / (r.members.len().max(2) - 1) as f32;
    let total = if seconds {
        format!(" {:.0} in all |", r.seconds.iter().sum::<f64>())
    } else {
        String::new()
    };
    let blank = if seconds { " |" } else { "" };
    report.push_str(&format!(
        "| mean of nets (sd) | {:.2} % ({:.3} pp) |{blank}\n| **ensemble** | **{:.2} %** |{total}\n",
        100.0 * mean,
        100.0 * var.sqrt(),
        100.0 * r.ensemble,
    ));
    report.push_str("\nThe ensemble's accuracy as it grows (the first k nets, summed softmax):\n\n| nets | test accuracy |\n|---|---|\n");
    for (k, acc) in &r.growth {
        report.push_str(&format!("| {k} | {:.2} % |\n", 100.0 * acc));
    }
    report
}

/// `convnet ensemble --evaluate DIR`.
fn evaluate_saved(a: &EnsembleArgs, dir: &std::path::Path) -> CliResult<()> {
    let mut models = convnet_lab::ensemble::load_members(dir)?;
    let precision = crate::precision(&a.budget.precision)?;
    for m in &mut models {
        m.set_precision(precision);
    }
    let data = a.budget.data()?;
    let test = data.test.take(a.budget.test_size);
    let r = convnet_lab::ensemble::evaluate_members(&mut models, &test, a.tta)?;
    let tta = if a.tta > 1 {
        format!(", test-time augmentation: {} views", a.tta)
    } else {
        String::new()
    };
    println!(
        "Ensemble in {}: {} nets, test on {} images{tta}:\n\n{}",
        dir.display(),
        models.len(),
        test.len(),
        members_report(&r, false)
    );
    Ok(())
}

/// `convnet ensemble`.
pub fn run_ensemble(a: EnsembleArgs) -> CliResult<()> {
    crate::set_threads(a.budget.threads)?;
    if a.tta == 0 {
        return Err(CliError::usage(
            "--tta must be at least 1 (1: no augmentation)",
        ));
    }
    if let Some(dir) = &a.evaluate {
        return evaluate_saved(&a, dir);
    }
    if a.nets == 0 {
        return Err(CliError::usage("--nets must be at least 1"));
    }
    let mut v = Variant::new("member", a.model.clone(), &a.padding);
    v.model()?;
    if a.augment {
        v.augment = Some(experiment::kernel_augmentation());
    }
    let mut cfg = a.budget.config()?;
    // Members train on 90 % bags of the whole training pool.
    if a.budget.train_size.is_none() {
        cfg.train_size = 60_000;
    }
    let data = a.budget.data()?;
    let r = convnet_lab::ensemble::run_ensemble(&v, a.nets, &data, &cfg, &a.out, a.resume, a.tta)?;
    if cfg.ranks.rank() != 0 {
        return Ok(()); // rank 0 combines the members and writes the report
    }
    let report = format!(
        "Ensemble of {} x `{}` ({} epochs each, 90 % bags of {} images{}), test on {} images{}:\n\n{}",
        a.nets,
        a.model,
        cfg.epochs,
        cfg.train_size,
        if a.augment { ", augmented" } else { "" },
        cfg.test_size,
        if a.tta > 1 { format!(", test-time augmentation: {} views", a.tta) } else { String::new() },
        members_report(&r, true)
    );
    println!("{report}");
    write_atomic(&a.out.join("ensemble.md"), report.as_bytes())?;
    let json = serde_json::json!({
        "model": a.model,
        "epochs": cfg.epochs,
        "tta_views": a.tta,
        "members": r.members,
        "seconds": r.seconds,
        "growth": r.growth.iter().map(|(k, acc)| serde_json::json!({"nets": k, "accuracy": acc})).collect::<Vec<_>>(),
        "ensemble_accuracy": r.ensemble,
    });
    let json = serde_json::to_vec_pretty(&json).expect("serializable");
    write_atomic(&a.out.join("ensemble.json"), &json)?;
    Ok(())
}
