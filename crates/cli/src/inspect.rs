//! `convnet evaluate` and `convnet summary`.

use crate::error::{CliError, CliResult};
use crate::model_arg::{parse_input_shape, resolve_model, DEFAULT_MNIST_MODEL};
use clap::Args;
use convnet_run::folder::RunConfig;
use convnet_run::settings::{parse_activation, parse_padding};
use convnet_run::source::{self as data_arg, Loaded};
use convnet_run::{dataset, outputs_of};
use std::path::{Path, PathBuf};

/// Options of `convnet evaluate`.
#[derive(Args)]
pub struct EvaluateArgs {
    /// A run folder written by `convnet train`.
    run: PathBuf,
    /// Data to evaluate on (default: the run's own data source, test split).
    #[arg(long)]
    data: Option<String>,
    /// Folder of the data files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Test-time augmentation: average over N views of each test image (the
    /// original and N - 1 copies augmented as the run was trained, or with
    /// small shifts, rotations and zooms).
    #[arg(long, default_value_t = 1)]
    tta: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// fp32, or bf16 (mixed_bfloat16): convolutions with bf16 operands and fp32 sums, on AVX512-BF16.
    #[arg(long, default_value = "fp32")]
    precision: String,
}

/// Options of `convnet summary`.
#[derive(Args)]
pub struct SummaryArgs {
    /// Model: a built-in net (resnet18, resnet20, vgg16, vgg16-bn, googlenet, ...), a notation
    /// (e.g. 32C5-P2-64C5-P2-128-D0.4-10), a .json/.toml model file, or a run folder.
    #[arg(default_value = DEFAULT_MNIST_MODEL)]
    model: String,
    /// Input shape HxWxC when the notation does not start with one
    /// [default: 28x28x1; a built-in net's own, e.g. 224x224x3].
    #[arg(long)]
    input: Option<String>,
    /// Output classes of a built-in net [default: its own, 1000 or 10].
    #[arg(long)]
    classes: Option<usize>,
    /// Default padding of conv layers in the notation: same or valid.
    #[arg(long, default_value = "same")]
    padding: String,
    /// Activation of the notation's conv and hidden dense layers: relu, relu6, swish, tanh, ...
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Also show how each output size follows from floor((N + 2P - M) / S) + 1.
    #[arg(long)]
    formulas: bool,
}

/// `convnet evaluate`.
pub fn evaluate(a: EvaluateArgs) -> CliResult<()> {
    crate::set_threads(a.threads)?;
    let precision = crate::precision(&a.precision)?;
    let (cfg, mut model) = convnet_run::open(&a.run)?;
    model.set_precision(precision);
    model.compile(cfg.optimizer.clone(), cfg.loss);
    let data = a.data.as_deref().unwrap_or(&cfg.data);
    let dir = a.data_dir.as_deref().or(cfg.data_dir.as_deref());
    let loaded: Loaded = data_arg::load(
        data,
        dir,
        Some(&cfg.model.input_shape),
        cfg.seed,
        &cfg.folder,
    )?;
    let test = loaded
        .test
        .ok_or_else(|| CliError::usage(format!("--data '{data}' has no test split")))?;
    let outputs = outputs_of(&model);
    if a.tta > 1 {
        // Accuracy of the averaged probabilities (classification only).
        let aug = convnet_run::tta_config(&cfg.augment);
        let (p, labels) = convnet_run::predict_images(
            &mut model,
            &test,
            Some((&aug, a.tta, convnet_lab::ensemble::TTA_SEED)),
            a.batch_size,
        )?;
        let pred = convnet_lab::report::predicted_classes(&p);
        let hits = pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
        let acc = hits as f32 / labels.len().max(1) as f32;
        println!(
            "accuracy {acc:.4} ({:.2} %) on {} images, test-time augmentation: {} views",
            acc * 100.0,
            labels.len(),
            a.tta
        );
        return Ok(());
    }
    if a.tta == 0 {
        return Err(CliError::usage(
            "--tta must be at least 1 (1: no augmentation)",
        ));
    }
    let ds = dataset(&test, cfg.loss, outputs)?;
    let e = model.evaluate(&ds, a.batch_size)?;
    println!(
        "loss {:.4} - accuracy {:.4} ({:.2} %) on {} images",
        e.loss,
        e.accuracy,
        e.accuracy * 100.0,
        test.len()
    );
    Ok(())
}

/// `convnet summary`.
pub fn summary(a: SummaryArgs) -> CliResult<()> {
    let seq = if Path::new(&a.model)
        .join(convnet_run::folder::RUN_FILE)
        .exists()
    {
        RunConfig::load(Path::new(&a.model))?.model
    } else {
        let input = match (&a.input, convnet_nn::zoo::defaults(&a.model)) {
            (Some(s), _) => parse_input_shape(s)?,
            (None, Some((shape, _))) => shape,
            (None, None) => vec![28, 28, 1],
        };
        let notation = convnet_nn::NotationOptions::default()
            .with_padding(parse_padding(&a.padding)?)
            .with_activation(parse_activation(&a.activation)?);
        resolve_model(&a.model, &input, notation, a.classes)?
    };
    println!("{}", seq.summary()?.with_formulas(a.formulas));
    Ok(())
}
