//! `LabeledImages`: images with class labels, kept as bytes and converted to
//! `f32` one batch at a time.
//!
//! Memory is what bounds real data sets, so a split holds its pixels the way
//! the files do, one `u8` per channel (a quarter of `f32`), and shares them:
//! `take`, `range` and `select` make views (an `Arc` and an index list), never
//! copies, so a validation split or a bagging sample costs nothing. Pixels
//! come from one of two stores:
//!
//! - **bytes**: decoded in memory (MNIST, Fashion-MNIST, CIFAR-10, CSV);
//! - **files**: an image folder read lazily ([`crate::stream`]): each batch is
//!   decoded in parallel when asked for, optionally through a bounded cache
//!   of decoded bytes, so memory does not grow with the folder.
//!
//! A batch is `[B, H, W, C]` with values `byte / 255` (Keras's
//! `rescale=1/255`). Labels are class indices.

use crate::error::{DataError, Result};
use crate::stream::FileStore;
use convnet_nn::{Batch, DataSource};
use convnet_tensor::Tensor;
use std::borrow::Cow;
use std::sync::Arc;

/// Where the pixels live.
#[derive(Debug)]
pub(crate) enum Store {
    /// `[N, H, W, C]` bytes in memory.
    Bytes(Vec<u8>),
    /// Image files decoded on demand.
    Files(FileStore),
}

/// Pixels, labels and the per-image shape, shared by every view.
#[derive(Debug)]
struct Shared {
    store: Store,
    labels: Vec<u32>,
    /// `[H, W, C]`.
    shape: [usize; 3],
}

/// Which samples of the shared store a view shows, in order.
#[derive(Clone, Debug)]
enum View {
    Range(usize, usize),
    List(Arc<Vec<usize>>),
}

/// Images and labels of one split (see the module documentation).
#[derive(Clone, Debug)]
pub struct LabeledImages {
    shared: Arc<Shared>,
    view: View,
}

impl LabeledImages {
    /// `N` images of `shape = [H, W, C]` as bytes (row-major, channels last)
    /// with their labels.
    pub fn from_bytes(shape: [usize; 3], pixels: Vec<u8>, labels: Vec<u32>) -> Result<Self> {
        let per: usize = shape.iter().product();
        if per == 0 || pixels.len() != labels.len() * per {
            return Err(DataError::Mismatch(format!(
                "{} pixel bytes do not hold {} images of {}x{}x{}",
                pixels.len(),
                labels.len(),
                shape[0],
                shape[1],
                shape[2]
            )));
        }
        Ok(Self::from_store(Store::Bytes(pixels), labels, shape))
    }

    /// Images `[N, H, W, C]` with values in `[0, 1]` (rounded to the
    /// nearest 1/255) and labels `[N]`; for tests and data built in code.
    pub fn from_tensor(images: &Tensor, labels: &Tensor) -> Result<Self> {
        let s = images.shape();
        if s.len() != 4 || labels.len() != s[0] {
            return Err(DataError::Mismatch(format!(
                "images {:?} and labels {:?}: expected [N, H, W, C] and [N]",
                s,
                labels.shape()
            )));
        }
        let pixels = images
            .data()
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        let labels = labels.data().iter().map(|&l| l.max(0.0) as u32).collect();
        Self::from_bytes([s[1], s[2], s[3]], pixels, labels)
    }

    pub(crate) fn from_store(store: Store, labels: Vec<u32>, shape: [usize; 3]) -> Self {
        let n = labels.len();
        LabeledImages {
            shared: Arc::new(Shared {
                store,
                labels,
                shape,
            }),
            view: View::Range(0, n),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match &self.view {
            View::Range(a, b) => b - a,
            View::List(l) => l.len(),
        }
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `[H, W, C]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shared.shape
    }
    /// Values per image, `H * W * C`.
    fn per_image(&self) -> usize {
        self.shared.shape.iter().product()
    }
    /// Index in the shared store of this view's sample `i`.
    fn global(&self, i: usize) -> usize {
        match &self.view {
            View::Range(a, _) => a + i,
            View::List(l) => l[i],
        }
    }
    fn with_view(&self, view: View) -> LabeledImages {
        LabeledImages {
            shared: Arc::clone(&self.shared),
            view,
        }
    }
    /// The first `n` samples (a view).
    pub fn take(&self, n: usize) -> LabeledImages {
        self.range(0, n.min(self.len()))
    }
    /// Samples `start..end` (a view).
    pub fn range(&self, start: usize, end: usize) -> LabeledImages {
        assert!(
            start <= end && end <= self.len(),
            "range {start}..{end} of {}",
            self.len()
        );
        match &self.view {
            View::Range(a, _) => self.with_view(View::Range(a + start, a + end)),
            View::List(l) => self.with_view(View::List(Arc::new(l[start..end].to_vec()))),
        }
    }
    /// The samples at `positions`, in that order (a view; repeats allowed,
    /// as bagging draws them).
    pub fn select(&self, positions: &[usize]) -> LabeledImages {
        let list = positions.iter().map(|&p| self.global(p)).collect();
        self.with_view(View::List(Arc::new(list)))
    }

    /// Class index of sample `i`.
    pub fn label(&self, i: usize) -> usize {
        self.shared.labels[self.global(i)] as usize
    }
    /// Every sample's class index.
    pub fn labels(&self) -> Vec<usize> {
        (0..self.len()).map(|i| self.label(i)).collect()
    }
    /// Labels as a `[N]` tensor of class indices.
    pub fn labels_tensor(&self) -> Tensor {
        let l = (0..self.len()).map(|i| self.label(i) as f32).collect();
        Tensor::from_vec(&[self.len()], l).expect("one label per sample")
    }
    /// One-hot targets `[N, classes]`.
    pub fn one_hot(&self, classes: usize) -> Tensor {
        one_hot(&self.labels_tensor(), classes)
    }
    /// The number of classes the labels imply: the largest label + 1.
    pub fn class_count(&self) -> usize {
        (0..self.len())
            .map(|i| self.label(i) + 1)
            .max()
            .unwrap_or(0)
    }

    /// The bytes of sample `i`, `H * W * C` of them (decoded if the store
    /// is a folder).
    pub fn image_bytes(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        let g = self.global(i);
        match &self.shared.store {
            Store::Bytes(p) => {
                let per = self.per_image();
                Ok(Cow::Borrowed(&p[g * per..(g + 1) * per]))
            }
            Store::Files(f) => f.decode(g).map(Cow::Owned),
        }
    }

    /// The images at `positions` as `[B, H, W, C]` in `[0, 1]`, with their
    /// labels. A folder's unreadable images are skipped (fewer rows) or an
    /// error, as its [`crate::stream::OnError`] says.
    pub fn batch(&self, positions: &[usize]) -> Result<(Tensor, Vec<usize>)> {
        let [h, w, c] = self.shared.shape;
        let per = h * w * c;
        match &self.shared.store {
            Store::Bytes(p) => {
                let mut x = vec![0.0f32; positions.len() * per];
                for (row, &i) in x.chunks_exact_mut(per).zip(positions) {
                    let g = self.global(i);
                    to_unit(&p[g * per..(g + 1) * per], row);
                }
                let labels = positions.iter().map(|&i| self.label(i)).collect();
                let t = Tensor::from_vec(&[positions.len(), h, w, c], x).expect("sizes agree");
                Ok((t, labels))
            }
            Store::Files(f) => {
                let globals: Vec<usize> = positions.iter().map(|&i| self.global(i)).collect();
                let decoded = f.decode_many(&globals)?;
                let mut x = Vec::with_capacity(decoded.len() * per);
                let mut labels = Vec::with_capacity(decoded.len());
                for (g, bytes) in decoded {
                    x.extend(bytes.iter().map(|&b| b as f32 / 255.0));
                    labels.push(self.shared.labels[g] as usize);
                }
                let t = Tensor::from_vec(&[labels.len(), h, w, c], x).expect("sizes agree");
                Ok((t, labels))
            }
        }
    }

    /// Every image as one `[N, H, W, C]` tensor. Four bytes per value: for
    /// small sets (a picture, a test) only; batches go through [`Self::batch`].
    pub fn images_tensor(&self) -> Result<Tensor> {
        let all: Vec<usize> = (0..self.len()).collect();
        Ok(self.batch(&all)?.0)
    }

    /// Images skipped so far because they could not be read (folders only).
    pub fn skipped(&self) -> usize {
        match &self.shared.store {
            Store::Files(f) => f.skipped(),
            Store::Bytes(_) => 0,
        }
    }

    /// Bytes of pixel data this split's store holds in memory (a folder's
    /// decoded cache included).
    pub fn resident_bytes(&self) -> usize {
        match &self.shared.store {
            Store::Bytes(p) => p.len(),
            Store::Files(f) => f.cached_bytes(),
        }
    }

    /// The file of sample `i`, when the store is a folder.
    pub fn path(&self, i: usize) -> Option<&std::path::Path> {
        match &self.shared.store {
            Store::Files(f) => Some(f.path(self.global(i))),
            Store::Bytes(_) => None,
        }
    }
}

/// `byte / 255` into `out`.
fn to_unit(bytes: &[u8], out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(bytes) {
        *o = b as f32 / 255.0;
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

/// The form of the targets a loss expects, built per batch from labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// `[B]` class indices (sparse cross-entropy).
    Sparse,
    /// `[B, 1]` labels 0 or 1 (a single sigmoid output).
    Binary,
    /// `[B, classes]` one-hot rows.
    OneHot(usize),
}

/// Labelled images as a training source: batches converted from bytes on
/// demand, targets built per batch; nothing is materialized up front.
#[derive(Clone, Debug)]
pub struct LabeledSource {
    data: LabeledImages,
    targets: Targets,
}

impl LabeledSource {
    /// `data` with targets of form `targets`; an error if a label does not
    /// fit the targets (label 7 for 5 outputs, label 2 for one sigmoid).
    pub fn new(data: LabeledImages, targets: Targets) -> Result<Self> {
        let limit = match targets {
            Targets::Sparse => None,
            Targets::Binary => Some(2),
            Targets::OneHot(k) => Some(k),
        };
        if let Some(k) = limit {
            if let Some(bad) = (0..data.len()).map(|i| data.label(i)).find(|&l| l >= k) {
                let outputs = match targets {
                    Targets::Binary => "1 output (a sigmoid: labels 0 and 1)".to_string(),
                    _ => format!("{k} outputs"),
                };
                return Err(DataError::Mismatch(format!(
                    "the data has label {bad} but the model has only {outputs}"
                )));
            }
        }
        Ok(LabeledSource { data, targets })
    }
    /// The images.
    pub fn data(&self) -> &LabeledImages {
        &self.data
    }
    /// The form of its targets.
    pub fn targets(&self) -> Targets {
        self.targets
    }
}

impl DataSource for LabeledSource {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        self.data.image_shape().to_vec()
    }
    fn batch(&self, indices: &[usize], _seed: u64) -> convnet_nn::Result<Batch> {
        let (x, labels) = self
            .data
            .batch(indices)
            .map_err(|e| convnet_nn::NnError::Data(e.to_string()))?;
        let b = labels.len();
        let y = match self.targets {
            Targets::Sparse => Tensor::from_vec(&[b], labels.iter().map(|&l| l as f32).collect())?,
            Targets::Binary => {
                Tensor::from_vec(&[b, 1], labels.iter().map(|&l| l as f32).collect())?
            }
            Targets::OneHot(k) => {
                let mut t = Tensor::zeros(&[b, k]);
                for (row, &l) in t.data_mut().chunks_exact_mut(k).zip(&labels) {
                    row[l] = 1.0;
                }
                t
            }
        };
        Ok((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four() -> LabeledImages {
        // Four 1x2x1 images: bytes 10i and 10i + 1, label i.
        let pixels = (0..4u8).flat_map(|i| [10 * i, 10 * i + 1]).collect();
        LabeledImages::from_bytes([1, 2, 1], pixels, vec![0, 1, 2, 3]).unwrap()
    }

    #[test]
    fn views_share_the_store_and_compose() {
        let d = four();
        let tail = d.range(1, 4);
        assert_eq!(tail.labels(), vec![1, 2, 3]);
        let picked = tail.select(&[2, 0, 0]);
        assert_eq!(picked.labels(), vec![3, 1, 1]);
        assert_eq!(picked.range(1, 3).labels(), vec![1, 1]);
        assert_eq!(&*picked.image_bytes(0).unwrap(), &[30, 31]);
        assert!(Arc::ptr_eq(&d.shared, &picked.shared));
        assert_eq!(d.take(9).len(), 4);
    }

    #[test]
    fn batches_scale_bytes_to_unit_values() {
        let d = four();
        let (x, labels) = d.batch(&[3, 1]).unwrap();
        assert_eq!(x.shape(), &[2, 1, 2, 1]);
        assert_eq!(labels, vec![3, 1]);
        let want = [30.0 / 255.0, 31.0 / 255.0, 10.0 / 255.0, 11.0 / 255.0];
        for (a, b) in x.data().iter().zip(want) {
            assert!((a - b).abs() < 1e-7);
        }
    }

    #[test]
    fn from_tensor_round_trips_through_bytes() {
        let x = Tensor::from_vec(&[2, 1, 1, 1], vec![0.0, 1.0]).unwrap();
        let y = Tensor::from_vec(&[2], vec![1.0, 0.0]).unwrap();
        let d = LabeledImages::from_tensor(&x, &y).unwrap();
        assert_eq!(d.images_tensor().unwrap().data(), x.data());
        assert_eq!(d.labels_tensor().data(), y.data());
        assert!(LabeledImages::from_bytes([2, 2, 1], vec![0; 7], vec![0, 1]).is_err());
    }

    #[test]
    fn source_builds_each_target_form_per_batch() {
        let d = four();
        let src = LabeledSource::new(d.clone(), Targets::OneHot(4)).unwrap();
        let (_, y) = src.batch(&[2], 0).unwrap();
        assert_eq!(y.data(), &[0.0, 0.0, 1.0, 0.0]);
        let (_, y) = LabeledSource::new(d.clone(), Targets::Sparse)
            .unwrap()
            .batch(&[3, 0], 0)
            .unwrap();
        assert_eq!(y.data(), &[3.0, 0.0]);
        let err = LabeledSource::new(d.clone(), Targets::OneHot(3)).unwrap_err();
        assert!(err.to_string().contains("label 3"), "{err}");
        assert!(LabeledSource::new(d.take(2), Targets::Binary).is_ok());
        assert!(LabeledSource::new(d, Targets::Binary).is_err());
    }
}
