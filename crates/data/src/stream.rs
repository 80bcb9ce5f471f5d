//! A folder's images read on demand: the file-backed store behind
//! [`crate::LabeledImages`].
//!
//! Nothing is decoded up front. A batch's files are decoded (and resized)
//! in parallel on rayon's pool when the trainer's prefetch thread asks for
//! the batch, two batches ahead of the training step, so memory holds the
//! file list, a few batches and, optionally, a cache of decoded bytes whose
//! size is fixed by a budget (the first `budget / (H * W * C)` images of the
//! list are kept once decoded; the rest are decoded every epoch). Memory is
//! therefore bounded whatever the folder's size.
//!
//! An image that cannot be read is, by [`OnError`], skipped (a warning
//! naming the file, once, and a count) or an error that ends training
//! cleanly at that batch with the file named; it never panics.
//! Decoding is deterministic, so a seed gives the same run either way.

use crate::error::{format_err, Result};
use fast_image_resize as fir;
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// What to do with an image file that cannot be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Leave it out of its batch, warn once naming it, count it.
    #[default]
    Skip,
    /// Stop with an error naming the file.
    Fail,
}

impl OnError {
    /// `skip` or `fail`.
    pub fn from_name(s: &str) -> Option<OnError> {
        match s {
            "skip" => Some(OnError::Skip),
            "fail" | "error" => Some(OnError::Fail),
            _ => None,
        }
    }
}

/// Image files, decoded to `[H, W, C]` bytes when asked for.
#[derive(Debug)]
pub struct FileStore {
    files: Vec<PathBuf>,
    shape: [usize; 3],
    on_error: OnError,
    /// Decoded bytes of the first `cache.len()` files, filled as they are read.
    cache: Vec<OnceLock<Vec<u8>>>,
    cached: AtomicUsize,
    /// Files found unreadable (reported once, then skipped without reading).
    bad: Mutex<BTreeSet<usize>>,
}

impl FileStore {
    /// `files` decoded to `shape = [H, W, C]` (C is 1 or 3), caching at most
    /// `cache_bytes` of decoded pixels.
    pub fn new(
        files: Vec<PathBuf>,
        shape: [usize; 3],
        on_error: OnError,
        cache_bytes: usize,
    ) -> Self {
        let per: usize = shape.iter().product::<usize>().max(1);
        let cache = (0..files.len().min(cache_bytes / per))
            .map(|_| OnceLock::new())
            .collect();
        FileStore {
            files,
            shape,
            on_error,
            cache,
            cached: AtomicUsize::new(0),
            bad: Mutex::new(BTreeSet::new()),
        }
    }

    /// The file of image `g`.
    pub fn path(&self, g: usize) -> &Path {
        &self.files[g]
    }

    /// Image `g`'s bytes, through the cache.
    pub fn decode(&self, g: usize) -> Result<Vec<u8>> {
        if let Some(slot) = self.cache.get(g) {
            if let Some(b) = slot.get() {
                return Ok(b.clone());
            }
        }
        let [h, w, c] = self.shape;
        let bytes = decode_image(&self.files[g], h, w, c)?;
        if let Some(slot) = self.cache.get(g) {
            if slot.set(bytes.clone()).is_ok() {
                self.cached.fetch_add(bytes.len(), Ordering::Relaxed);
            }
        }
        Ok(bytes)
    }

    /// Images `globals` decoded in parallel, in order, as `(index, bytes)`;
    /// unreadable ones left out or an error, by the store's [`OnError`].
    pub fn decode_many(&self, globals: &[usize]) -> Result<Vec<(usize, Vec<u8>)>> {
        let known_bad = self.bad.lock().expect("not poisoned").clone();
        let results: Vec<(usize, Result<Vec<u8>>)> = globals
            .par_iter()
            .filter(|g| !known_bad.contains(g))
            .map(|&g| (g, self.decode(g)))
            .collect();
        let mut out = Vec::with_capacity(results.len());
        for (g, r) in results {
            match r {
                Ok(b) => out.push((g, b)),
                Err(e) if self.on_error == OnError::Skip => {
                    if self.bad.lock().expect("not poisoned").insert(g) {
                        eprintln!("warning: skipping an unreadable image: {e}");
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Distinct files skipped so far.
    pub fn skipped(&self) -> usize {
        self.bad.lock().expect("not poisoned").len()
    }

    /// Bytes held by the decoded cache now.
    pub fn cached_bytes(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }
}

/// Decodes one image file to `[h, w, channels]` bytes (grayscale for 1
/// channel, RGB for 3), resized with bilinear interpolation when its size
/// differs.
pub fn decode_image(path: &Path, h: usize, w: usize, channels: usize) -> Result<Vec<u8>> {
    resize_image(&crate::decode::open_image(path)?, h, w, channels, path)
}

/// A decoded image as `[h, w, channels]` bytes (channels 1: luma, else
/// RGB), resized as every image the nets read is: bilinear (a triangle
/// filter stretched by the scale when shrinking, as `image`'s Triangle is),
/// with SIMD: a 400x300 photo to 128x128 in a fraction of the decoding's
/// time. `source` names the image in errors.
pub fn resize_image(
    img: &image::DynamicImage,
    h: usize,
    w: usize,
    channels: usize,
    source: &Path,
) -> Result<Vec<u8>> {
    let (iw, ih) = (img.width(), img.height());
    let (pixels, pixel_type) = match channels {
        1 => (img.to_luma8().into_raw(), fir::PixelType::U8),
        _ => (img.to_rgb8().into_raw(), fir::PixelType::U8x3),
    };
    if ih as usize == h && iw as usize == w {
        return Ok(pixels);
    }
    let resize_err = |e: String| format_err(source, "image size", "a resizable image", e);
    let src = fir::images::Image::from_vec_u8(iw, ih, pixels, pixel_type)
        .map_err(|e| resize_err(e.to_string()))?;
    let mut dst = fir::images::Image::new(w as u32, h as u32, pixel_type);
    let opts = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
    fir::Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| resize_err(e.to_string()))?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("convnet-stream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn png(path: &Path, v: u8) {
        image::GrayImage::from_pixel(4, 4, image::Luma([v]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn skip_leaves_bad_files_out_and_counts_them_once() {
        let d = folder("skip");
        png(&d.join("a.png"), 10);
        std::fs::write(d.join("b.png"), b"not a png").unwrap();
        png(&d.join("c.png"), 30);
        let files = ["a.png", "b.png", "c.png"].map(|f| d.join(f)).to_vec();
        let s = FileStore::new(files, [4, 4, 1], OnError::Skip, 0);
        for _ in 0..2 {
            let got = s.decode_many(&[0, 1, 2]).unwrap();
            assert_eq!(got.iter().map(|(g, _)| *g).collect::<Vec<_>>(), vec![0, 2]);
            assert_eq!(got[1].1, vec![30; 16]);
        }
        assert_eq!(s.skipped(), 1);
    }

    #[test]
    fn fail_names_the_file() {
        let d = folder("fail");
        std::fs::write(d.join("broken.jpg"), b"\xff\xd8 truncated").unwrap();
        let s = FileStore::new(vec![d.join("broken.jpg")], [4, 4, 3], OnError::Fail, 0);
        let e = s.decode_many(&[0]).unwrap_err().to_string();
        assert!(e.contains("broken.jpg"), "{e}");
    }

    #[test]
    fn cache_holds_at_most_its_budget() {
        let d = folder("cache");
        let files: Vec<PathBuf> = (0..5)
            .map(|i| {
                let p = d.join(format!("{i}.png"));
                png(&p, i as u8);
                p
            })
            .collect();
        // 16 bytes per image, budget 40: the first two images are cached.
        let s = FileStore::new(files.clone(), [4, 4, 1], OnError::Fail, 40);
        for pass in 0..3 {
            let got = s.decode_many(&[0, 1, 2, 3, 4]).unwrap();
            // Every image is itself, from the cache or decoded (a cache hit
            // that returned a neighbour's bytes passed a count of bytes).
            for (i, (g, bytes)) in got.iter().enumerate() {
                assert_eq!((*g, bytes), (i, &vec![i as u8; 16]), "pass {pass}");
            }
            assert_eq!(s.decode(1).unwrap(), vec![1; 16], "pass {pass}");
        }
        assert_eq!(s.cached_bytes(), 32);
        // Everything cached, read in another order.
        let s = FileStore::new(files, [4, 4, 1], OnError::Fail, 1 << 20);
        for _ in 0..2 {
            let got = s.decode_many(&[4, 2, 0, 3, 1]).unwrap();
            for (g, bytes) in got {
                assert_eq!(bytes, vec![g as u8; 16]);
            }
        }
    }
}
