//! Why a net predicts a class, for chains and graphs:
//!
//! - **Grad-CAM** (Selvaraju et al. 2017) on the last convolution's
//!   features A (the conv's output, or the batch norm and activation that
//!   alone follow it): with S the class's score (its logit, before the
//!   softmax), alpha_c = mean over pixels of dS/dA[:, :, c], and the map is
//!   ReLU(sum_c alpha_c A[:, :, c]) on A's grid, upsampled bilinearly to the
//!   input (pixel centres aligned, as `tf.image.resize`);
//! - **gradient x input** (Shrikumar et al. 2016): dS/dx * x summed over the
//!   input's channels, at the input's resolution; positive where a pixel's
//!   value pushes the score up.
//!
//! Both come from one inference forward and one backward
//! ([`Model::inspect_forward`], [`Model::inspect_backward`]).

use convnet_nn::{Inspection, Model, Role};
use convnet_tensor::Tensor;

/// Grad-CAM of one class.
#[derive(Clone, Debug)]
pub struct GradCam {
    /// The node whose output is A.
    pub node: usize,
    /// A's grid, `[h, w]`.
    pub shape: [usize; 2],
    /// alpha_c, one per channel of A.
    pub weights: Vec<f32>,
    /// ReLU(sum_c alpha_c A_c), `h x w`.
    pub map: Vec<f32>,
    /// `map` upsampled to the input's `H x W`.
    pub upsampled: Vec<f32>,
}

/// What [`saliency`] finds for one image.
#[derive(Clone, Debug)]
pub struct Saliency {
    /// The class explained.
    pub class: usize,
    /// Grad-CAM; `None` for a net without a convolution.
    pub grad_cam: Option<GradCam>,
    /// dS/dx * x summed over channels, the input's `H x W`.
    pub gradient_x_input: Vec<f32>,
}

/// The node Grad-CAM reads: the last convolution, or the batch norm and
/// activations that alone follow it (its rectified features).
pub fn grad_cam_node(model: &Model) -> Option<usize> {
    let spec = model.spec();
    let wiring = model.wiring();
    let role = |i: usize| spec.layers[i].layer.layer_kind().role();
    let mut node = (0..spec.layers.len())
        .rev()
        .find(|&i| role(i) == Role::Filters)?;
    while node + 1 < spec.layers.len()
        && matches!(role(node + 1), Role::Normalization | Role::Activation(_))
        && wiring.inputs[node + 1] == [convnet_nn::Source::Node(node)]
    {
        node += 1;
    }
    Some(node)
}

/// Runs `x` (`[1, H, W, C]`) through the net and explains class `class`
/// (the predicted one when `None`). Returns the forward's outputs too.
pub fn saliency(model: &mut Model, x: &Tensor, class: Option<usize>) -> (Inspection, Saliency) {
    let inspection = model.inspect_forward(x);
    let class =
        class.unwrap_or_else(|| crate::report::predicted_classes(&inspection.probabilities)[0]);
    let (dx, grads) = model.inspect_backward(model.class_score_gradient(class));
    let (h, w, c) = (x.shape()[1], x.shape()[2], x.shape()[3]);
    let gradient_x_input: Vec<f32> = dx
        .data()
        .chunks(c)
        .zip(x.data().chunks(c))
        .map(|(g, v)| g.iter().zip(v).map(|(g, v)| g * v).sum())
        .collect();
    let grad_cam = grad_cam_node(model).and_then(|node| {
        let a = &inspection.outputs[node];
        let g = grads[node].as_ref()?;
        (a.shape().len() == 4).then(|| grad_cam(node, a, g, h, w))
    });
    (
        inspection,
        Saliency {
            class,
            grad_cam,
            gradient_x_input,
        },
    )
}

/// Grad-CAM from features `a` and their gradient `g` (`[1, h, w, c]`),
/// upsampled to `out_h x out_w`.
fn grad_cam(node: usize, a: &Tensor, g: &Tensor, out_h: usize, out_w: usize) -> GradCam {
    let (h, w, c) = (a.shape()[1], a.shape()[2], a.shape()[3]);
    let mut weights = vec![0.0f32; c];
    for px in g.data().chunks(c) {
        weights.iter_mut().zip(px).for_each(|(s, v)| *s += v);
    }
    weights.iter_mut().for_each(|s| *s /= (h * w) as f32);
    let map: Vec<f32> = a
        .data()
        .chunks(c)
        .map(|px| {
            px.iter()
                .zip(&weights)
                .map(|(a, k)| a * k)
                .sum::<f32>()
                .max(0.0)
        })
        .collect();
    let upsampled = upsample(&map, h, w, out_h, out_w);
    GradCam {
        node,
        shape: [h, w],
        weights,
        map,
        upsampled,
    }
}

/// Bilinear resize of an `h x w` grid to `oh x ow`, pixel centres aligned
/// (source coordinate (o + 0.5) * h / oh - 0.5, clamped to the grid).
pub fn upsample(v: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let axis = |o: usize, n: usize, on: usize| {
        let s = ((o as f32 + 0.5) * n as f32 / on as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let i = s.floor() as usize;
        (i, (i + 1).min(n - 1), s - i as f32)
    };
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        let (y0, y1, fy) = axis(y, h, oh);
        for x in 0..ow {
            let (x0, x1, fx) = axis(x, w, ow);
            let at = |yy: usize, xx: usize| v[yy * w + xx];
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_nn::notation::{parse_notation, NotationOptions};

    fn model(notation: &str) -> Model {
        let spec = parse_notation(notation, &NotationOptions::default()).unwrap();
        spec.build(3).unwrap()
    }

    fn image(h: usize, w: usize, c: usize) -> Tensor {
        let n = h * w * c;
        Tensor::from_vec(
            &[1, h, w, c],
            (0..n).map(|i| ((i * 29 % 23) as f32) / 23.0).collect(),
        )
        .unwrap()
    }

    #[test]
    fn grad_cam_of_conv_gap_dense_is_the_dense_weights_over_the_pixels() {
        // Score_k = sum_c W[c, k] mean(A_c) + b_k, so alpha_c = W[c, k] / (h w).
        let mut m = model("8x8x2-5C3-GAP-3");
        let x = image(8, 8, 2);
        for class in 0..3 {
            let (insp, s) = saliency(&mut m, &x, Some(class));
            let cam = s.grad_cam.expect("a convolution");
            assert_eq!((cam.node, cam.shape), (0, [8, 8]));
            let dense = m.layers()[2]
                .params()
                .into_iter()
                .find(|p| p.name == "kernel")
                .unwrap();
            let k = dense.value.data();
            for (c, a) in cam.weights.iter().enumerate() {
                let want = k[c * 3 + class] / 64.0;
                assert!(
                    (a - want).abs() <= 1e-6,
                    "class {class} channel {c}: {a} vs {want}"
                );
            }
            let feats = insp.outputs[0].data();
            for (p, v) in cam.map.iter().enumerate() {
                let want: f32 = (0..5)
                    .map(|c| feats[p * 5 + c] * cam.weights[c])
                    .sum::<f32>()
                    .max(0.0);
                assert!((v - want).abs() <= 1e-5, "{v} vs {want}");
            }
            // Same grid as the input: upsampling is the identity.
            assert_eq!(cam.upsampled, cam.map);
        }
    }

    #[test]
    fn gradient_x_input_sums_to_the_logit_of_a_net_without_biases() {
        // ReLU convs, max pooling and a dense layer without biases are
        // positively homogeneous: S(x) = dS/dx . x (Euler), exactly.
        let mut m = model("10x10x3-4C3-P2-6C3-F-4");
        for p in m.params_mut() {
            if p.name == "bias" {
                p.value.data_mut().iter_mut().for_each(|v| *v = 0.0);
            }
        }
        let x = image(10, 10, 3);
        for class in 0..4 {
            let (insp, s) = saliency(&mut m, &x, Some(class));
            let logit = insp.outputs.last().unwrap().data()[class];
            let sum: f32 = s.gradient_x_input.iter().sum();
            assert!(
                (sum - logit).abs() <= 1e-4 * (1.0 + logit.abs()),
                "class {class}: {sum} vs {logit}"
            );
            assert_eq!(s.gradient_x_input.len(), 100);
        }
        // Grad-CAM reads the second conv (5x5 after the pool) and upsamples to 10x10.
        let (_, s) = saliency(&mut m, &x, None);
        let cam = s.grad_cam.unwrap();
        assert_eq!((cam.node, cam.shape, cam.upsampled.len()), (2, [5, 5], 100));
    }

    #[test]
    fn grad_cam_reads_the_batch_norm_after_the_last_conv_and_works_on_graphs() {
        let m = model("8x8x1-4C3-BN-P2-4C3-BN-GAP-2");
        assert_eq!(grad_cam_node(&m), Some(4));
        let mut g = model("8x8x1-4C3-R[4C3-BN-4C3-BN]-GAP-2");
        let (_, s) = saliency(&mut g, &image(8, 8, 1), None);
        let cam = s.grad_cam.unwrap();
        assert_eq!(cam.map.len(), 64);
        assert!(cam.map.iter().all(|v| *v >= 0.0));
    }

    #[test]
    fn upsampling_aligns_pixel_centres() {
        // 2 -> 4: 0.25 steps inside, the edges clamped.
        assert_eq!(
            upsample(&[0.0, 1.0], 1, 2, 1, 4),
            vec![0.0, 0.25, 0.75, 1.0]
        );
    }
}
