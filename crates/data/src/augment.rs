//! On-the-fly augmentation with the parameters of Keras's
//! `ImageDataGenerator`: rotation, shifts, shear, zoom, flips, brightness,
//! and the fill modes for pixels that come from outside the image.
//!
//! Each image gets one random affine transform, composed exactly as Keras
//! composes it (`rotation @ shift @ shear @ zoom`, in (row, column)
//! coordinates around the image centre), and is resampled once with
//! bilinear interpolation; flips and brightness follow.
//!
//! ```text
//! rotation  R = [[cos t, -sin t], [sin t, cos t]]     t ~ U(-rotation_range, rotation_range) degrees
//! shift     (tx, ty): rows, columns                   fraction of the size (< 1) or whole pixels (>= 1)
//! shear     S = [[1, -sin s], [0, cos s]]             s ~ U(-shear_range, shear_range) degrees
//! zoom      Z = diag(zx, zy)                          zx, zy ~ U(1 - z, 1 + z) independently
//! input(r, c) = A (r - r0, c - c0) + (r0, c0) + A_shift,   A = R S Z,  centre (r0, c0) = ((h-1)/2, (w-1)/2)
//! ```
//!
//! The matrix maps *output* coordinates to *input* coordinates, as in Keras
//! (so a zoom factor of 0.5 magnifies 2x). One deliberate difference: Keras
//! centres at `(h/2 + 0.5, w/2 + 0.5)`, which rotates about a point half a
//! pixel to a pixel and a half off the true centre; we use the true centre
//! so that a 90 degree rotation is an exact permutation.

use crate::error::{DataError, Result};
use convnet_nn::{Batch, DataSource, Rng, TensorData};
use convnet_tensor::Tensor;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

/// How pixels outside the input are filled.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FillMode {
    /// A constant value (`cval`).
    Constant,
    /// The nearest edge pixel (Keras's default).
    #[default]
    Nearest,
    /// Mirror about the edge: `d c b a | a b c d | d c b a`.
    Reflect,
    /// Tile: `a b c d | a b c d | a b c d`.
    Wrap,
}

impl FillMode {
    /// Parses `constant`, `nearest`, `reflect` or `wrap`.
    pub fn from_name(s: &str) -> Option<FillMode> {
        Some(match s {
            "constant" => FillMode::Constant,
            "nearest" => FillMode::Nearest,
            "reflect" => FillMode::Reflect,
            "wrap" => FillMode::Wrap,
            _ => return None,
        })
    }
}

/// A shift range: a fraction of the image size (`< 1`) or whole pixels (`>= 1`).
pub type ShiftRange = f32;

/// Augmentation settings (Keras's `ImageDataGenerator` arguments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct AugmentConfig {
    /// Maximum rotation in degrees.
    pub rotation_range: f32,
    /// Horizontal shift: fraction of the width if < 1, else pixels.
    pub width_shift_range: ShiftRange,
    /// Vertical shift: fraction of the height if < 1, else pixels.
    pub height_shift_range: ShiftRange,
    /// Maximum shear angle in degrees.
    pub shear_range: f32,
    /// Zoom factors are drawn from `[1 - zoom_range, 1 + zoom_range]`.
    pub zoom_range: f32,
    /// Flip left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Flip top-bottom with probability 1/2.
    pub vertical_flip: bool,
    /// Multiply pixel values by a factor from this range, then clip to [0, 1].
    pub brightness_range: Option<(f32, f32)>,
    /// Fill mode for pixels from outside the image.
    pub fill_mode: FillMode,
    /// Value for [`FillMode::Constant`].
    pub cval: f32,
}

impl AugmentConfig {
    /// No augmentation.
    pub fn new() -> Self {
        Self::default()
    }
    /// Rotation range in degrees.
    pub fn with_rotation(mut self, deg: f32) -> Self {
        self.rotation_range = deg;
        self
    }
    /// Width and height shift ranges.
    pub fn with_shift(mut self, width: f32, height: f32) -> Self {
        self.width_shift_range = width;
        self.height_shift_range = height;
        self
    }
    /// Shear range in degrees.
    pub fn with_shear(mut self, deg: f32) -> Self {
        self.shear_range = deg;
        self
    }
    /// Zoom range.
    pub fn with_zoom(mut self, z: f32) -> Self {
        self.zoom_range = z;
        self
    }
    /// Random flips.
    pub fn with_flips(mut self, horizontal: bool, vertical: bool) -> Self {
        self.horizontal_flip = horizontal;
        self.vertical_flip = vertical;
        self
    }
    /// Brightness range.
    pub fn with_brightness(mut self, lo: f32, hi: f32) -> Self {
        self.brightness_range = Some((lo, hi));
        self
    }
    /// Fill mode and constant.
    pub fn with_fill(mut self, mode: FillMode, cval: f32) -> Self {
        self.fill_mode = mode;
        self.cval = cval;
        self
    }

    /// True when every setting is off.
    pub fn is_identity(&self) -> bool {
        self.rotation_range == 0.0
            && self.width_shift_range == 0.0
            && self.height_shift_range == 0.0
            && self.shear_range == 0.0
            && self.zoom_range == 0.0
            && !self.horizontal_flip
            && !self.vertical_flip
            && self.brightness_range.is_none()
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, msg: String| {
            Err(DataError::Mismatch(format!("augmentation {what}: {msg}")))
        };
        for (name, v) in [
            ("rotation_range", self.rotation_range),
            ("width_shift_range", self.width_shift_range),
            ("height_shift_range", self.height_shift_range),
            ("shear_range", self.shear_range),
            ("zoom_range", self.zoom_range),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(name, format!("expected a finite value >= 0, found {v}"));
            }
        }
        if self.zoom_range >= 1.0 {
            return bad(
                "zoom_range",
                format!("expected < 1, found {}", self.zoom_range),
            );
        }
        if let Some((lo, hi)) = self.brightness_range {
            if !(lo > 0.0 && lo <= hi) {
                return bad(
                    "brightness_range",
                    format!("expected 0 < lo <= hi, found ({lo}, {hi})"),
                );
            }
        }
        Ok(())
    }

    /// Draws one transform for an `h x w` image.
    pub fn sample(&self, rng: &mut Rng, h: usize, w: usize) -> Transform {
        let mut u = |r: f32| if r > 0.0 { rng.gen_range(-r..=r) } else { 0.0 };
        let theta = u(self.rotation_range);
        let shift = |rng_v: f32, range: f32, size: usize| {
            if range < 1.0 {
                rng_v * size as f32
            } else {
                rng_v.round()
            }
        };
        let tx = shift(u(self.height_shift_range), self.height_shift_range, h);
        let ty = shift(u(self.width_shift_range), self.width_shift_range, w);
        let shear = u(self.shear_range);
        let (zx, zy) = if self.zoom_range > 0.0 {
            let z = self.zoom_range;
            (
                rng.gen_range(1.0 - z..=1.0 + z),
                rng.gen_range(1.0 - z..=1.0 + z),
            )
        } else {
            (1.0, 1.0)
        };
        let flip_h = self.horizontal_flip && rng.gen::<f32>() < 0.5;
        let flip_v = self.vertical_flip && rng.gen::<f32>() < 0.5;
        let brightness =
            self.brightness_range.map_or(
                1.0,
                |(lo, hi)| if lo < hi { rng.gen_range(lo..hi) } else { lo },
            );
        Transform {
            theta,
            tx,
            ty,
            shear,
            zx,
            zy,
            flip_h,
            flip_v,
            brightness,
        }
    }
}

/// One concrete transform (see the module docs for the math).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    /// Rotation in degrees.
    pub theta: f32,
    /// Row shift in pixels.
    pub tx: f32,
    /// Column shift in pixels.
    pub ty: f32,
    /// Shear in degrees.
    pub shear: f32,
    /// Row zoom factor.
    pub zx: f32,
    /// Column zoom factor.
    pub zy: f32,
    /// Flip left-right.
    pub flip_h: bool,
    /// Flip top-bottom.
    pub flip_v: bool,
    /// Brightness factor.
    pub brightness: f32,
}

impl Transform {
    /// The identity.
    pub fn identity() -> Self {
        Transform {
            theta: 0.0,
            tx: 0.0,
            ty: 0.0,
            shear: 0.0,
            zx: 1.0,
            zy: 1.0,
            flip_h: false,
            flip_v: false,
            brightness: 1.0,
        }
    }

    /// `[[a, b, shift_r], [c, d, shift_c]]`: `A = R S Z` and `R * (tx, ty)`,
    /// as Keras's `rotation @ shift @ shear @ zoom`.
    fn matrix(&self) -> [[f64; 3]; 2] {
        let (t, s) = (
            (self.theta as f64).to_radians(),
            (self.shear as f64).to_radians(),
        );
        let r = [[t.cos(), -t.sin()], [t.sin(), t.cos()]];
        let sh = [[1.0, -s.sin()], [0.0, s.cos()]];
        let z = [[self.zx as f64, 0.0], [0.0, self.zy as f64]];
        let mul = |a: [[f64; 2]; 2], b: [[f64; 2]; 2]| {
            [
                [
                    a[0][0] * b[0][0] + a[0][1] * b[1][0],
                    a[0][0] * b[0][1] + a[0][1] * b[1][1],
                ],
                [
                    a[1][0] * b[0][0] + a[1][1] * b[1][0],
                    a[1][0] * b[0][1] + a[1][1] * b[1][1],
                ],
            ]
        };
        let a = mul(mul(r, sh), z);
        let (tx, ty) = (self.tx as f64, self.ty as f64);
        [
            [a[0][0], a[0][1], r[0][0] * tx + r[0][1] * ty],
            [a[1][0], a[1][1], r[1][0] * tx + r[1][1] * ty],
        ]
    }

    /// Whether the affine part is the identity (no resampling needed).
    fn affine_is_identity(&self) -> bool {
        self.theta == 0.0
            && self.tx == 0.0
            && self.ty == 0.0
            && self.shear == 0.0
            && self.zx == 1.0
            && self.zy == 1.0
    }

    /// Applies the transform to one `h x w x c` image (NHWC sample).
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        img: &[f32],
        h: usize,
        w: usize,
        c: usize,
        fill: FillMode,
        cval: f32,
        out: &mut [f32],
    ) {
        if self.affine_is_identity() {
            out.copy_from_slice(img);
        } else {
            let m = self.matrix();
            let (r0, c0) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
            for r in 0..h {
                for col in 0..w {
                    let (dr, dc) = (r as f64 - r0, col as f64 - c0);
                    let ir = m[0][0] * dr + m[0][1] * dc + m[0][2] + r0;
                    let ic = m[1][0] * dr + m[1][1] * dc + m[1][2] + c0;
                    let o = (r * w + col) * c;
                    bilinear(img, h, w, c, ir, ic, fill, cval, &mut out[o..o + c]);
                }
            }
        }
        if self.flip_h {
            for r in 0..h {
                for col in 0..w / 2 {
                    for ch in 0..c {
                        out.swap((r * w + col) * c + ch, (r * w + (w - 1 - col)) * c + ch);
                    }
                }
            }
        }
        if self.flip_v {
            for r in 0..h / 2 {
                for i in 0..w * c {
                    out.swap(r * w * c + i, (h - 1 - r) * w * c + i);
                }
            }
        }
        if self.brightness != 1.0 {
            for v in out.iter_mut() {
                *v = (*v * self.brightness).clamp(0.0, 1.0);
            }
        }
    }
}

/// Maps an out-of-range index into range per the fill mode (`None` = constant).
fn resolve(i: i64, n: usize, fill: FillMode) -> Option<usize> {
    let n = n as i64;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match fill {
        FillMode::Constant => None,
        FillMode::Nearest => Some(i.clamp(0, n - 1) as usize),
        FillMode::Wrap => Some(i.rem_euclid(n) as usize),
        FillMode::Reflect => {
            let p = i.rem_euclid(2 * n);
            Some(if p < n { p } else { 2 * n - 1 - p } as usize)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn bilinear(
    img: &[f32],
    h: usize,
    w: usize,
    c: usize,
    r: f64,
    col: f64,
    fill: FillMode,
    cval: f32,
    out: &mut [f32],
) {
    let (r_f, c_f) = (r.floor(), col.floor());
    let (fr, fc) = ((r - r_f) as f32, (col - c_f) as f32);
    let (r_i, c_i) = (r_f as i64, c_f as i64);
    out.fill(0.0);
    for (dr, wr) in [(0, 1.0 - fr), (1, fr)] {
        for (dc, wc) in [(0, 1.0 - fc), (1, fc)] {
            let wgt = wr * wc;
            if wgt == 0.0 {
                continue;
            }
            match (resolve(r_i + dr, h, fill), resolve(c_i + dc, w, fill)) {
                (Some(rr), Some(cc)) => {
                    let px = &img[(rr * w + cc) * c..(rr * w + cc + 1) * c];
                    out.iter_mut().zip(px).for_each(|(o, v)| *o += wgt * v);
                }
                _ => out.iter_mut().for_each(|o| *o += wgt * cval),
            }
        }
    }
}

/// Augments a batch `[N, H, W, C]` in place, image `i` with a transform
/// drawn from `seed` and `i`.
pub fn augment_batch(cfg: &AugmentConfig, x: &mut Tensor, seed: u64) {
    augment_batch_from(cfg, x, seed, 0)
}

/// [`augment_batch`] for rows `first..first + N` of a larger set: image `i`
/// of `x` gets the transform of image `first + i`.
pub fn augment_batch_from(cfg: &AugmentConfig, x: &mut Tensor, seed: u64, first: usize) {
    let s = x.shape().to_vec();
    let (h, w, c) = (s[1], s[2], s[3]);
    let per = h * w * c;
    let mut out = vec![0.0; per];
    for (i, img) in x.data_mut().chunks_exact_mut(per).enumerate() {
        let i = first + i;
        let mut rng = Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let t = cfg.sample(&mut rng, h, w);
        t.apply(img, h, w, c, cfg.fill_mode, cfg.cval, &mut out);
        img.copy_from_slice(&out);
    }
}

/// A data source whose training batches are augmented on the fly.
pub struct Augmented<S: DataSource = TensorData> {
    inner: S,
    config: AugmentConfig,
}

impl<S: DataSource> Augmented<S> {
    /// Augments `inner`'s images (which must be `[H, W, C]` each) with `config`.
    pub fn new(inner: S, config: AugmentConfig) -> Result<Self> {
        config.validate()?;
        if inner.input_shape().len() != 3 {
            return Err(DataError::Mismatch(format!(
                "augmentation needs images [N, H, W, C], found samples of shape {:?}",
                inner.input_shape()
            )));
        }
        Ok(Augmented { inner, config })
    }
    /// The source being augmented.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: DataSource> DataSource for Augmented<S> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn input_shape(&self) -> Vec<usize> {
        self.inner.input_shape()
    }
    fn batch(&self, indices: &[usize], seed: u64) -> convnet_nn::Result<Batch> {
        let (mut x, y) = self.inner.batch(indices, seed)?;
        if !self.config.is_identity() {
            augment_batch(&self.config, &mut x, seed);
        }
        Ok((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x5 single-channel ramp with distinct values.
    fn ramp(h: usize, w: usize) -> Vec<f32> {
        (0..h * w).map(|i| i as f32 / 100.0).collect()
    }

    fn run(t: Transform, img: &[f32], h: usize, w: usize, fill: FillMode) -> Vec<f32> {
        let mut out = vec![0.0; img.len()];
        t.apply(img, h, w, 1, fill, 0.0, &mut out);
        out
    }

    #[test]
    fn rotation_by_90_degrees_is_an_exact_permutation() {
        let n = 5;
        let img = ramp(n, n);
        let t = Transform {
            theta: 90.0,
            ..Transform::identity()
        };
        let out = run(t, &img, n, n, FillMode::Constant);
        // input(r, c) = R (r - 2, c - 2) + 2 with R = [[0, -1], [1, 0]]:
        // out[r][c] = img[4 - c][r].
        for r in 0..n {
            for c in 0..n {
                assert!(
                    (out[r * n + c] - img[(n - 1 - c) * n + r]).abs() < 1e-6,
                    "({r},{c})"
                );
            }
        }
    }

    #[test]
    fn integer_shift_moves_pixels_and_fills() {
        let (h, w) = (4, 5);
        let img = ramp(h, w);
        // ty = 2: output column c reads input column c + 2.
        let t = Transform {
            ty: 2.0,
            ..Transform::identity()
        };
        let out = run(t, &img, h, w, FillMode::Constant);
        for r in 0..h {
            for c in 0..w {
                let want = if c + 2 < w { img[r * w + c + 2] } else { 0.0 };
                assert!((out[r * w + c] - want).abs() < 1e-6);
            }
        }
        let out = run(t, &img, h, w, FillMode::Nearest);
        assert_eq!(out[w - 1], img[w - 1]);
        let out = run(t, &img, h, w, FillMode::Wrap);
        assert_eq!(out[w - 1], img[1]);
        let out = run(t, &img, h, w, FillMode::Reflect);
        // columns 5, 6 reflect to 4, 3
        assert_eq!((out[w - 2], out[w - 1]), (img[4], img[3]));
    }

    #[test]
    fn flips_mirror_the_image() {
        let (h, w) = (3, 4);
        let img = ramp(h, w);
        let out = run(
            Transform {
                flip_h: true,
                ..Transform::identity()
            },
            &img,
            h,
            w,
            FillMode::Nearest,
        );
        assert_eq!(&out[..4], &[img[3], img[2], img[1], img[0]]);
        let out = run(
            Transform {
                flip_v: true,
                ..Transform::identity()
            },
            &img,
            h,
            w,
            FillMode::Nearest,
        );
        assert_eq!(&out[..4], &img[8..12]);
    }

    #[test]
    fn zoom_by_two_at_the_centre() {
        // Zoom factor 0.5 (output -> input) magnifies 2x about the centre.
        let n = 5;
        let img = ramp(n, n);
        let out = run(
            Transform {
                zx: 0.5,
                zy: 0.5,
                ..Transform::identity()
            },
            &img,
            n,
            n,
            FillMode::Nearest,
        );
        assert_eq!(out[2 * n + 2], img[2 * n + 2]); // the centre stays
                                                    // Output (0, 0) reads input (1, 1); output (0, 1) reads (1, 1.5).
        assert!((out[0] - img[n + 1]).abs() < 1e-6);
        assert!((out[1] - (img[n + 1] + img[n + 2]) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn all_zero_settings_are_the_identity_and_sampling_is_seeded() {
        let cfg = AugmentConfig::new();
        assert!(cfg.is_identity());
        let mut rng = Rng::seed_from_u64(1);
        assert_eq!(cfg.sample(&mut rng, 28, 28), Transform::identity());
        let cfg = AugmentConfig::new()
            .with_rotation(10.0)
            .with_zoom(0.1)
            .with_shift(0.1, 0.1);
        let draw = |s| cfg.sample(&mut Rng::seed_from_u64(s), 28, 28);
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let t = draw(3);
        assert!(t.theta.abs() <= 10.0 && t.tx.abs() <= 2.8 && (t.zx - 1.0).abs() <= 0.1);
        let mut x = Tensor::from_vec(&[2, 5, 5, 1], ramp(10, 5)).unwrap();
        let orig = x.clone();
        augment_batch(&AugmentConfig::new(), &mut x, 9);
        assert_eq!(x, orig);
        assert!(AugmentConfig::new().with_zoom(1.5).validate().is_err());
        assert!(AugmentConfig::new()
            .with_brightness(0.0, 1.0)
            .validate()
            .is_err());
    }

    #[test]
    fn brightness_scales_and_clips() {
        let img = vec![0.2, 0.6];
        let mut out = vec![0.0; 2];
        Transform {
            brightness: 2.0,
            ..Transform::identity()
        }
        .apply(&img, 1, 2, 1, FillMode::Nearest, 0.0, &mut out);
        assert_eq!(out, vec![0.4, 1.0]);
    }
}
