//! `convnet predict`: labels and probabilities for image files, folders of
//! images, or a Kaggle test CSV, from a trained run.

use crate::error::{CliError, CliResult};
use crate::run::RunConfig;
use clap::Args;
use convnet_data::folder::list_images;
use convnet_data::{load_images, read_kaggle_csv, submission_csv};
use convnet_nn::save::write_atomic;
use convnet_nn::Model;
use convnet_tensor::Tensor;
use std::path::PathBuf;

/// Options of `convnet predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// A run folder written by `convnet train`, or an ensemble's folder
    /// (net-01, net-02, ...; e.g. models/mnist-ensemble), whose members'
    /// probabilities are averaged.
    run: PathBuf,
    /// Image files, or folders whose images (and class sub-folders' images) are all predicted.
    inputs: Vec<PathBuf>,
    /// A Kaggle test CSV (pixel0..pixelN, optional label column) instead of images.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write `input,label,class,probabilities...` rows to this CSV file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write a Kaggle submission (`ImageId,Label`) to this file.
    #[arg(long)]
    submission: Option<PathBuf>,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Test-time augmentation: average over N views of each image (the
    /// original and N - 1 copies augmented as the run was trained, or with
    /// small shifts, rotations and zooms).
    #[arg(long, default_value_t = 1)]
    tta: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Image files named by the arguments, folders expanded (one level of class sub-folders too).
fn expand(inputs: &[PathBuf]) -> CliResult<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            files.extend(list_images(p)?);
            let mut subs: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?
                .flatten()
                .map(|e| e.path())
                .filter(|q| q.is_dir())
                .collect();
            subs.sort();
            for s in subs {
                files.extend(list_images(&s)?);
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(CliError::usage(format!(
                "{}: no such file or folder",
                p.display()
            )));
        }
    }
    Ok(files)
}

/// `convnet predict`.
pub fn predict(a: PredictArgs) -> CliResult<()> {
    crate::set_threads(a.threads)?;
    let ensemble = !a.run.join(crate::run::RUN_FILE).exists()
        && convnet_lab::ensemble::member_dir(&a.run, 0)
            .join("model.json")
            .exists();
    let (mut models, classes, augment) = if ensemble {
        let models = convnet_lab::ensemble::load_members(&a.run)?;
        (models, None, convnet_data::AugmentConfig::new())
    } else {
        let cfg = RunConfig::load(&a.run)?;
        (vec![Model::load(&a.run)?], cfg.classes, cfg.augment)
    };
    if a.tta == 0 {
        return Err(CliError::usage(
            "--tta must be at least 1 (1: no augmentation)",
        ));
    }
    let shape = models[0].input_shape().to_vec();
    let (names, x): (Vec<String>, Tensor) = match (&a.csv, a.inputs.is_empty()) {
        (Some(csv), true) => {
            let c = read_kaggle_csv(csv)?;
            if c.images.image_shape()[..] != shape[..] {
                return Err(CliError::usage(format!(
                    "{}: images are {:?} but the model expects {:?}",
                    csv.display(),
                    c.images.image_shape(),
                    shape
                )));
            }
            let names = (1..=c.images.len()).map(|i| i.to_string()).collect();
            (names, c.images.images_tensor()?)
        }
        (None, false) => {
            if shape.len() != 3 {
                return Err(CliError::usage(format!(
                    "the model takes inputs {shape:?}, not images"
                )));
            }
            let files = expand(&a.inputs)?;
            if files.is_empty() {
                return Err(CliError::usage("no image files found in the given inputs"));
            }
            let x = load_images(&files, shape[0], shape[1], shape[2])?;
            (files.iter().map(|f| f.display().to_string()).collect(), x)
        }
        _ => {
            return Err(CliError::usage(
                "give either image files/folders or --csv FILE",
            ))
        }
    };
    let tta = convnet_data::tta_config(&augment);
    let mut probs: Option<Tensor> = None;
    for m in &mut models {
        let p = convnet_data::predict_tta(
            m,
            &x,
            &tta,
            a.tta,
            convnet_lab::ensemble::TTA_SEED,
            a.batch_size,
        )?;
        match probs.as_mut() {
            None => probs = Some(p),
            Some(sum) => sum
                .data_mut()
                .iter_mut()
                .zip(p.data())
                .for_each(|(s, v)| *s += v),
        }
    }
    let mut probs = probs.expect("at least one model");
    let inv = 1.0 / models.len() as f32;
    probs.data_mut().iter_mut().for_each(|v| *v *= inv);
    let k = probs.sample_len().max(1);
    let labels = convnet_lab::report::predicted_classes(&probs);
    let class_name = |l: usize| {
        classes
            .as_ref()
            .and_then(|c| c.get(l).cloned())
            .unwrap_or_else(|| l.to_string())
    };
    let mut rows = String::from("input,label,class");
    for j in 0..k {
        rows.push_str(&format!(",p{j}"));
    }
    rows.push('\n');
    for (i, name) in names.iter().enumerate() {
        let p = &probs.data()[i * k..(i + 1) * k];
        let conf = if k == 1 {
            if labels[i] == 1 {
                p[0]
            } else {
                1.0 - p[0]
            }
        } else {
            p[labels[i]]
        };
        if a.output.is_none() && a.submission.is_none() {
            println!("{name}\t{}\t{:.4}", class_name(labels[i]), conf);
        }
        rows.push_str(&format!(
            "{},{},{}",
            name.replace(',', "_"),
            labels[i],
            class_name(labels[i])
        ));
        for v in p {
            rows.push_str(&format!(",{v}"));
        }
        rows.push('\n');
    }
    if let Some(out) = &a.output {
        write_atomic(out, rows.as_bytes())?;
        eprintln!("wrote {} predictions to {}", names.len(), out.display());
    }
    if let Some(sub) = &a.submission {
        write_atomic(sub, submission_csv(&labels).as_bytes())?;
        eprintln!(
            "wrote a submission of {} rows to {}",
            labels.len(),
            sub.display()
        );
    }
    Ok(())
}
