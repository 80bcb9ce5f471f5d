//! Model surgery on trained nets: insert batch norm without changing what
//! the net computes.
//!
//! "If you have a pre-trained net, insert batch-norm layers and set gamma
//! and beta so that they undo the normalization": after node `a` with
//! output channels `x_c`, a BatchNormalization calibrated on training
//! batches gets
//!
//! ```text
//! moving_mean_c = mean_c = E[x_c],  moving_variance_c = var_c = E[(x_c - mean_c)^2]  (biased)
//! gamma_c = sqrt(var_c + eps),       beta_c = mean_c
//! inference: y_c = gamma_c (x_c - mean_c) / sqrt(var_c + eps) + beta_c = x_c
//! ```
//!
//! so the new net computes the same function in inference (to rounding);
//! in training the batch statistics stand in for the moving ones, and
//! fine-tuning starts from there.
//!
//! And transfer learning's first step: cut a trained net at a node (by
//! default the last one with an image output, i.e. before the classifier),
//! freeze what is kept, and put a new head on it.

use crate::graph::{fresh_name, snake, INPUT};
use crate::kind::Role;
use crate::{BatchNormConfig, LayerSpec, Model, ModelSpec, NnError, Result, Tensor};
use convnet_tensor::batch_norm::Moments;
use std::collections::{BTreeMap, HashSet};

/// Which nodes get a batch norm after them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InsertAfter {
    /// Every Conv2D (Dense too when `dense`) not already followed by a batch norm.
    Convs {
        /// Also after hidden Dense layers.
        dense: bool,
    },
    /// The nodes with these names.
    Names(Vec<String>),
}

impl Model {
    /// A new model with a BatchNormalization after each chosen node,
    /// calibrated on `calibration` (samples `[N, ...input]`, run `batch` at a
    /// time in inference mode) so that it computes what this one does.
    /// The output node cannot be chosen. The new model is not compiled.
    pub fn insert_batch_norm(
        &mut self,
        after: &InsertAfter,
        calibration: &Tensor,
        batch: usize,
    ) -> Result<Model> {
        let spec = self.spec().clone();
        let wiring = self.wiring().clone();
        let n = spec.layers.len();
        let targets: Vec<usize> = match after {
            InsertAfter::Convs { dense } => (0..n.saturating_sub(1))
                .filter(|&i| match spec.layers[i].layer.layer_kind().role() {
                    Role::Filters => true,
                    Role::Product => *dense,
                    _ => false,
                })
                .filter(|&i| {
                    // Skip a node already followed by its own batch norm.
                    !(wiring.readers[i] == 1
                        && spec.layers[i + 1].layer.layer_kind().role() == Role::Normalization
                        && wiring.inputs[i + 1] == [crate::Source::Node(i)])
                })
                .collect(),
            InsertAfter::Names(names) => {
                let mut v = names
                    .iter()
                    .map(|name| spec.position(name))
                    .collect::<Result<Vec<_>>>()?;
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        if targets.is_empty() {
            return Err(crate::error::config_err(
                "insert-bn",
                "no layer to insert a batch norm after",
            ));
        }
        if let Some(&last) = targets.last().filter(|&&i| i + 1 == n) {
            return Err(crate::error::config_err(
                "insert-bn",
                format!(
                    "'{}' is the output layer; a batch norm goes after a hidden layer",
                    wiring.names[last]
                ),
            ));
        }
        self.check_input(calibration, "calibration data")?;
        if calibration.batch() == 0 {
            return Err(crate::error::config_err(
                "calibration data",
                "needs at least one sample",
            ));
        }
        let stats = self.channel_statistics(&targets, calibration, batch.max(1));

        // The new description: every node named (its old name), a batch norm
        // after each target, readers of a target reading its batch norm.
        let mut taken: HashSet<String> = wiring.names.iter().cloned().collect();
        taken.insert(INPUT.into());
        let mut renamed: BTreeMap<String, String> = BTreeMap::new();
        let mut new = ModelSpec::new(&spec.input_shape);
        let mut old_to_new = Vec::with_capacity(n);
        let mut bn_nodes = Vec::new();
        let config = BatchNormConfig::new();
        for (i, node) in spec.layers.iter().enumerate() {
            let mut node = node.clone();
            node.name = Some(wiring.names[i].clone());
            if let Some(inputs) = &mut node.inputs {
                for s in inputs.iter_mut() {
                    if let Some(r) = renamed.get(s) {
                        *s = r.clone();
                    }
                }
            }
            old_to_new.push(new.layers.len());
            new.layers.push(node);
            if targets.contains(&i) {
                let name = fresh_name(&snake("BatchNormalization"), &taken);
                taken.insert(name.clone());
                renamed.insert(wiring.names[i].clone(), name.clone());
                bn_nodes.push(new.layers.len());
                new.apply_named(
                    &name,
                    LayerSpec::BatchNormalization(config.clone()),
                    &[&wiring.names[i]],
                );
            }
        }
        let mut model = new.build(0)?;

        // Weights: the old ones under their new positions, the batch norms calibrated.
        let mut tensors = self.params_moved(|i| Some(old_to_new[i]));
        for (&at, (mean, var)) in bn_nodes.iter().zip(&stats) {
            let c = mean.len();
            let t = |v: Vec<f32>| Tensor::from_vec(&[c], v).expect("c values");
            let gamma = var
                .iter()
                .map(|&v| (v + config.epsilon as f64).sqrt() as f32)
                .collect();
            let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            tensors.insert(format!("layer{at}.gamma"), t(gamma));
            tensors.insert(format!("layer{at}.beta"), t(f32s(mean)));
            tensors.insert(format!("layer{at}.moving_mean"), t(f32s(mean)));
            tensors.insert(format!("layer{at}.moving_variance"), t(f32s(var)));
        }
        model
            .set_weights(std::path::Path::new("<insert-bn>"), &tensors)
            .map_err(|e| NnError::Config {
                what: "insert-bn".into(),
                msg: e.to_string(),
            })?;
        model.set_rng(self.rng().clone());
        Ok(model)
    }

    /// Per-channel mean and biased variance (f64) of each target node's
    /// output over the calibration samples, in inference mode: one pass,
    /// batch statistics merged as batch norm merges its blocks ([`Moments`]).
    fn channel_statistics(
        &mut self,
        targets: &[usize],
        x: &Tensor,
        batch: usize,
    ) -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut moments: Vec<Moments> = Vec::new();
        let mut start = 0;
        while start < x.batch() {
            let end = (start + batch).min(x.batch());
            let outs = self.trace(&x.slice_batch(start, end));
            if moments.is_empty() {
                moments = targets
                    .iter()
                    .map(|&t| Moments::new(*outs[t].shape().last().expect("a shape")))
                    .collect();
            }
            for (&t, m) in targets.iter().zip(moments.iter_mut()) {
                m.add(outs[t].data());
            }
            start = end;
        }
        moments
            .into_iter()
            .map(|m| (m.mean().to_vec(), m.variance()))
            .collect()
    }

    /// This model's parameters under the positions `to(i)` gives node `i`
    /// in another model (`None`: dropped), named as [`Model::named_params`] names them.
    fn params_moved(&self, to: impl Fn(usize) -> Option<usize>) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (i, layer) in self.layers().iter().enumerate() {
            if let Some(j) = to(i) {
                for p in layer.params() {
                    out.insert(format!("layer{j}.{}", p.name), p.value.clone());
                }
            }
        }
        out
    }
}

impl Model {
    /// A new model: this one's nodes up to `cut` (those it depends on),
    /// frozen and with their trained weights, followed by `head`, a model
    /// description whose input is the cut node's output (its weights drawn
    /// from `seed`). The head's names are prefixed with `head_` where they
    /// clash with the base's.
    pub fn with_new_head(&self, cut: &str, head: &ModelSpec, seed: u64) -> Result<Model> {
        let spec = self.spec();
        let (wiring, shapes) = spec.checked()?;
        let at = spec.position(cut)?;
        if head.input_shape != shapes[at] {
            return Err(crate::error::config_err(
                "head",
                format!(
                    "it takes inputs {:?} but '{cut}' gives {:?}",
                    head.input_shape, shapes[at]
                ),
            ));
        }
        // The nodes `cut` depends on, in order.
        let mut keep = vec![false; at + 1];
        keep[at] = true;
        for i in (0..=at).rev() {
            if keep[i] {
                for s in &wiring.inputs[i] {
                    if let crate::Source::Node(j) = *s {
                        keep[j] = true;
                    }
                }
            }
        }
        let mut new = ModelSpec::new(&spec.input_shape);
        let mut old_to_new = vec![usize::MAX; at + 1];
        for i in (0..=at).filter(|&i| keep[i]) {
            let mut node = spec.layers[i].clone();
            node.name = Some(wiring.names[i].clone());
            // Inputs by name: an implicit "node before" may have been dropped.
            node.inputs = Some(
                wiring.inputs[i]
                    .iter()
                    .map(|s| wiring.source_name(*s).to_string())
                    .collect(),
            );
            node.trainable = false;
            old_to_new[i] = new.layers.len();
            new.layers.push(node);
        }
        let base_nodes = new.layers.len();
        let head_wiring = head.wiring()?;
        let mut taken: HashSet<String> = wiring.names.iter().cloned().collect();
        taken.insert(INPUT.into());
        let rename: Vec<String> = head_wiring
            .names
            .iter()
            .map(|n| {
                let name = if taken.contains(n) {
                    fresh_name(&format!("head_{n}"), &taken)
                } else {
                    n.clone()
                };
                taken.insert(name.clone());
                name
            })
            .collect();
        for (k, node) in head.layers.iter().enumerate() {
            let mut node = node.clone();
            node.name = Some(rename[k].clone());
            node.inputs = Some(
                head_wiring.inputs[k]
                    .iter()
                    .map(|s| match *s {
                        crate::Source::Input => cut.to_string(),
                        crate::Source::Node(j) => rename[j].clone(),
                    })
                    .collect(),
            );
            new.layers.push(node);
        }
        let mut model = new.build(seed)?;
        let mut tensors: BTreeMap<String, Tensor> = model
            .named_params()
            .into_iter()
            .map(|(n, p)| (n, p.value.clone()))
            .collect();
        tensors.extend(self.params_moved(|i| (i <= at && keep[i]).then(|| old_to_new[i])));
        let fresh = model.update_counts();
        model.set_weights(std::path::Path::new("<base>"), &tensors)?;
        // The base's statistics are loaded (converged); the head's are new.
        let counts: Vec<Option<u64>> = fresh
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.filter(|_| i >= base_nodes))
            .collect();
        model.set_update_counts(&counts);
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_notation, Mode, NotationOptions};
    use rand::{Rng as _, SeedableRng};

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|_| rng.gen_range(0.0..1.0)).collect()).unwrap()
    }

    #[test]
    fn inserted_batch_norm_leaves_the_function_unchanged() {
        for notation in [
            "8x8x2-8C3-P2-16C3-F-D0.2-12-5",
            "8x8x2-8C3-R[8C3-8C3]-I[4C1 | 4C3]-GAP-5",
        ] {
            let spec = parse_notation(notation, &NotationOptions::default()).unwrap();
            let mut m = spec.build(4).unwrap();
            let x = random(&[40, 8, 8, 2], 1);
            let before = m.predict(&x, 16).unwrap();
            let mut with_bn = m
                .insert_batch_norm(&InsertAfter::Convs { dense: true }, &x, 16)
                .unwrap();
            let added = with_bn.spec().layers.len() - m.spec().layers.len();
            let convs = spec
                .layers
                .iter()
                .filter(|n| matches!(n.layer, LayerSpec::Conv2D(_)))
                .count();
            // Every conv, plus the hidden Dense of the chain.
            assert_eq!(
                added,
                convs + usize::from(notation.contains("12")),
                "{notation}"
            );
            let after = with_bn.predict(&x, 16).unwrap();
            let worst = before.max_abs_diff(&after);
            assert!(worst <= 1e-5, "{notation}: max difference {worst}");
            // The batch norms normalize in training: their batch statistics
            // over the calibration set are the moving ones.
            let y = with_bn.forward(&x, Mode::Train, true);
            assert!(y.max_abs_diff(&after) < 0.05, "{notation}");
        }
    }

    #[test]
    fn a_new_head_on_a_frozen_base_keeps_the_base_features() {
        let spec = parse_notation(
            "8x8x2-8C3-R[8C3-BN-8C3-BN]-P2-F-16-5",
            &NotationOptions::default(),
        )
        .unwrap();
        let mut base = spec.build(4).unwrap();
        let cut = base.spec().default_cut().unwrap();
        assert_eq!(cut, "max_pooling2d");
        let head = parse_notation(
            "GAP-D0.5-1",
            &NotationOptions::default().with_input(&[4, 4, 8]),
        )
        .unwrap();
        let mut m = base.with_new_head(&cut, &head, 9).unwrap();
        let s = m.spec().summary().unwrap();
        // Only the new Dense(1) trains: 8 weights + 1 bias.
        assert_eq!(s.trainable, 9);
        assert_eq!(m.output_shape(), [1]);
        // The kept layers compute what they did in the base.
        let x = random(&[3, 8, 8, 2], 3);
        let pos = m.spec().position(&cut).unwrap();
        let a = base.trace(&x)[base.spec().position(&cut).unwrap()].clone();
        let b = m.trace(&x)[pos].clone();
        assert_eq!(a.data(), b.data());
        let wrong =
            parse_notation("GAP-1", &NotationOptions::default().with_input(&[2, 2, 8])).unwrap();
        let e = match base.with_new_head(&cut, &wrong, 0) {
            Ok(_) => panic!("a head of the wrong input shape was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("gives [4, 4, 8]"), "{e}");
    }

    #[test]
    fn insert_after_named_layers_and_errors() {
        let spec = parse_notation("8x8x2-8C3-P2-16C3-GAP-5", &NotationOptions::default()).unwrap();
        let mut m = spec.build(4).unwrap();
        let x = random(&[10, 8, 8, 2], 2);
        let names = InsertAfter::Names(vec!["max_pooling2d".into()]);
        let with_bn = m.insert_batch_norm(&names, &x, 4).unwrap();
        let kinds: Vec<&str> = with_bn
            .spec()
            .layers
            .iter()
            .map(|n| n.layer.kind())
            .collect();
        assert_eq!(
            kinds,
            [
                "Conv2D",
                "MaxPooling2D",
                "BatchNormalization",
                "Conv2D",
                "GlobalAveragePooling2D",
                "Dense"
            ]
        );
        assert!(with_bn.spec().wiring().unwrap().is_chain());
        let mut e = |a: InsertAfter| match m.insert_batch_norm(&a, &x, 4) {
            Ok(_) => panic!("{a:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e(InsertAfter::Names(vec!["nope".into()])).contains("no layer is called 'nope'"));
        assert!(e(InsertAfter::Names(vec!["dense".into()])).contains("output layer"));
    }
}
