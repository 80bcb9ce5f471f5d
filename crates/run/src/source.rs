//! `--data`: where training and test samples come from.
//!
//! | value | source |
//! |---|---|
//! | `mnist` | the MNIST copy bundled in `data/mnist` (or `--data-dir`) |
//! | `fashion-mnist` | Fashion-MNIST IDX files in `--data-dir` (default `data/fashion-mnist`, else Debian's `dataset-fashion-mnist` package: `/usr/share/datasets/fashion-mnist`) |
//! | `idx:DIR` | any folder with the four MNIST-format IDX files |
//! | `cifar10:DIR` | CIFAR-10 binary batches (`data_batch_1.bin` ... `test_batch.bin`) |
//! | `csv:FILE` | a Kaggle digit-recognizer training CSV (`label,pixel0,...`) |
//! | `folder:DIR` | one sub-folder of images per class, resized to `--input`, read lazily |
//!
//! Every source keeps its images as bytes (converted to `f32` per batch);
//! an image folder keeps only its file list plus a cache of decoded images
//! bounded by [`FolderSettings::cache_mib`].

use crate::error::{Result, RunError};
use convnet_data::{
    load_cifar10, load_image_folder, read_kaggle_csv, FolderOptions, LabeledImages, Mnist, OnError,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How an image folder is read (saved in `run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FolderSettings {
    /// MiB of decoded images kept between epochs (0: decode every epoch).
    pub cache_mib: usize,
    /// Unreadable images: skipped with a warning, or an error.
    pub on_bad_image: OnError,
}

impl Default for FolderSettings {
    fn default() -> Self {
        FolderSettings {
            cache_mib: convnet_data::folder::DEFAULT_CACHE_BYTES >> 20,
            on_bad_image: OnError::Skip,
        }
    }
}

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
    folder: &FolderSettings,
) -> Result<Loaded> {
    let (kind, arg) = match data.split_once(':') {
        Some((k, a)) => (k, Some(PathBuf::from(a))),
        None => (data, data_dir.map(Path::to_path_buf)),
    };
    let need = |what: &str| RunError::usage(format!("--data {kind}:PATH needs {what}"));
    let mnist_like = |dir: PathBuf| -> Result<Loaded> {
        let m = Mnist::load(&dir)?;
        Ok(Loaded {
            train: m.train,
            test: Some(m.test),
            classes: None,
        })
    };
    match kind {
        "mnist" => mnist_like(arg.unwrap_or_else(bundled_mnist)),
        "fashion-mnist" => {
            let mut l = mnist_like(arg.unwrap_or_else(default_fashion_mnist))?;
            l.classes = Some(
                convnet_data::mnist::FASHION_MNIST_CLASSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            );
            Ok(l)
        }
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
            let shape = input.ok_or_else(|| RunError::usage("--data folder:DIR needs --input HxWxC (e.g. 128x128x3)"))?;
            let opts = FolderOptions::new(shape[0], shape[1], shape[2])
                .with_seed(seed)
                .with_cache_bytes(folder.cache_mib << 20)
                .with_on_error(folder.on_bad_image);
            let f = load_image_folder(&dir, &opts)?;
            Ok(Loaded {
                train: f.train,
                test: None,
                classes: Some(f.classes),
            })
        }
        "python" => Err(RunError::usage(
            "the run was trained in Python on numpy arrays (saved by convnet.keras's Model.save), \
             which are not on disk: give --data (e.g. --data mnist)",
        )),
        other => Err(RunError::usage(format!(
            "--data '{other}': expected mnist, fashion-mnist, idx:DIR, cifar10:DIR, csv:FILE or folder:DIR"
        ))),
    }
}

/// Where Debian's package `dataset-fashion-mnist` puts the four IDX files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// `data/fashion-mnist` when it exists, else the Debian package's folder.
fn default_fashion_mnist() -> PathBuf {
    let local = PathBuf::from("data/fashion-mnist");
    if local.is_dir() || !Path::new(DEBIAN_FASHION_MNIST).is_dir() {
        local
    } else {
        PathBuf::from(DEBIAN_FASHION_MNIST)
    }
}

/// `--class-names`: a text file with one name per line, or the names
/// separated by commas; as many as the model's classes (2 for a single
/// sigmoid output).
pub fn class_names(arg: &str, outputs: usize) -> Result<Vec<String>> {
    let path = Path::new(arg);
    let (names, what): (Vec<String>, String) = if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RunError::usage(format!("--class-names {arg}: {e}")))?;
        let names = text
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        (names, format!("{arg}: "))
    } else {
        let names = arg.split(',').map(|n| n.trim().to_string()).collect();
        (names, String::new())
    };
    let expected = if outputs == 1 { 2 } else { outputs };
    if names.len() != expected || names.iter().any(String::is_empty) {
        return Err(RunError::usage(format!(
            "--class-names {what}{} names, the model has {expected} classes \
             (a file with one name per line, or names separated by commas, none empty)",
            names.len()
        )));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_come_from_a_list_or_a_file_and_must_match_the_outputs() {
        assert_eq!(class_names("cat, dog", 1).unwrap(), vec!["cat", "dog"]);
        let e = class_names("a,b,c", 2).unwrap_err().to_string();
        assert!(e.contains("3 names, the model has 2 classes"), "{e}");
        assert!(class_names("a,,c", 3).is_err());
        let f = std::env::temp_dir().join(format!("convnet-names-{}.txt", std::process::id()));
        std::fs::write(&f, "zero\n\none\ntwo\n").unwrap();
        assert_eq!(
            class_names(f.to_str().unwrap(), 3).unwrap(),
            vec!["zero", "one", "two"]
        );
        let e = class_names(f.to_str().unwrap(), 4).unwrap_err().to_string();
        assert!(
            e.contains("names.txt") || e.contains(".txt: 3 names"),
            "{e}"
        );
        let _ = std::fs::remove_file(f);
    }
}
