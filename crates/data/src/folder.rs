//! A folder of images with one sub-folder per class (`cats/`, `dogs/`),
//! like Keras's `image_dataset_from_directory` / `flow_from_directory`.
//!
//! Classes are the sub-folder names in alphanumeric order (label 0 is the
//! first). Only the file list is read here: images (JPEG, PNG, BMP, GIF)
//! are decoded batch by batch as training asks for them, converted to
//! grayscale or RGB, resized to the target size with bilinear interpolation
//! and scaled to `[0, 1]` ([`crate::stream`]), so a folder of any size
//! trains in bounded memory. The file list is shuffled with the seed and
//! the last `validation_split` of it is held out, as Keras does.

use crate::error::{format_err, io_err, DataError, Result};
use crate::images::{LabeledImages, Store};
use crate::stream::{decode_image, FileStore, OnError};
use convnet_nn::Rng;
use convnet_tensor::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "gif"];

/// Target size and split settings.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderOptions {
    /// Target height.
    pub height: usize,
    /// Target width.
    pub width: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Fraction held out for validation.
    pub validation_split: f32,
    /// Seed of the file shuffle.
    pub seed: u64,
    /// Budget of the decoded-bytes cache (0: decode every epoch).
    pub cache_bytes: usize,
    /// Unreadable images: skipped with a warning, or an error.
    pub on_error: OnError,
}

impl FolderOptions {
    /// `height x width x channels`, no validation split, seed 0.
    pub fn new(height: usize, width: usize, channels: usize) -> Self {
        FolderOptions {
            height,
            width,
            channels,
            validation_split: 0.0,
            seed: 0,
            cache_bytes: DEFAULT_CACHE_BYTES,
            on_error: OnError::Skip,
        }
    }
    /// Validation fraction.
    pub fn with_validation_split(mut self, v: f32) -> Self {
        self.validation_split = v;
        self
    }
    /// Shuffle seed.
    pub fn with_seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    /// Budget in bytes of the cache of decoded images.
    pub fn with_cache_bytes(mut self, b: usize) -> Self {
        self.cache_bytes = b;
        self
    }
    /// What to do with unreadable images.
    pub fn with_on_error(mut self, e: OnError) -> Self {
        self.on_error = e;
        self
    }
}

/// Default budget of the decoded-image cache: 256 MiB (5,461 images of
/// 128x128x3, the whole of a 500-photo folder).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// An image folder: its file list, read lazily (see [`crate::stream`]).
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// Class names, label order.
    pub classes: Vec<String>,
    /// Training images and labels.
    pub train: LabeledImages,
    /// Held-out images, when `validation_split > 0`.
    pub validation: Option<LabeledImages>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Image files directly inside `dir`, sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Decodes one image file to `[h, w, channels]` values in `[0, 1]`.
pub fn load_image(path: &Path, h: usize, w: usize, channels: usize) -> Result<Vec<f32>> {
    Ok(decode_image(path, h, w, channels)?
        .into_iter()
        .map(|v| v as f32 / 255.0)
        .collect())
}

/// Decodes many files into one `[N, h, w, channels]` tensor, in parallel
/// (for a handful of images to predict; training reads folders lazily).
pub fn load_images(files: &[PathBuf], h: usize, w: usize, channels: usize) -> Result<Tensor> {
    let decoded: Result<Vec<Vec<f32>>> = files
        .par_iter()
        .map(|p| load_image(p, h, w, channels))
        .collect();
    let data: Vec<f32> = decoded?.into_iter().flatten().collect();
    Ok(Tensor::from_vec(&[files.len(), h, w, channels], data).expect("sizes agree"))
}

/// Loads a folder of class sub-folders.
pub fn load_image_folder(dir: &Path, opts: &FolderOptions) -> Result<ImageFolder> {
    if opts.channels != 1 && opts.channels != 3 {
        return Err(DataError::Mismatch(format!(
            "image channels must be 1 or 3, found {}",
            opts.channels
        )));
    }
    if opts.height == 0 || opts.width == 0 {
        return Err(DataError::Mismatch(
            "image size must be at least 1x1".into(),
        ));
    }
    let mut classes: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(format_err(
            dir,
            "class folders",
            "one sub-folder per class (e.g. cats/ and dogs/)",
            "no sub-folders",
        ));
    }
    let mut files: Vec<(PathBuf, usize)> = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let cdir = dir.join(class);
        let images = list_images(&cdir)?;
        if images.is_empty() {
            return Err(format_err(
                &cdir,
                "class folder",
                "at least one .jpg, .jpeg, .png, .bmp or .gif image",
                "none",
            ));
        }
        files.extend(images.into_iter().map(|p| (p, label)));
    }
    let mut rng = Rng::seed_from_u64(opts.seed);
    files.shuffle(&mut rng);
    let n_val = (files.len() as f64 * opts.validation_split as f64).floor() as usize;
    let n_train = files.len() - n_val;
    let labels = files.iter().map(|(_, l)| *l as u32).collect();
    let paths = files.into_iter().map(|(p, _)| p).collect();
    let shape = [opts.height, opts.width, opts.channels];
    let store = FileStore::new(paths, shape, opts.on_error, opts.cache_bytes);
    let all = LabeledImages::from_store(Store::Files(store), labels, shape);
    Ok(ImageFolder {
        classes,
        train: all.range(0, n_train),
        validation: (n_val > 0).then(|| all.range(n_train, all.len())),
    })
}
