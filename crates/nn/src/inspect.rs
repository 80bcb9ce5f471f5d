//! Looking inside a prediction: every node's output and the gradients of one
//! class's score with respect to the input and to every node's output, with
//! inference's arithmetic (moving statistics, no dropout; [`Mode::Inspect`]).
//! Saliency maps (gradient x input) and Grad-CAM are built on it.
//!
//! The score is a logit, before the head's softmax (Selvaraju et al.'s
//! Grad-CAM uses y^c before the softmax); for one sigmoid output, class 1's
//! score is the logit and class 0's its negative.

use super::Model;
use crate::layer::Mode;
use convnet_tensor::Tensor;

/// What [`Model::inspect_forward`] and [`Model::inspect_backward`] give.
pub struct Inspection {
    /// Every node's output; the last is the logits (no head applied).
    pub outputs: Vec<Tensor>,
    /// The head applied to the logits (the probabilities).
    pub probabilities: Tensor,
}

impl Model {
    /// Every node's output for `x` with inference's arithmetic, keeping what
    /// [`Model::inspect_backward`] needs. Never fuses.
    pub fn inspect_forward(&mut self, x: &Tensor) -> Inspection {
        let n = self.layers.len();
        self.fused_relu = vec![false; n];
        self.fused_add = vec![false; n];
        let outs = self.every_output(x, Mode::Inspect);
        let mut probabilities = outs.last().cloned().unwrap_or_else(|| x.clone());
        let row = probabilities.sample_len().max(1);
        self.head.forward(probabilities.data_mut(), row);
        Inspection {
            outputs: outs,
            probabilities,
        }
    }

    /// After [`Model::inspect_forward`]: the gradients of `sum(dlogits *
    /// logits)` with respect to the input and to every node's output
    /// (`None` for a node no gradient reaches). Parameters are untouched:
    /// the gradients the layers accumulate on the way are zeroed.
    pub fn inspect_backward(&mut self, dlogits: Tensor) -> (Tensor, Vec<Option<Tensor>>) {
        let mut nodes: Vec<Option<Tensor>> = (0..self.layers.len()).map(|_| None).collect();
        let shape: Vec<usize> = std::iter::once(dlogits.batch())
            .chain(self.input_shape().iter().copied())
            .collect();
        let dx = self
            .run_backward(dlogits, None, true, Some(&mut nodes))
            .unwrap_or_else(|| Tensor::zeros(&shape));
        self.zero_grad();
        (dx, nodes)
    }

    /// The `dlogits` that make [`Model::inspect_backward`] differentiate
    /// class `class`'s score of a batch of one.
    pub fn class_score_gradient(&self, class: usize) -> Tensor {
        let k: usize = self.output_shape().iter().product::<usize>().max(1);
        let mut d = vec![0.0; k];
        if k == 1 {
            d[0] = if class == 1 { 1.0 } else { -1.0 };
        } else if class < k {
            d[class] = 1.0;
        }
        Tensor::from_vec(&[1, k], d).expect("sizes agree")
    }
}

#[cfg(test)]
mod tests {
    use crate::notation::{parse_notation, NotationOptions};
    use crate::Model;
    use convnet_tensor::Tensor;

    /// A chain with what differs between training and inference: batch norm
    /// (moved statistics), dropout, max pooling, a dense head.
    fn model() -> Model {
        let spec = parse_notation("6x6x2-4C3-BN-P2-D0.5-3", &NotationOptions::default()).unwrap();
        let mut m = spec.build(7).unwrap();
        for p in m.params_mut() {
            let v = p.value.data_mut();
            match p.name {
                "moving_mean" => v
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = 0.1 * i as f32),
                "moving_variance" => v
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = 0.5 + 0.3 * i as f32),
                _ => {}
            }
        }
        m
    }

    fn logit(m: &mut Model, x: &Tensor, class: usize) -> f64 {
        let o = m.inspect_forward(x);
        o.outputs.last().unwrap().data()[class] as f64
    }

    #[test]
    fn input_gradient_is_the_class_scores_derivative_with_inference_arithmetic() {
        let mut m = model();
        let x = Tensor::from_vec(
            &[1, 6, 6, 2],
            (0..72)
                .map(|i| ((i * 37 % 17) as f32) / 17.0 - 0.4)
                .collect(),
        )
        .unwrap();
        let class = 2;
        let o = m.inspect_forward(&x);
        // The logits are inference's: the same as the plain forward without head.
        let plain = m.forward(&x, crate::Mode::Eval, false);
        assert_eq!(o.outputs.last().unwrap().data(), plain.data());
        m.inspect_forward(&x);
        let (dx, nodes) = m.inspect_backward(m.class_score_gradient(class));
        assert_eq!(nodes.len(), m.layers().len());
        assert!(nodes.iter().all(|g| g.is_some()));
        // Central differences in f64 of the f32 net: steps of 1e-2.
        let h = 1e-2f32;
        for i in [0, 5, 17, 30, 41, 66] {
            let mut xp = x.clone();
            xp.data_mut()[i] += h;
            let mut xm = x.clone();
            xm.data_mut()[i] -= h;
            let fd = (logit(&mut m, &xp, class) - logit(&mut m, &xm, class)) / (2.0 * h as f64);
            let g = dx.data()[i] as f64;
            assert!(
                (fd - g).abs() <= 2e-3 + 2e-2 * g.abs(),
                "input {i}: {g} vs {fd}"
            );
        }
        // Nothing trained: no parameter has a gradient left.
        assert!(m
            .params_mut()
            .iter()
            .all(|p| p.grad.data().iter().all(|&v| v == 0.0)));
    }
}
