//! `convnet predict`: labels and probabilities for image files, folders of
//! images, or a Kaggle test CSV, from a trained run.

use crate::error::{CliError, CliResult};
use clap::Args;
use convnet_data::folder::list_images;
use convnet_data::{load_image, load_images, submission_csv, KaggleCsvReader, OnError};
use convnet_nn::save::write_atomic;
use convnet_nn::Model;
use convnet_tensor::Tensor;
use rayon::prelude::*;
use std::io::BufReader;
use std::path::PathBuf;

/// Bytes of input images held at once by default (see `--chunk`).
const CHUNK_BYTES: usize = 128 << 20;

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
    /// Write `input,label,class,p0,p1,...` rows (the probabilities; `out0,...`, the raw
    /// outputs, for a model that ends without softmax or sigmoid) to this CSV file.
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
    /// Inputs read and predicted at a time, so that memory holds one chunk
    /// of images, not all of them (default: 128 MiB of images, a multiple
    /// of the batch size). The predictions do not depend on it.
    #[arg(long)]
    chunk: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// An image file that cannot be read (or is larger than --max-pixels): fail (stop with an
    /// error naming it) or skip (warn naming it, predict the others).
    #[arg(long, default_value = "fail")]
    on_bad_image: String,
    /// fp32, or bf16 (mixed_bfloat16): convolutions with bf16 operands and fp32 sums, on AVX512-BF16.
    #[arg(long, default_value = "fp32")]
    precision: String,
}

/// Where the inputs come from, a chunk at a time.
enum Inputs {
    /// Image files, the next one to read, what to do with an unreadable one
    /// and how many were skipped.
    Files {
        files: Vec<PathBuf>,
        next: usize,
        on_bad: OnError,
        skipped: usize,
    },
    Csv(KaggleCsvReader<BufReader<std::fs::File>>),
}

impl Inputs {
    /// The next (up to) `n` inputs after the first `done`: their names and
    /// images `[n, H, W, C]`; `None` when all are done.
    fn next(
        &mut self,
        done: usize,
        n: usize,
        shape: &[usize],
    ) -> CliResult<Option<(Vec<String>, Tensor)>> {
        Ok(match self {
            Inputs::Files {
                files,
                next,
                on_bad: OnError::Fail,
                ..
            } => {
                let chunk = &files[*next..(*next + n).min(files.len())];
                if chunk.is_empty() {
                    return Ok(None);
                }
                *next += chunk.len();
                let x = load_images(chunk, shape[0], shape[1], shape[2])?;
                let names = chunk.iter().map(|f| f.display().to_string()).collect();
                Some((names, x))
            }
            Inputs::Files {
                files,
                next,
                on_bad: OnError::Skip,
                skipped,
            } => {
                // Whole chunks of readable images, the unreadable ones left out.
                let (mut names, mut data) = (Vec::new(), Vec::new());
                while names.len() < n && *next < files.len() {
                    let chunk = &files[*next..(*next + n - names.len()).min(files.len())];
                    *next += chunk.len();
                    let decoded: Vec<_> = chunk
                        .par_iter()
                        .map(|p| load_image(p, shape[0], shape[1], shape[2]))
                        .collect();
                    for (f, d) in chunk.iter().zip(decoded) {
                        match d {
                            Ok(v) => {
                                names.push(f.display().to_string());
                                data.extend(v);
                            }
                            Err(e) => {
                                eprintln!("warning: skipped {e}");
                                *skipped += 1;
                            }
                        }
                    }
                }
                if names.is_empty() {
                    return Ok(None);
                }
                let x = Tensor::from_vec(&[names.len(), shape[0], shape[1], shape[2]], data)
                    .expect("sizes agree");
                Some((names, x))
            }
            Inputs::Csv(r) => match r.next_chunk(n)? {
                None => None,
                Some(images) => {
                    let names = (done + 1..=done + images.len())
                        .map(|i| i.to_string())
                        .collect();
                    Some((names, images.images_tensor()?))
                }
            },
        })
    }
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
            // What is wrong with it: missing, a loop of symbolic links, no permission...
            let why = match std::fs::metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    "no such file or folder".to_string()
                }
                Err(e) => e.to_string(),
                Ok(_) => "not a file or folder".to_string(),
            };
            return Err(CliError::usage(format!("{}: {why}", p.display())));
        }
    }
    Ok(files)
}

/// The images or CSV rows `predict` reads, checked against the model's
/// input `shape`.
fn open_inputs(a: &PredictArgs, shape: &[usize]) -> CliResult<Inputs> {
    Ok(match (&a.csv, a.inputs.is_empty()) {
        (Some(csv), true) => {
            let r = KaggleCsvReader::open(csv)?;
            if r.image_shape()[..] != shape[..] {
                return Err(CliError::usage(format!(
                    "{}: images are {:?} but the model expects {:?}",
                    csv.display(),
                    r.image_shape(),
                    shape
                )));
            }
            Inputs::Csv(r)
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
            let on_bad = OnError::from_name(&a.on_bad_image).ok_or_else(|| {
                CliError::usage(format!(
                    "--on-bad-image '{}': expected skip or fail",
                    a.on_bad_image
                ))
            })?;
            Inputs::Files {
                files,
                next: 0,
                on_bad,
                skipped: 0,
            }
        }
        _ => {
            return Err(CliError::usage(
                "give either image files/folders or --csv FILE",
            ))
        }
    })
}

/// `convnet predict`.
pub fn predict(a: PredictArgs) -> CliResult<()> {
    crate::set_threads(a.threads)?;
    let precision = crate::precision(&a.precision)?;
    let ensemble = !a.run.join(convnet_run::folder::RUN_FILE).exists()
        && convnet_lab::ensemble::member_dir(&a.run, 0)
            .join("model.json")
            .exists();
    let (mut models, classes, augment) = if ensemble {
        let models = convnet_lab::ensemble::load_members(&a.run)?;
        (models, None, convnet_data::AugmentConfig::new())
    } else {
        let (cfg, model) = convnet_run::open(&a.run)?;
        (vec![model], cfg.classes, cfg.augment)
    };
    for m in &mut models {
        m.set_precision(precision);
    }
    if a.tta == 0 {
        return Err(CliError::usage(
            "--tta must be at least 1 (1: no augmentation)",
        ));
    }
    let shape = models[0].input_shape().to_vec();
    let mut inputs = open_inputs(&a, &shape)?;
    if a.batch_size == 0 || a.chunk == Some(0) {
        return Err(CliError::usage(
            "--batch-size and --chunk must be at least 1",
        ));
    }
    // Whole batches per chunk, so that the batches are those of one pass.
    let per_image = 4 * shape.iter().product::<usize>().max(1);
    let chunk = a.chunk.unwrap_or_else(|| {
        let n = (CHUNK_BYTES / per_image).max(1);
        (n / a.batch_size).max(1) * a.batch_size
    });
    let tta = convnet_run::tta_config(&augment);
    let class_name = |l: usize| {
        classes
            .as_ref()
            .and_then(|c| c.get(l).cloned())
            .unwrap_or_else(|| l.to_string())
    };
    // A model that ends without softmax or sigmoid gives raw outputs
    // (logits), not probabilities: the columns and the printout say so.
    let raw = models[0].head() == convnet_nn::Activation::Linear;
    let (column, value_note) = if raw {
        ("out", " (raw output, not a probability)")
    } else {
        ("p", "")
    };
    let mut header = String::from("input,label,class");
    let mut rows = String::new();
    let mut labels = Vec::new();
    let mut done = 0;
    while let Some((names, x)) = inputs.next(done, chunk, &shape)? {
        let probs = mean_probabilities(&mut models, &x, &tta, a.tta, done, a.batch_size)?;
        let k = probs.sample_len().max(1);
        if done == 0 {
            for j in 0..k {
                header.push_str(&format!(",{column}{j}"));
            }
            header.push('\n');
        }
        let chunk_labels = convnet_lab::report::predicted_classes(&probs);
        for (i, name) in names.iter().enumerate() {
            let l = chunk_labels[i];
            let p = &probs.data()[i * k..(i + 1) * k];
            let conf = match (k, l, raw) {
                (1, _, true) => p[0],
                (1, 1, false) => p[0],
                (1, _, false) => 1.0 - p[0],
                _ => p[l],
            };
            if a.output.is_none() && a.submission.is_none() {
                println!("{name}\t{}\t{:.4}{value_note}", class_name(l), conf);
            }
            rows.push_str(&format!(
                "{},{},{}",
                name.replace(',', "_"),
                l,
                class_name(l)
            ));
            for v in p {
                rows.push_str(&format!(",{v}"));
            }
            rows.push('\n');
        }
        labels.extend(chunk_labels);
        done += names.len();
    }
    if let Inputs::Files { skipped, .. } = inputs {
        if skipped > 0 {
            eprintln!("Skipped {skipped} unreadable image(s) (warnings above name them)");
        }
    }
    if !header.ends_with('\n') {
        header.push('\n'); // no inputs (a CSV with a header only)
    }
    let rows = header + &rows;
    if let Some(out) = &a.output {
        write_atomic(out, rows.as_bytes())?;
        eprintln!("wrote {done} predictions to {}", out.display());
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

/// The members' probabilities for a chunk of images `x` (rows `first..` of
/// the inputs), each averaged over `views` TTA views, then over the members.
fn mean_probabilities(
    models: &mut [Model],
    x: &Tensor,
    tta: &convnet_data::AugmentConfig,
    views: usize,
    first: usize,
    batch: usize,
) -> CliResult<Tensor> {
    let mut probs: Option<Tensor> = None;
    for m in models.iter_mut() {
        let p = convnet_run::predict_tta_from(
            m,
            x,
            tta,
            views,
            convnet_lab::ensemble::TTA_SEED,
            first,
            batch,
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
    Ok(probs)
}
