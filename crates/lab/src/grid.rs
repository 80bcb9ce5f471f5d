//! Image grids: feature maps, filters and input images as PNG tiles.
//!
//! A grid of `k` maps of `h x w` has `cols = ceil(sqrt(k))` columns; each
//! map is drawn as a tile of `h*scale x w*scale` pixels with a `GAP`-pixel
//! white border. Map values are scaled to 0..255 by the map's own minimum
//! and maximum (a constant map is drawn mid-grey).

use crate::error::{io_err, Result};
use convnet_tensor::Tensor;
use image::{Rgb, RgbImage};
use std::path::Path;

/// Pixels between tiles.
pub const GAP: u32 = 2;

/// Layout of a grid: where tile `k` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridLayout {
    /// Tiles per row.
    pub cols: u32,
    /// Rows of tiles.
    pub rows: u32,
    /// Tile height in pixels.
    pub tile_h: u32,
    /// Tile width in pixels.
    pub tile_w: u32,
}

impl GridLayout {
    /// The layout for `k` tiles of `h x w` map pixels at `scale`.
    pub fn new(k: usize, h: usize, w: usize, scale: u32) -> Self {
        let cols = (k as f64).sqrt().ceil().max(1.0) as u32;
        let rows = (k as u32).div_ceil(cols).max(1);
        GridLayout {
            cols,
            rows,
            tile_h: h as u32 * scale,
            tile_w: w as u32 * scale,
        }
    }
    /// Image size.
    pub fn size(&self) -> (u32, u32) {
        (
            self.cols * (self.tile_w + GAP) + GAP,
            self.rows * (self.tile_h + GAP) + GAP,
        )
    }
    /// Top-left pixel of tile `k`.
    pub fn origin(&self, k: usize) -> (u32, u32) {
        let (r, c) = (k as u32 / self.cols, k as u32 % self.cols);
        (GAP + c * (self.tile_w + GAP), GAP + r * (self.tile_h + GAP))
    }
}

/// A map's values scaled to 0..255 by its own range.
pub fn normalize(values: &[f32]) -> Vec<u8> {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if hi <= lo || hi.is_nan() || lo.is_nan() {
        return vec![128; values.len()];
    }
    values
        .iter()
        .map(|&v| (((v - lo) / (hi - lo)) * 255.0).round() as u8)
        .collect()
}

/// Channel `ch` of one `[H, W, C]` activation, row-major.
pub fn channel(act: &[f32], c: usize, ch: usize) -> Vec<f32> {
    act.iter().skip(ch).step_by(c).copied().collect()
}

/// Draws the channels of one activation `[H, W, C]` as a grayscale grid.
pub fn feature_grid(
    act: &[f32],
    h: usize,
    w: usize,
    c: usize,
    scale: u32,
) -> (RgbImage, GridLayout) {
    let layout = GridLayout::new(c, h, w, scale);
    let (iw, ih) = layout.size();
    let mut img = RgbImage::from_pixel(iw, ih, Rgb([255, 255, 255]));
    for ch in 0..c {
        let px = normalize(&channel(act, c, ch));
        let (ox, oy) = layout.origin(ch);
        for y in 0..h {
            for x in 0..w {
                let v = px[y * w + x];
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(
                            ox + x as u32 * scale + dx,
                            oy + y as u32 * scale + dy,
                            Rgb([v, v, v]),
                        );
                    }
                }
            }
        }
    }
    (img, layout)
}

/// Draws conv filters `[KH, KW, C, F]`: grayscale tiles for one input
/// channel, RGB tiles for three (each filter scaled by its own range),
/// otherwise the mean over input channels.
pub fn filter_grid(kernel: &Tensor, scale: u32) -> RgbImage {
    let s = kernel.shape();
    let (kh, kw, c, f) = (s[0], s[1], s[2], s[3]);
    let layout = GridLayout::new(f, kh, kw, scale);
    let (iw, ih) = layout.size();
    let mut img = RgbImage::from_pixel(iw, ih, Rgb([255, 255, 255]));
    let at =
        |y: usize, x: usize, ch: usize, fi: usize| kernel.data()[((y * kw + x) * c + ch) * f + fi];
    for fi in 0..f {
        let (ox, oy) = layout.origin(fi);
        let planes: Vec<Vec<u8>> = if c == 3 {
            let all: Vec<f32> = (0..kh * kw * 3)
                .map(|i| at(i / 3 / kw, (i / 3) % kw, i % 3, fi))
                .collect();
            let n = normalize(&all);
            (0..3)
                .map(|ch| n.iter().skip(ch).step_by(3).copied().collect())
                .collect()
        } else {
            let mean: Vec<f32> = (0..kh * kw)
                .map(|i| (0..c).map(|ch| at(i / kw, i % kw, ch, fi)).sum::<f32>() / c as f32)
                .collect();
            let n = normalize(&mean);
            vec![n.clone(), n.clone(), n]
        };
        for y in 0..kh {
            for x in 0..kw {
                let p = Rgb([
                    planes[0][y * kw + x],
                    planes[1][y * kw + x],
                    planes[2][y * kw + x],
                ]);
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(ox + x as u32 * scale + dx, oy + y as u32 * scale + dy, p);
                    }
                }
            }
        }
    }
    img
}

/// An input image `[H, W, C]` with values in [0, 1], upscaled.
pub fn input_image(x: &[f32], h: usize, w: usize, c: usize, scale: u32) -> RgbImage {
    let mut img = RgbImage::new(w as u32 * scale, h as u32 * scale);
    for y in 0..h {
        for xx in 0..w {
            let v = |ch: usize| {
                (x[(y * w + xx) * c + ch.min(c - 1)].clamp(0.0, 1.0) * 255.0).round() as u8
            };
            let p = if c >= 3 {
                Rgb([v(0), v(1), v(2)])
            } else {
                Rgb([v(0), v(0), v(0)])
            };
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(xx as u32 * scale + dx, y as u32 * scale + dy, p);
                }
            }
        }
    }
    img
}

/// Two grids side by side (e.g. maps before and after pooling), centred vertically.
pub fn side_by_side(a: &RgbImage, b: &RgbImage) -> RgbImage {
    let gap = 24;
    let (w, h) = (a.width() + gap + b.width(), a.height().max(b.height()));
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    image::imageops::overlay(&mut img, a, 0, ((h - a.height()) / 2) as i64);
    image::imageops::overlay(
        &mut img,
        b,
        (a.width() + gap) as i64,
        ((h - b.height()) / 2) as i64,
    );
    img
}

/// Saves a PNG, naming the file in errors.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
    }
    img.save(path).map_err(|e| io_err(path, e))
}

/// A scale that makes an `h x w` map about `target` pixels on its long side.
pub fn scale_for(h: usize, w: usize, target: usize) -> u32 {
    (target / h.max(w).max(1)).clamp(1, 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_normalization() {
        let l = GridLayout::new(10, 3, 4, 2);
        assert_eq!((l.cols, l.rows), (4, 3));
        assert_eq!(l.origin(5), (GAP + (8 + GAP), GAP + (6 + GAP)));
        assert_eq!(normalize(&[1.0, 3.0, 2.0]), vec![0, 255, 128]);
        assert_eq!(normalize(&[2.0, 2.0]), vec![128, 128]);
    }

    #[test]
    fn feature_grid_tiles_hold_the_channels() {
        // [2, 2, 2]: channel 0 = 0,1,2,3; channel 1 = 3,2,1,0.
        let act = [0.0, 3.0, 1.0, 2.0, 2.0, 1.0, 3.0, 0.0];
        let (img, l) = feature_grid(&act, 2, 2, 2, 3);
        let (ox, oy) = l.origin(1);
        assert_eq!(img.get_pixel(ox, oy).0, [255, 255, 255]); // channel 1 pixel (0,0) = 3 = max
        assert_eq!(img.get_pixel(ox + 3, oy + 3).0, [0, 0, 0]); // pixel (1,1) = 0 = min
    }
}
