//! `--data`: where training and test samples come from.
//!
//! `mnist` (the copy bundled in `data/mnist`), `fashion-mnist` (IDX files in
//! `--data-dir`, default `data/fashion-mnist`), or `idx:DIR` for any folder
//! of the four MNIST-format files.

use crate::error::{CliError, CliResult};
use convnet_data::{LabeledImages, Mnist};
use std::path::{Path, PathBuf};

/// Train and test samples with labels as class indices.
pub struct Loaded {
    /// Training split.
    pub train: LabeledImages,
    /// Test split, if the source has one.
    pub test: Option<LabeledImages>,
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

/// Loads `--data` (with an optional `--data-dir`).
pub fn load(data: &str, data_dir: Option<&Path>) -> CliResult<Loaded> {
    let (kind, arg) = match data.split_once(':') {
        Some((k, a)) => (k, Some(PathBuf::from(a))),
        None => (data, data_dir.map(Path::to_path_buf)),
    };
    let mnist_like = |dir: PathBuf| -> CliResult<Loaded> {
        let m = Mnist::load(&dir)?;
        Ok(Loaded {
            train: m.train,
            test: Some(m.test),
        })
    };
    match kind {
        "mnist" => mnist_like(arg.unwrap_or_else(bundled_mnist)),
        "fashion-mnist" => mnist_like(arg.unwrap_or_else(|| PathBuf::from("data/fashion-mnist"))),
        "idx" => mnist_like(arg.ok_or_else(|| CliError::usage("--data idx:DIR needs a folder"))?),
        other => Err(CliError::usage(format!(
            "--data '{other}': expected mnist, fashion-mnist or idx:DIR"
        ))),
    }
}
