//! Test-time augmentation: a model's softmax outputs averaged over the
//! original images and `views - 1` augmented copies.
//!
//! ```text
//! p(x) = (f(x) + f(t_1 x) + ... + f(t_{V-1} x)) / V
//! ```
//!
//! The transforms `t_v` are drawn from an [`AugmentConfig`] with a fixed
//! seed per view and image, so a TTA prediction is reproducible; view 0 is
//! always the unchanged image.

use convnet_data::augment::{augment_batch_from, AugmentConfig};
use convnet_data::LabeledImages;
use convnet_nn::{Model, NnError, Result};
use convnet_tensor::Tensor;

/// Seed of view `v` (v >= 1).
fn view_seed(seed: u64, v: usize) -> u64 {
    seed ^ (v as u64).wrapping_mul(0xd1b5_4a32_d192_ed03)
}

/// Averages `model`'s outputs over `views` versions of `x` `[N, H, W, C]`
/// (the first unchanged), predicting `batch` images at a time.
pub fn predict_tta(
    model: &mut Model,
    x: &Tensor,
    cfg: &AugmentConfig,
    views: usize,
    seed: u64,
    batch: usize,
) -> Result<Tensor> {
    predict_tta_from(model, x, cfg, views, seed, 0, batch)
}

/// [`predict_tta`] for rows `first..` of a larger set: image `i` of `x`
/// gets the transforms of image `first + i`, so a set predicted a chunk at a
/// time gets the views it would get at once.
pub fn predict_tta_from(
    model: &mut Model,
    x: &Tensor,
    cfg: &AugmentConfig,
    views: usize,
    seed: u64,
    first: usize,
    batch: usize,
) -> Result<Tensor> {
    let mut sum = model.predict(x, batch)?;
    if x.shape().len() != 4 || views <= 1 || cfg.is_identity() {
        return Ok(sum);
    }
    for v in 1..views {
        let mut xv = x.clone();
        augment_batch_from(cfg, &mut xv, view_seed(seed, v), first);
        let p = model.predict(&xv, batch)?;
        sum.data_mut()
            .iter_mut()
            .zip(p.data())
            .for_each(|(a, b)| *a += b);
    }
    let inv = 1.0 / views as f32;
    sum.data_mut().iter_mut().for_each(|a| *a *= inv);
    Ok(sum)
}

/// Outputs `[M, ...]` for the images of `data`, converted from bytes
/// `batch` at a time (so memory holds one batch, not the set), each
/// averaged over `views` TTA views as [`predict_tta`] does (view seeds and
/// per-image transforms are the same as for the whole set at once), with
/// the labels of those images. `M < N` only when a folder's unreadable
/// images were skipped.
pub fn predict_images(
    model: &mut Model,
    data: &LabeledImages,
    tta: Option<(&AugmentConfig, usize, u64)>,
    batch: usize,
) -> Result<(Tensor, Vec<usize>)> {
    let batch = model.spec().inference_batch(batch);
    let per = model.output_shape().iter().product::<usize>();
    let (mut out, mut labels) = (Vec::with_capacity(data.len() * per), Vec::new());
    let positions: Vec<usize> = (0..data.len()).collect();
    for (ci, chunk) in positions.chunks(batch).enumerate() {
        let (x, l) = data
            .batch(chunk)
            .map_err(|e| NnError::Data(e.to_string()))?;
        let sum = match tta {
            Some((cfg, views, seed)) => {
                predict_tta_from(model, &x, cfg, views, seed, ci * batch, batch)?
            }
            None => model.predict(&x, batch)?,
        };
        out.extend_from_slice(sum.data());
        labels.extend(l);
    }
    let mut shape = vec![labels.len()];
    shape.extend_from_slice(model.output_shape());
    Ok((Tensor::from_vec(&shape, out)?, labels))
}

/// The augmentation TTA uses by default for a run trained with `trained`:
/// the same when it has one, else the kernel's mild MNIST one (rotation 10
/// degrees, zoom 0.1, shifts 0.1).
pub fn tta_config(trained: &AugmentConfig) -> AugmentConfig {
    if trained.is_identity() {
        AugmentConfig::new()
            .with_rotation(10.0)
            .with_zoom(0.1)
            .with_shift(0.1, 0.1)
    } else {
        trained.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_data::augment::augment_batch;
    use convnet_nn::{parse_notation, NotationOptions};

    fn model() -> Model {
        let s = parse_notation("6x6x1-2C3-F-3", &NotationOptions::default()).unwrap();
        s.build(3).unwrap()
    }

    fn images() -> Tensor {
        let v: Vec<f32> = (0..2 * 36).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        Tensor::from_vec(&[2, 6, 6, 1], v).unwrap()
    }

    #[test]
    fn one_view_is_plain_prediction_and_views_average() {
        let mut m = model();
        let x = images();
        let cfg = tta_config(&AugmentConfig::new());
        let plain = m.predict(&x, 8).unwrap();
        assert_eq!(predict_tta(&mut m, &x, &cfg, 1, 7, 8).unwrap(), plain);
        let p3 = predict_tta(&mut m, &x, &cfg, 3, 7, 8).unwrap();
        // By hand: the mean of the plain output and two augmented copies' outputs.
        let mut want = plain.data().to_vec();
        for v in 1..3 {
            let mut xv = x.clone();
            augment_batch(&cfg, &mut xv, view_seed(7, v));
            let p = m.predict(&xv, 8).unwrap();
            want.iter_mut().zip(p.data()).for_each(|(a, b)| *a += b);
        }
        want.iter_mut().for_each(|a| *a /= 3.0);
        for (a, b) in p3.data().iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_ne!(p3, plain, "augmented views change the average");
        // Still probabilities, and reproducible.
        for row in p3.data().chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert_eq!(predict_tta(&mut m, &x, &cfg, 3, 7, 8).unwrap(), p3);
    }

    #[test]
    fn batched_prediction_over_bytes_equals_the_whole_tensor_at_once() {
        let mut m = model();
        let v: Vec<f32> = (0..5 * 36).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let x = Tensor::from_vec(&[5, 6, 6, 1], v).unwrap();
        let y = Tensor::from_vec(&[5], vec![0.0, 1.0, 2.0, 0.0, 1.0]).unwrap();
        let data = LabeledImages::from_tensor(&x, &y).unwrap();
        let x = data.images_tensor().unwrap(); // the byte-rounded images
        let cfg = tta_config(&AugmentConfig::new());
        let whole = predict_tta(&mut m, &x, &cfg, 3, 7, 64).unwrap();
        let (batched, labels) = predict_images(&mut m, &data, Some((&cfg, 3, 7)), 2).unwrap();
        assert_eq!(labels, vec![0, 1, 2, 0, 1]);
        for (a, b) in batched.data().iter().zip(whole.data()) {
            assert!((a - b).abs() < 1e-6);
        }
        let (plain, _) = predict_images(&mut m, &data, None, 2).unwrap();
        assert_eq!(plain, m.predict(&x, 64).unwrap());
    }
}
