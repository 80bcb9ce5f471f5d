//! `convnet explain`: what a trained net does to one image. Writes the
//! input, the feature maps of every conv layer (after its activation), of
//! every merge (Add, Concatenate) and standalone activation of a graph,
//! every pooling layer's pooled maps beside the maps it read, the first
//! conv layer's filters, and the class probabilities.

use crate::error::Result;
use crate::grid::{feature_grid, filter_grid, input_image, save_png, scale_for, side_by_side};
use crate::plot::bar_chart;
use convnet_nn::{LayerSpec, Model, Role, Source};
use convnet_tensor::Tensor;
use std::path::{Path, PathBuf};

/// One picture written by [`explain`].
#[derive(Clone, Debug)]
pub struct Picture {
    /// What it shows.
    pub title: String,
    /// Where it is.
    pub path: PathBuf,
}

/// Writes the pictures for `image` (`[H, W, C]` values in [0, 1]) into `dir`.
pub fn explain(
    model: &mut Model,
    image: &Tensor,
    class_names: &[String],
    dir: &Path,
) -> Result<Vec<Picture>> {
    let shape = model.input_shape().to_vec();
    let mut x_shape = vec![1];
    x_shape.extend_from_slice(&shape);
    let x = image
        .clone()
        .reshape(&x_shape)
        .map_err(convnet_nn::NnError::from)?;
    let mut pics = Vec::new();
    let (h, w, c) = (shape[0], shape[1], shape[2]);
    let p = dir.join("input.png");
    save_png(&input_image(x.data(), h, w, c, scale_for(h, w, 224)), &p)?;
    pics.push(Picture {
        title: format!("input ({h}x{w}x{c})"),
        path: p,
    });

    let outs = model.trace(&x);
    let specs: Vec<LayerSpec> = model
        .spec()
        .layers
        .iter()
        .map(|n| n.layer.clone())
        .collect();
    let wiring = model.wiring().clone();
    let graph = !wiring.is_chain();
    let mut first_conv = true;
    for (i, (spec, out)) in specs.iter().zip(&outs).enumerate() {
        let s = out.shape();
        let is_image = s.len() == 4;
        let name = &wiring.names[i];
        let kind = spec.layer_kind();
        // A chain's activations are drawn with the convolution that applies them.
        let standalone_activation = matches!(kind.role(), Role::Activation(_));
        let maps = kind
            .explain_maps()
            .filter(|_| graph || !standalone_activation);
        if let (Some((file, what)), true) = (maps, is_image) {
            let (oh, ow, oc) = (s[1], s[2], s[3]);
            let (img, _) = feature_grid(out.data(), oh, ow, oc, scale_for(oh, ow, 84));
            let p = dir.join(format!("layer{i:02}_{file}.png"));
            save_png(&img, &p)?;
            pics.push(Picture {
                title: format!(
                    "layer {i} {} '{name}': {oc} feature maps {oh}x{ow}, {what}",
                    spec.kind()
                ),
                path: p,
            });
        }
        match kind.role() {
            Role::Filters if is_image && first_conv => {
                first_conv = false;
                if let Some(k) = model.layers()[i]
                    .params()
                    .into_iter()
                    .find(|p| p.name == "kernel")
                {
                    let ks = k.value.shape();
                    let p = dir.join("filters.png");
                    save_png(&filter_grid(&k.value, scale_for(ks[0], ks[1], 48)), &p)?;
                    pics.push(Picture {
                        title: format!(
                            "layer {i} filters: {} of {}x{}x{}",
                            ks[3], ks[0], ks[1], ks[2]
                        ),
                        path: p,
                    });
                }
            }
            Role::Pooling if is_image => {
                let (oh, ow, oc) = (s[1], s[2], s[3]);
                let before = match wiring.inputs[i][0] {
                    Source::Node(j) => outs[j].clone(),
                    Source::Input => x.clone(),
                };
                let bs = before.shape();
                let scale_b = scale_for(bs[1], bs[2], 84);
                let (a, _) = feature_grid(before.data(), bs[1], bs[2], bs[3], scale_b);
                // Same tile size on both sides: the pooled maps are scaled up more.
                let scale_a = (scale_b as usize * bs[1] / oh.max(1)).max(1) as u32;
                let (b, _) = feature_grid(out.data(), oh, ow, oc, scale_a);
                let p = dir.join(format!("layer{i:02}_pooling.png"));
                save_png(&side_by_side(&a, &b), &p)?;
                pics.push(Picture {
                    title: format!(
                        "layer {i} {} '{name}': {}x{} maps (left) pooled to {oh}x{ow} (right)",
                        spec.kind(),
                        bs[1],
                        bs[2]
                    ),
                    path: p,
                });
            }
            _ => {}
        }
    }
    let probs = model.predict(&x, 1)?;
    let k = probs.len();
    let (labels, values): (Vec<String>, Vec<f32>) = if k == 1 {
        let p1 = probs.data()[0];
        let names = if class_names.len() == 2 {
            class_names.to_vec()
        } else {
            vec!["0".into(), "1".into()]
        };
        (names, vec![1.0 - p1, p1])
    } else {
        let names = (0..k)
            .map(|i| class_names.get(i).cloned().unwrap_or_else(|| i.to_string()))
            .collect();
        (names, probs.data().to_vec())
    };
    let best = values
        .iter()
        .enumerate()
        .fold(0, |b, (i, v)| if *v > values[b] { i } else { b });
    let p = dir.join("probabilities.png");
    bar_chart(
        &p,
        &format!(
            "predicted: {} ({:.1} %)",
            labels[best],
            100.0 * values[best]
        ),
        &labels,
        &values,
        Some(best),
        (720, 400),
    )?;
    pics.push(Picture {
        title: "class probabilities".into(),
        path: p,
    });
    Ok(pics)
}
