//! Image decoding with a pixel limit read from the header: an "image bomb"
//! (a 431 KB PNG that says 20000x20000 and decodes to 400 MB, 1.2 GB as RGB)
//! is refused before a byte of its pixels is allocated, wherever images come
//! in: training folders, `predict`, `explain` and the explorer's uploads.
//!
//! The limit is process-wide, as Pillow's `Image.MAX_IMAGE_PIXELS` is: the
//! command line sets it once (`--max-pixels`) and every reader asks it.

use crate::error::{format_err, io_err};
use crate::Result;
use image::{DynamicImage, ImageDecoder, ImageReader};
use std::io::{BufRead, Seek};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The default limit: 64 megapixels (8192x8192; a 61 MP camera's
/// 9504x6336 photo passes). Decoding one costs at most 4 bytes a pixel,
/// 256 MiB.
pub const DEFAULT_MAX_PIXELS: u64 = 64 << 20;

static MAX_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_PIXELS);

/// Sets the largest width x height any image may have to be decoded.
pub fn set_max_pixels(n: u64) {
    MAX_PIXELS.store(n.max(1), Ordering::Relaxed);
}

/// The largest width x height an image may have (see [`set_max_pixels`]).
pub fn max_pixels() -> u64 {
    MAX_PIXELS.load(Ordering::Relaxed)
}

fn unreadable(source: &Path, e: impl std::fmt::Display) -> crate::DataError {
    format_err(
        source,
        "image data",
        "a readable JPEG, PNG, BMP or GIF image",
        format!("an error: {e}"),
    )
}

/// Decodes an image from `reader` (named `source` in errors), after checking
/// its size from the header against [`max_pixels`]; the decoder's own
/// allocations are capped to what an image of that size needs.
pub fn read_image<R: BufRead + Seek>(
    reader: ImageReader<R>,
    source: &Path,
) -> Result<DynamicImage> {
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| io_err(source, e))?;
    let max = max_pixels();
    let mut limits = image::Limits::default();
    // 16-bit RGBA is the widest pixel the formats we read decode to.
    limits.max_alloc = Some(max.saturating_mul(8).max(64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::IoError(io) => io_err(source, io),
        other => unreadable(source, other),
    })?;
    let (w, h) = decoder.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels > max {
        return Err(format_err(
            source,
            "image size",
            format!("at most {max} pixels (--max-pixels)"),
            format!("{w}x{h} = {pixels} pixels"),
        ));
    }
    DynamicImage::from_decoder(decoder).map_err(|e| unreadable(source, e))
}

/// Opens and decodes the image file at `path` (see [`read_image`]).
pub fn open_image(path: &Path) -> Result<DynamicImage> {
    let reader = ImageReader::open(path).map_err(|e| io_err(path, e))?;
    read_image(reader, path)
}

/// Decodes an image held in memory, e.g. an upload (see [`read_image`]).
pub fn image_from_memory(bytes: &[u8], source: &str) -> Result<DynamicImage> {
    read_image(
        ImageReader::new(std::io::Cursor::new(bytes)),
        Path::new(source),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG header that claims `w` x `h` gray pixels, with one empty IDAT.
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        // Encode a 1x1 image, then patch the header's size: the decoder must
        // refuse it from the header alone.
        use image::ImageEncoder;
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&[0u8], 1, 1, image::ExtendedColorType::L8)
            .unwrap();
        out[16..20].copy_from_slice(&w.to_be_bytes());
        out[20..24].copy_from_slice(&h.to_be_bytes());
        // The header's CRC covers type + data (bytes 12..29).
        let crc = crc32(&out[12..29]);
        out[29..33].copy_from_slice(&crc.to_be_bytes());
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn an_image_larger_than_the_limit_is_refused_from_its_header() {
        let bomb = png_claiming(20_000, 20_000);
        let e = image_from_memory(&bomb, "bomb.png")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bomb.png") && e.contains("20000x20000 = 400000000 pixels"),
            "{e}"
        );
        // Within the limit, the same header gets as far as the pixel data.
        let small = png_claiming(3, 2);
        let e = image_from_memory(&small, "small.png")
            .unwrap_err()
            .to_string();
        assert!(e.contains("image data"), "{e}");
        let mut ok = Vec::new();
        image::GrayImage::from_pixel(5, 4, image::Luma([7u8]))
            .write_to(&mut std::io::Cursor::new(&mut ok), image::ImageFormat::Png)
            .unwrap();
        let img = image_from_memory(&ok, "ok.png").unwrap();
        assert_eq!((img.width(), img.height()), (5, 4));
    }
}
