//! Data for convnet: readers for MNIST-style IDX files, CIFAR-10 binary
//! batches, Kaggle CSV and folders of class sub-folders, plus normalization
//! and augmentation.
//!
//! Every reader validates its input and reports errors that name the file,
//! the field and what was expected ([`DataError`]).
#![deny(missing_docs)]

pub mod augment;
pub mod cifar;
pub mod csv;
pub mod decode;
pub mod digit;
mod error;
pub mod folder;
pub mod fuzzing;
pub mod idx;
pub mod images;
pub mod mnist;
pub mod normalize;
pub mod stream;

pub use augment::{AugmentConfig, Augmented, FillMode, Transform};
pub use cifar::load_cifar10;
pub use csv::{read_kaggle_csv, submission_csv, CsvImages, KaggleCsvReader};
pub use decode::{image_from_memory, max_pixels, open_image, set_max_pixels, DEFAULT_MAX_PIXELS};
pub use digit::{prepare_digit, Digit};
pub use error::{DataError, Result};
pub use folder::{load_image, load_image_folder, load_images, FolderOptions, ImageFolder};
pub use images::{one_hot, LabeledImages, LabeledSource, Targets};
pub use mnist::Mnist;
pub use normalize::FeaturewiseStats;
pub use stream::OnError;
