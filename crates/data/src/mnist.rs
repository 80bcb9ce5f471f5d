//! MNIST and Fashion-MNIST from their four IDX files.
//!
//! Images stay bytes (`[N, 28, 28, 1]`, converted to `[0, 1]` per batch, see
//! [`LabeledImages`]), labels are class indices.

use crate::error::{DataError, Result};
use crate::idx::read_idx;
use crate::images::LabeledImages;
use std::path::{Path, PathBuf};

/// Fashion-MNIST's class names, label order (Xiao et al. 2017).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Pairs an IDX image file with an IDX label file.
pub fn load_idx_pair(images: &Path, labels: &Path) -> Result<LabeledImages> {
    let img = read_idx(images)?;
    let lab = read_idx(labels)?;
    if img.dims.len() != 3 {
        return Err(crate::error::format_err(
            images,
            "dimensions",
            "3 (count, rows, columns) for an image file",
            format!("{} {:?}", img.dims.len(), img.dims),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(crate::error::format_err(
            labels,
            "dimensions",
            "1 (count) for a label file",
            format!("{} {:?}", lab.dims.len(), lab.dims),
        ));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::Mismatch(format!(
            "{} holds {} images but {} holds {} labels",
            images.display(),
            img.dims[0],
            labels.display(),
            lab.dims[0]
        )));
    }
    let (h, w) = (img.dims[1], img.dims[2]);
    let labels = lab.data.iter().map(|&b| b as u32).collect();
    LabeledImages::from_bytes([h, w, 1], img.data, labels)
}

/// The train and test splits of an MNIST-format data set.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 training samples.
    pub train: LabeledImages,
    /// 10,000 test samples.
    pub test: LabeledImages,
}

/// Finds `name` or `name.gz` in `dir`.
fn find(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        gz
    } else {
        dir.join(name)
    }
}

impl Mnist {
    /// Loads the four standard files (`train-images-idx3-ubyte[.gz]`, ...)
    /// from `dir`.
    pub fn load(dir: &Path) -> Result<Mnist> {
        Ok(Mnist {
            train: load_idx_pair(
                &find(dir, "train-images-idx3-ubyte"),
                &find(dir, "train-labels-idx1-ubyte"),
            )?,
            test: load_idx_pair(
                &find(dir, "t10k-images-idx3-ubyte"),
                &find(dir, "t10k-labels-idx1-ubyte"),
            )?,
        })
    }

    /// The copy of MNIST bundled in this repository (`data/mnist`).
    pub fn bundled_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
    }
}
