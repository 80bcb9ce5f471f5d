//! `convnet export` and `convnet import`: ONNX files in and out of run folders.

use crate::error::{CliError, CliResult};
use clap::Args;
use convnet_nn::{Loss, Model, OptimizerConfig, Schedule};
use convnet_onnx::OnnxError;
use convnet_run::folder::{RunConfig, RUN_FILE};
use std::path::PathBuf;

impl From<OnnxError> for CliError {
    fn from(e: OnnxError) -> Self {
        match e {
            OnnxError::Nn(e) => e.into(),
            // Reading the model or its external data: bad input, exit 2,
            // as for every file a command reads.
            OnnxError::Io { .. } => CliError::usage(e.to_string()),
            _ => CliError::usage(e.to_string()),
        }
    }
}

/// Options of `convnet export`.
#[derive(Args)]
pub struct ExportArgs {
    /// A run folder (or any folder with model.json and weights.safetensors).
    run: PathBuf,
    /// The ONNX file to write (opset 13, input NCHW).
    #[arg(long)]
    onnx: PathBuf,
}

/// `convnet export`.
pub fn export(a: ExportArgs) -> CliResult<()> {
    let model = Model::load(&a.run)?;
    convnet_onnx::export(&model, &a.onnx)?;
    let s = model.spec();
    let input = match s.input_shape.as_slice() {
        [h, w, c] => format!("[N, {c}, {h}, {w}] (NCHW)"),
        other => format!(
            "[N, {}]",
            other
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    println!(
        "Exported {} ({} layers) to {}: ONNX opset {}, input 'input' {input}",
        a.run.display(),
        s.layers.len(),
        a.onnx.display(),
        convnet_onnx::OPSET
    );
    Ok(())
}

/// Options of `convnet import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The ONNX file.
    file: PathBuf,
    /// The run folder to write [default: runs/<file stem>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data source that `evaluate` and `train --resume` use for this run
    /// (as `train --data`) [default: mnist for 28x28x1 inputs, else none].
    #[arg(long)]
    data: Option<String>,
    /// Folder of the data files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A text file with one class name per line, in output order (e.g.
    /// ImageNet's 1,000 names), shown by predict, evaluate and explain.
    #[arg(long)]
    class_names: Option<PathBuf>,
}

/// `convnet import`.
pub fn import(a: ImportArgs) -> CliResult<()> {
    let model = convnet_onnx::import(&a.file)?;
    let outputs: usize = model.output_shape().iter().product();
    let classes = match &a.class_names {
        Some(p) => Some(convnet_run::source::class_names(
            &p.to_string_lossy(),
            outputs,
        )?),
        None => None,
    };
    let out = match &a.out {
        Some(o) => o.clone(),
        None => {
            let stem = a
                .file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "imported".into());
            PathBuf::from("runs").join(stem)
        }
    };
    if out.join(RUN_FILE).exists() {
        return Err(CliError::usage(format!(
            "{} already holds a run; pick another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::runtime(format!("{}: {e}", out.display())))?;
    let spec = model.spec().clone();
    let data = a.data.clone().unwrap_or_else(|| {
        if spec.input_shape == [28, 28, 1] {
            "mnist".into()
        } else {
            "none".into()
        }
    });
    let loss = if model.head() == convnet_nn::Activation::Sigmoid && outputs == 1 {
        Loss::BinaryCrossentropy
    } else {
        Loss::SparseCategoricalCrossentropy
    };
    let cfg = RunConfig {
        model_arg: format!("import {}", a.file.display()),
        model: spec,
        data,
        data_dir: a.data_dir.clone(),
        limit: None,
        epochs: 0,
        batch_size: 32,
        optimizer: OptimizerConfig::adam(),
        schedule: Schedule::Constant,
        loss,
        l2: 0.0,
        validation_split: 0.0,
        early_stopping: None,
        reduce_lr_on_plateau: None,
        augment: Default::default(),
        classes,
        seed: 42,
        folder: Default::default(),
        finetune: None,
        precision: Default::default(),
    };
    model.save(&out)?;
    cfg.save(&out)?;
    println!("{}", model.spec().summary()?);
    println!(
        "Imported {} into {} (model.json, weights.safetensors, run.json)",
        a.file.display(),
        out.display()
    );
    Ok(())
}
