//! A digit image prepared as MNIST's were, so that a photo or a drawing of a
//! digit reaches an MNIST net the way the digits it learned from did.
//!
//! LeCun, Cortes and Burges made MNIST from NIST's black-on-white digits:
//! "size normalized to fit in a 20x20 pixel box while preserving their
//! aspect ratio ... [then] centered in a 28x28 image by computing the center
//! of mass of the pixels", stored as white ink on black. Here, on values in
//! [0, 1] of any size:
//!
//! 1. a light background (the border's median above one half) is inverted,
//!    so ink is bright and paper dark;
//! 2. the background level (the border's median) is subtracted and the ink
//!    stretched so that the brightest pixel is 1; what stays below
//!    [`NOISE`] (paper texture, JPEG ringing) becomes 0;
//! 3. the ink's bounding box (pixels above [`INK`]) is cut out and scaled,
//!    aspect kept, so that its longer side is [`BOX`] pixels (bilinear,
//!    anti-aliased when shrinking: the grey edges MNIST's digits have);
//! 4. it is placed in a [`SIDE`] x [`SIDE`] field of zeros with its centre of
//!    mass on the field's centre (pixel centres at i + 0.5, the shift
//!    rounded to whole pixels; anything that falls outside is cut).
//!
//! An image with no ink (contrast under [`MIN_CONTRAST`]: a blank page)
//! gives the empty field, and says so.

use crate::error::{DataError, Result};
use fast_image_resize as fir;

/// The side of the prepared field (MNIST's 28).
pub const SIDE: usize = 28;
/// The side of the box the ink is scaled to fit (MNIST's 20).
pub const BOX: usize = 20;
/// Stretched values above this are ink, for the bounding box.
pub const INK: f32 = 0.2;
/// Stretched values below this are background.
pub const NOISE: f32 = 0.1;
/// Less contrast than this between the background and the brightest pixel:
/// no ink.
pub const MIN_CONTRAST: f32 = 0.1;

/// A digit prepared by [`prepare_digit`].
#[derive(Clone, Debug, PartialEq)]
pub struct Digit {
    /// `SIDE x SIDE` values in [0, 1], row by row, white ink on black.
    pub pixels: Vec<f32>,
    /// Whether the background was light and the image was inverted.
    pub inverted: bool,
    /// The ink's box in the source, `(top, bottom, left, right)` inclusive;
    /// `None` when no ink was found (the field is all zeros).
    pub ink: Option<(usize, usize, usize, usize)>,
}

/// Prepares an `h x w` grey image (`gray`, values in [0, 1], row by row) as
/// MNIST's digits were (see the module's comment).
pub fn prepare_digit(gray: &[f32], h: usize, w: usize) -> Result<Digit> {
    if h == 0 || w == 0 || gray.len() != h * w {
        return Err(DataError::Mismatch(format!(
            "a digit image of {h}x{w} pixels needs {} values, found {}",
            h * w,
            gray.len()
        )));
    }
    let border = border_median(gray, h, w);
    let inverted = border > 0.5;
    let ink = |v: f32| if inverted { 1.0 - v } else { v };
    let background = ink(border);
    let peak = gray.iter().map(|&v| ink(v)).fold(f32::MIN, f32::max);
    let empty = Digit {
        pixels: vec![0.0; SIDE * SIDE],
        inverted,
        ink: None,
    };
    if peak.is_nan() || peak - background < MIN_CONTRAST {
        return Ok(empty);
    }
    // v' = (v - background) / (peak - background), clamped; noise to 0.
    let stretched: Vec<f32> = gray
        .iter()
        .map(|&v| {
            let s = ((ink(v) - background) / (peak - background)).clamp(0.0, 1.0);
            if s < NOISE {
                0.0
            } else {
                s
            }
        })
        .collect();
    let Some((top, bottom, left, right)) = ink_box(&stretched, w) else {
        return Ok(empty);
    };
    let (ch, cw) = (bottom - top + 1, right - left + 1);
    let crop: Vec<f32> = (top..=bottom)
        .flat_map(|y| stretched[y * w + left..=y * w + right].iter().copied())
        .collect();
    // The longer side becomes BOX pixels, the other in proportion.
    let long = ch.max(cw) as f32;
    let nh = ((ch as f32 * BOX as f32 / long).round() as usize).clamp(1, BOX);
    let nw = ((cw as f32 * BOX as f32 / long).round() as usize).clamp(1, BOX);
    let fitted = resize_f32(&crop, ch, cw, nh, nw)?;
    Ok(Digit {
        pixels: centre_by_mass(&fitted, nh, nw),
        inverted,
        ink: Some((top, bottom, left, right)),
    })
}

/// The median of the pixels on the image's edge (the paper, for a photo of a
/// digit).
fn border_median(gray: &[f32], h: usize, w: usize) -> f32 {
    let mut edge: Vec<f32> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (y, x)))
        .filter(|&(y, x)| y == 0 || x == 0 || y + 1 == h || x + 1 == w)
        .map(|(y, x)| gray[y * w + x])
        .collect();
    edge.sort_by(f32::total_cmp);
    edge[edge.len() / 2]
}

/// The box, inclusive, of the pixels above [`INK`].
fn ink_box(v: &[f32], w: usize) -> Option<(usize, usize, usize, usize)> {
    let mut b: Option<(usize, usize, usize, usize)> = None;
    for (i, _) in v.iter().enumerate().filter(|(_, &s)| s > INK) {
        let (y, x) = (i / w, i % w);
        b = Some(match b {
            None => (y, y, x, x),
            Some((t, bo, l, r)) => (t.min(y), bo.max(y), l.min(x), r.max(x)),
        });
    }
    b
}

/// `h x w` values resized to `nh x nw` (bilinear, the filter stretched when
/// shrinking), clamped to [0, 1].
fn resize_f32(v: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Result<Vec<f32>> {
    if (h, w) == (nh, nw) {
        return Ok(v.to_vec());
    }
    let err = |e: String| DataError::Mismatch(format!("resizing the digit's ink: {e}"));
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
    let src = fir::images::Image::from_vec_u8(w as u32, h as u32, bytes, fir::PixelType::F32)
        .map_err(|e| err(e.to_string()))?;
    let mut dst = fir::images::Image::new(nw as u32, nh as u32, fir::PixelType::F32);
    let opts = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear));
    fir::Resizer::new()
        .resize(&src, &mut dst, &opts)
        .map_err(|e| err(e.to_string()))?;
    Ok(dst
        .into_vec()
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]).clamp(0.0, 1.0))
        .collect())
}

/// An `h x w` patch placed in the `SIDE x SIDE` field with its centre of
/// mass (pixel centres at i + 0.5) on the field's centre, the shift rounded.
fn centre_by_mass(v: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mass: f64 = v.iter().map(|&x| x as f64).sum();
    let (mut my, mut mx) = (0.0f64, 0.0f64);
    for (i, &x) in v.iter().enumerate() {
        my += ((i / w) as f64 + 0.5) * x as f64;
        mx += ((i % w) as f64 + 0.5) * x as f64;
    }
    let half = SIDE as f64 / 2.0;
    let (cy, cx) = if mass > 0.0 {
        (my / mass, mx / mass)
    } else {
        (h as f64 / 2.0, w as f64 / 2.0)
    };
    let (oy, ox) = ((half - cy).round() as isize, (half - cx).round() as isize);
    let mut out = vec![0.0; SIDE * SIDE];
    for (i, &x) in v.iter().enumerate() {
        let (y, xx) = ((i / w) as isize + oy, (i % w) as isize + ox);
        if (0..SIDE as isize).contains(&y) && (0..SIDE as isize).contains(&xx) {
            out[y as usize * SIDE + xx as usize] = x;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An "L": a bar 12 tall and 2 wide with a foot 8 wide, white on black,
    /// at (row 3, column 5) of a 28 x 28 field, drawn `k` times larger and
    /// placed at `(top, left)` of an `h x w` canvas of `paper` with `ink`.
    fn ell(
        k: usize,
        h: usize,
        w: usize,
        top: usize,
        left: usize,
        paper: f32,
        ink: f32,
    ) -> Vec<f32> {
        let mut v = vec![paper; h * w];
        for y in 0..12 * k {
            for x in 0..8 * k {
                let bar = x < 2 * k;
                let foot = y >= 10 * k;
                if bar || foot {
                    v[(top + y) * w + left + x] = ink;
                }
            }
        }
        v
    }

    /// The box of the field's ink.
    fn extent(p: &[f32]) -> (usize, usize, usize, usize) {
        ink_box(p, SIDE).unwrap()
    }

    fn centre_of_mass(p: &[f32]) -> (f64, f64) {
        let m: f64 = p.iter().map(|&x| x as f64).sum();
        let cy: f64 = p
            .iter()
            .enumerate()
            .map(|(i, &x)| ((i / SIDE) as f64 + 0.5) * x as f64)
            .sum();
        let cx: f64 = p
            .iter()
            .enumerate()
            .map(|(i, &x)| ((i % SIDE) as f64 + 0.5) * x as f64)
            .sum();
        (cy / m, cx / m)
    }

    #[test]
    fn white_ink_on_black_is_fitted_to_20_pixels_and_centred_by_mass() {
        let d = prepare_digit(&ell(1, 28, 28, 3, 5, 0.0, 1.0), 28, 28).unwrap();
        assert!(!d.inverted);
        assert_eq!(d.ink, Some((3, 14, 5, 12)));
        let (t, b, l, r) = extent(&d.pixels);
        // 12 x 8 ink scaled by 20/12: 20 rows, 13 columns.
        assert_eq!((b - t + 1, r - l + 1), (20, 13));
        let (cy, cx) = centre_of_mass(&d.pixels);
        assert!(
            (cy - 14.0).abs() <= 0.5 && (cx - 14.0).abs() <= 0.5,
            "{cy} {cx}"
        );
        // The foot stays at the bottom and the bar on the left.
        let row = |y: usize| d.pixels[y * SIDE..(y + 1) * SIDE].iter().sum::<f32>();
        assert!(row(b) > 3.0 * row(t), "{} {}", row(b), row(t));
    }

    #[test]
    fn a_photo_of_dark_ink_on_light_paper_gives_the_same_digit() {
        let white = prepare_digit(&ell(1, 28, 28, 3, 5, 0.0, 1.0), 28, 28).unwrap();
        // Five times larger, off-centre, dark grey ink on off-white paper.
        let (h, w) = (150, 200);
        let photo = ell(5, h, w, 70, 130, 0.92, 0.15);
        let d = prepare_digit(&photo, h, w).unwrap();
        assert!(d.inverted);
        assert_eq!(d.ink, Some((70, 129, 130, 169)));
        assert_eq!(extent(&d.pixels), extent(&white.pixels));
        let diff = d
            .pixels
            .iter()
            .zip(&white.pixels)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        // Only the anti-aliased edges differ (shrunk vs grown).
        assert!(diff < 0.5, "{diff}");
        assert!(d.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn grey_paper_is_background_not_ink() {
        // White ink on mid-grey (the "7 on grey" an MNIST net reads as a 3
        // when the grey reaches it).
        let d = prepare_digit(&ell(2, 60, 60, 10, 10, 0.5, 1.0), 60, 60).unwrap();
        assert!(!d.inverted);
        let (t, b, l, r) = extent(&d.pixels);
        let outside = d
            .pixels
            .iter()
            .enumerate()
            .filter(|(i, _)| !((t..=b).contains(&(i / SIDE)) && (l..=r).contains(&(i % SIDE))))
            .map(|(_, v)| *v)
            .fold(0.0, f32::max);
        assert_eq!(outside, 0.0);
    }

    #[test]
    fn a_blank_page_has_no_ink() {
        let d = prepare_digit(&vec![1.0; 40 * 30], 40, 30).unwrap();
        assert!(d.inverted);
        assert_eq!(d.ink, None);
        assert!(d.pixels.iter().all(|&v| v == 0.0));
        assert_eq!(d.pixels.len(), SIDE * SIDE);
    }

    #[test]
    fn a_wrong_size_is_an_error() {
        let e = prepare_digit(&[0.0; 10], 3, 4).unwrap_err().to_string();
        assert!(
            e.contains("3x4") && e.contains("12") && e.contains("10"),
            "{e}"
        );
    }
}
