//! MNIST and Fashion-MNIST from their four IDX files.
//!
//! Images become `[N, 28, 28, 1]` tensors scaled to `[0, 1]` (Keras's
//! `rescale=1/255`), labels `[N]` class indices stored as `f32`.

use crate::error::{DataError, Result};
use crate::idx::read_idx;
use convnet_tensor::Tensor;
use std::path::{Path, PathBuf};

/// Images and labels of one split.
#[derive(Clone, Debug)]
pub struct LabeledImages {
    /// `[N, H, W, 1]`, values in `[0, 1]`.
    pub images: Tensor,
    /// `[N]` class indices.
    pub labels: Tensor,
}

impl LabeledImages {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.images.batch()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first `n` samples.
    pub fn take(&self, n: usize) -> LabeledImages {
        let n = n.min(self.len());
        LabeledImages {
            images: self.images.slice_batch(0, n),
            labels: self.labels.slice_batch(0, n),
        }
    }
    /// Samples `start..end`.
    pub fn range(&self, start: usize, end: usize) -> LabeledImages {
        LabeledImages {
            images: self.images.slice_batch(start, end),
            labels: self.labels.slice_batch(start, end),
        }
    }
    /// One-hot targets `[N, classes]`.
    pub fn one_hot(&self, classes: usize) -> Tensor {
        one_hot(&self.labels, classes)
    }
}

/// `[N]` class indices -> `[N, classes]` one-hot rows.
pub fn one_hot(labels: &Tensor, classes: usize) -> Tensor {
    let mut t = Tensor::zeros(&[labels.len(), classes]);
    for (i, &l) in labels.data().iter().enumerate() {
        let l = l as usize;
        if l < classes {
            t.data_mut()[i * classes + l] = 1.0;
        }
    }
    t
}

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
    let (n, h, w) = (img.dims[0], img.dims[1], img.dims[2]);
    let pixels: Vec<f32> = img.data.iter().map(|&b| b as f32 / 255.0).collect();
    let labels_f: Vec<f32> = lab.data.iter().map(|&b| b as f32).collect();
    Ok(LabeledImages {
        images: Tensor::from_vec(&[n, h, w, 1], pixels).expect("sizes checked"),
        labels: Tensor::from_vec(&[n], labels_f).expect("sizes checked"),
    })
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
