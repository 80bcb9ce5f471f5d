//! `--data`: where training and test samples come from.
//!
//! | value | source |
//! |---|---|
//! | `mnist` | the MNIST copy bundled in `data/mnist` (or `--data-dir`) |
//! | `fashion-mnist` | Fashion-MNIST IDX files in `--data-dir` (default `data/fashion-mnist`) |
//! | `idx:DIR` | any folder with the four MNIST-format IDX files |
//! | `cifar10:DIR` | CIFAR-10 binary batches (`data_batch_1.bin` ... `test_batch.bin`) |
//! | `csv:FILE` | a Kaggle digit-recognizer training CSV (`label,pixel0,...`) |
//! | `folder:DIR` | one sub-folder of images per class, resized to `--input` |

use crate::error::{CliError, CliResult};
use convnet_data::{
    load_cifar10, load_image_folder, read_kaggle_csv, FolderOptions, LabeledImages, Mnist,
};
use std::path::{Path, PathBuf};

/// Train and test samples with labels as class indices.
pub struct Loaded {
    /// Training split.
    pub train: LabeledImages,
    /// Test split, if the source has one.
    pub test: Option<LabeledImages>,
    /// Class names, when the source has them.
    pub classes: Option<Vec<String>>,
}

/// The bundled MNIST: `data/mnist` under the current folder, else the copy
/// in the source tree this binary was built from.
pub fn bundled_mnist() -> PathBuf {
    let local = Path::new("data/mnist");
    if local.join("train-labels-idx1-ubyte.gz").exists() {
        local.to_path_buf()
    } else {
        Mnist::bundled_dir()
    }
}

/// Loads `--data` (with an optional `--data-dir`); `input` is the target
/// size for image folders; `seed` shuffles an image folder's file list.
pub fn load(
    data: &str,
    data_dir: Option<&Path>,
    input: Option<&[usize]>,
    seed: u64,
) -> CliResult<Loaded> {
    let (kind, arg) = match data.split_once(':') {
        Some((k, a)) => (k, Some(PathBuf::from(a))),
        None => (data, data_dir.map(Path::to_path_buf)),
    };
    let need = |what: &str| CliError::usage(format!("--data {kind}:PATH needs {what}"));
    let mnist_like = |dir: PathBuf| -> CliResult<Loaded> {
        let m = Mnist::load(&dir)?;
        Ok(Loaded {
            train: m.train,
            test: Some(m.test),
            classes: None,
        })
    };
    match kind {
        "mnist" => mnist_like(arg.unwrap_or_else(bundled_mnist)),
        "fashion-mnist" => mnist_like(arg.unwrap_or_else(|| PathBuf::from("data/fashion-mnist"))),
        "idx" => mnist_like(arg.ok_or_else(|| need("a folder"))?),
        "cifar10" => {
            let (train, test) = load_cifar10(&arg.ok_or_else(|| need("the cifar-10-batches-bin folder"))?)?;
            let classes = convnet_data::cifar::CLASSES.iter().map(|s| s.to_string()).collect();
            Ok(Loaded {
                train,
                test: Some(test),
                classes: Some(classes),
            })
        }
        "csv" => {
            let path = arg.ok_or_else(|| need("a CSV file"))?;
            let train = read_kaggle_csv(&path)?.labeled(&path)?;
            Ok(Loaded {
                train,
                test: None,
                classes: None,
            })
        }
        "folder" => {
            let dir = arg.ok_or_else(|| need("a folder of class sub-folders"))?;
            let shape = input.ok_or_else(|| CliError::usage("--data folder:DIR needs --input HxWxC (e.g. 128x128x3)"))?;
            let f = load_image_folder(&dir, &FolderOptions::new(shape[0], shape[1], shape[2]).with_seed(seed))?;
            Ok(Loaded {
                train: f.train,
                test: None,
                classes: Some(f.classes),
            })
        }
        other => Err(CliError::usage(format!(
            "--data '{other}': expected mnist, fashion-mnist, idx:DIR, cifar10:DIR, csv:FILE or folder:DIR"
        ))),
    }
}
