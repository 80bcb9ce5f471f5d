//! Each layer kind's ONNX nodes: one function per kind and one line in
//! [`EXPORTERS`]. Weights are converted to ONNX's channel-first layouts as
//! the module above describes.

use super::{float, hwio_to_oihw, int, ints, pads, string, transpose2, Emitter};
use crate::proto::AttributeProto;
use crate::{OnnxError, Result};
use convnet_nn::{LayerSpec, Model, Tensor};

/// What an exporter gets: one node of the model with its wiring.
pub(super) struct Node<'a> {
    pub model: &'a Model,
    /// Its index in the model.
    pub index: usize,
    pub spec: &'a LayerSpec,
    /// Per-sample shape of its first input.
    pub in_shape: &'a [usize],
    /// Per-sample shapes of all its inputs, and of its output.
    pub in_shapes: Vec<&'a [usize]>,
    pub out_shape: &'a [usize],
    /// Names of its input values.
    pub inputs: Vec<String>,
    /// Its name (and its output value's).
    pub name: String,
}

impl Node<'_> {
    /// Its first input value.
    fn x(&self) -> String {
        self.inputs[0].clone()
    }

    /// Its parameter `name`, when it has one.
    fn param(&self, name: &str) -> Option<&Tensor> {
        self.model.layers()[self.index]
            .params()
            .into_iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// Its parameter `name`, which its kind always has.
    fn required(&self, name: &str) -> Result<&Tensor> {
        self.param(name)
            .ok_or_else(|| self.wrong(&format!("no '{name}' parameter")))
    }

    fn wrong(&self, what: &str) -> OnnxError {
        OnnxError::Malformed {
            path: "model".into(),
            msg: format!("layer {} '{}': {what}", self.index, self.name),
        }
    }
}

type Exporter = fn(&mut Emitter, Node<'_>) -> Result<()>;

/// The ONNX mapping of each kind, by its name in model files.
const EXPORTERS: &[(&str, Exporter)] = &[
    ("Conv2D", conv2d),
    ("DepthwiseConv2D", depthwise_conv2d),
    ("SeparableConv2D", separable_conv2d),
    ("Dense", dense),
    ("MaxPooling2D", pool),
    ("AveragePooling2D", pool),
    ("GlobalAveragePooling2D", global_pool),
    ("GlobalMaxPooling2D", global_pool),
    ("BatchNormalization", batch_norm),
    ("Dropout", dropout),
    ("StochasticDepth", stochastic_depth),
    ("Flatten", flatten),
    ("Activation", activation),
    ("ZeroPadding2D", zero_padding),
    ("Add", add),
    ("Concatenate", concatenate),
    ("Multiply", multiply),
    ("ChannelShuffle", channel_shuffle),
    ("ChannelSlice", channel_slice),
];

/// The exporter of the kind named `kind`, if it has an ONNX mapping.
pub(super) fn exporter(kind: &str) -> Option<Exporter> {
    EXPORTERS.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f)
}

/// Weight and optional bias as initializers named after the node.
fn weight_and_bias(e: &mut Emitter, n: &Node<'_>, dims: &[usize], w: &[f32]) -> Vec<String> {
    let mut inputs = vec![n.x(), e.weight(format!("{}.weight", n.name), dims, w)];
    if let Some(b) = n.param("bias") {
        inputs.push(e.weight(format!("{}.bias", n.name), b.shape(), b.data()));
    }
    inputs
}

/// `Conv` with explicit pads, then its activation.
fn conv2d(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::Conv2D(c) = n.spec else {
        return Err(n.wrong("not a Conv2D"));
    };
    let g = c.geometry(n.in_shape, 1)?;
    let (dims, w) = hwio_to_oihw(n.required("kernel")?);
    let inputs = weight_and_bias(e, &n, &dims, &w);
    e.fused(
        "Conv",
        inputs,
        conv_attrs(&g, c.padding, c.groups),
        c.activation,
        n.name,
    );
    Ok(())
}

/// A `Conv`'s window attributes (explicit pads) for geometry `g`, in
/// `group` groups.
fn conv_attrs(
    g: &convnet_tensor::Conv2dGeometry,
    padding: convnet_nn::Padding,
    group: usize,
) -> Vec<AttributeProto> {
    let span = [(g.kh - 1) * g.dh + 1, (g.kw - 1) * g.dw + 1];
    let p = pads(padding, [g.h, g.w], [g.oh, g.ow], span, [g.sh, g.sw]);
    vec![
        ints("kernel_shape", &[g.kh, g.kw]),
        ints("strides", &[g.sh, g.sw]),
        ints("dilations", &[g.dh, g.dw]),
        ints("pads", &p),
        int("group", group as i64),
    ]
}

/// `Conv` with `group = C`: the kernel `[KH, KW, C, M]` read as
/// `[KH, KW, 1, C*M]` is ONNX's `[C*M, 1, KH, KW]`; then its activation.
fn depthwise_conv2d(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::DepthwiseConv2D(c) = n.spec else {
        return Err(n.wrong("not a DepthwiseConv2D"));
    };
    let g = c.geometry(n.in_shape, 1)?.conv;
    let k = n.required("depthwise_kernel")?.clone();
    let k = k
        .reshape(&[g.kh, g.kw, 1, g.f])
        .map_err(convnet_nn::NnError::from)?;
    let (dims, w) = hwio_to_oihw(&k);
    let inputs = weight_and_bias(e, &n, &dims, &w);
    e.fused(
        "Conv",
        inputs,
        conv_attrs(&g, c.padding, g.c),
        c.activation,
        n.name,
    );
    Ok(())
}

/// Two `Conv`s: the depthwise one (`group = C`, no bias, output
/// `{name}/depthwise`), then the pointwise 1x1 one with the bias and the
/// activation (imported back as a DepthwiseConv2D and a Conv2D).
fn separable_conv2d(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::SeparableConv2D(c) = n.spec else {
        return Err(n.wrong("not a SeparableConv2D"));
    };
    let dw = c.depthwise();
    let g = dw.geometry(n.in_shape, 1)?.conv;
    let k = n.required("depthwise_kernel")?.clone();
    let k = k
        .reshape(&[g.kh, g.kw, 1, g.f])
        .map_err(convnet_nn::NnError::from)?;
    let (dims, w) = hwio_to_oihw(&k);
    let dk = e.weight(format!("{}/depthwise.weight", n.name), &dims, &w);
    let mid = e.node(
        "Conv",
        vec![n.x(), dk],
        format!("{}/depthwise", n.name),
        conv_attrs(&g, c.padding, g.c),
    );
    let pw = c.pointwise();
    let pg = pw.geometry(&[g.oh, g.ow, g.f], 1)?;
    let (dims, w) = hwio_to_oihw(n.required("pointwise_kernel")?);
    let mut inputs = vec![mid, e.weight(format!("{}.weight", n.name), &dims, &w)];
    if let Some(b) = n.param("bias") {
        inputs.push(e.weight(format!("{}.bias", n.name), b.shape(), b.data()));
    }
    let attrs = conv_attrs(&pg, pw.padding, 1);
    e.fused("Conv", inputs, attrs, c.activation, n.name);
    Ok(())
}

/// `Identity` (its inference form), its rate in the metadata, so that our
/// importer brings the layer back.
fn stochastic_depth(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::StochasticDepth { rate } = n.spec else {
        return Err(n.wrong("not a StochasticDepth"));
    };
    e.drop_paths.push((n.name.clone(), *rate));
    e.node("Identity", vec![n.x()], n.name, vec![]);
    Ok(())
}

/// `Gemm` on a vector; on an image, per pixel, a 1x1 `Conv`.
fn dense(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::Dense(d) = n.spec else {
        return Err(n.wrong("not a Dense"));
    };
    let (dims, w) = transpose2(n.required("kernel")?);
    if n.in_shape.len() == 1 {
        let inputs = weight_and_bias(e, &n, &dims, &w);
        e.fused("Gemm", inputs, vec![int("transB", 1)], d.activation, n.name);
    } else {
        let dims = [dims[0], dims[1], 1, 1];
        let inputs = weight_and_bias(e, &n, &dims, &w);
        let attrs = vec![ints("kernel_shape", &[1, 1])];
        e.fused("Conv", inputs, attrs, d.activation, n.name);
    }
    Ok(())
}

/// `MaxPool` / `AveragePool` (over the window's pixels inside the input).
fn pool(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let (op, p) = match n.spec {
        LayerSpec::MaxPooling2D(p) => ("MaxPool", p),
        LayerSpec::AveragePooling2D(p) => ("AveragePool", p),
        _ => return Err(n.wrong("not a pooling layer")),
    };
    let g = p.geometry(n.in_shape, 1)?;
    let pd = pads(
        p.padding,
        [g.h, g.w],
        [g.oh, g.ow],
        [g.ph, g.pw],
        [g.sh, g.sw],
    );
    let mut attrs = vec![
        ints("kernel_shape", &[g.ph, g.pw]),
        ints("strides", &[g.sh, g.sw]),
        ints("pads", &pd),
    ];
    if p.ceil_mode {
        attrs.push(int("ceil_mode", 1));
    }
    if op == "AveragePool" {
        // Ours averages over the window's pixels inside the input.
        attrs.push(int("count_include_pad", 0));
    }
    e.node(op, vec![n.x()], n.name, attrs);
    Ok(())
}

/// `GlobalAveragePool` / `GlobalMaxPool`, then `Flatten`: ONNX keeps
/// `[N, C, 1, 1]`, ours is `[N, C]`.
fn global_pool(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let op = match n.spec {
        LayerSpec::GlobalAveragePooling2D => "GlobalAveragePool",
        LayerSpec::GlobalMaxPooling2D => "GlobalMaxPool",
        _ => return Err(n.wrong("not a global pooling layer")),
    };
    let name = n.name;
    let pooled = e.node(
        op,
        vec![n.inputs[0].clone()],
        format!("{name}/pool"),
        vec![],
    );
    e.nodes.last_mut().expect("just added").name = name.clone();
    e.node("Flatten", vec![pooled], name.clone(), vec![int("axis", 1)]);
    e.nodes.last_mut().expect("just added").name = format!("{name}/flatten");
    Ok(())
}

/// `BatchNormalization` with its moving statistics (gamma 1 and beta 0
/// when the layer has none).
fn batch_norm(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::BatchNormalization(b) = n.spec else {
        return Err(n.wrong("not a BatchNormalization"));
    };
    let mean = n.required("moving_mean")?;
    let var = n.required("moving_variance")?;
    let c = mean.len();
    let ones = Tensor::full(&[c], 1.0);
    let zeros = Tensor::zeros(&[c]);
    let gamma = n.param("gamma").unwrap_or(&ones);
    let beta = n.param("beta").unwrap_or(&zeros);
    let name = &n.name;
    let inputs = vec![
        n.x(),
        e.weight(format!("{name}.weight"), &[c], gamma.data()),
        e.weight(format!("{name}.bias"), &[c], beta.data()),
        e.weight(format!("{name}.running_mean"), &[c], mean.data()),
        e.weight(format!("{name}.running_var"), &[c], var.data()),
    ];
    let attrs = vec![float("epsilon", b.epsilon), float("momentum", b.momentum)];
    e.node("BatchNormalization", inputs, n.name, attrs);
    Ok(())
}

/// `Dropout`, the identity in inference. Its rate travels in the metadata
/// (a `ratio` input is valid ONNX, but tract rejects it).
fn dropout(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::Dropout(d) = n.spec else {
        return Err(n.wrong("not a Dropout"));
    };
    e.dropout_rates.push((n.name.clone(), d.rate));
    e.node("Dropout", vec![n.x()], n.name, vec![]);
    Ok(())
}

/// `Flatten`, after a transpose back to our `H, W, C` order of the flat
/// vector when the image has more than one pixel.
fn flatten(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let x = match n.in_shape {
        [h, w, _] if h * w > 1 => {
            let perm = ints("perm", &[0, 2, 3, 1]);
            e.node(
                "Transpose",
                vec![n.x()],
                format!("{}/nhwc", n.name),
                vec![perm],
            )
        }
        _ => n.x(),
    };
    e.node("Flatten", vec![x], n.name, vec![int("axis", 1)]);
    Ok(())
}

/// The activation's own node.
fn activation(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::Activation { activation } = n.spec else {
        return Err(n.wrong("not an Activation"));
    };
    e.activation(*activation, n.x(), n.name);
    Ok(())
}

/// `Pad` (constant zeros) with NCHW pads.
fn zero_padding(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::ZeroPadding2D { padding } = n.spec else {
        return Err(n.wrong("not a ZeroPadding2D"));
    };
    let [[t, b], [l, r]] = *padding;
    let p = [0, 0, t, l, 0, 0, b, r].map(|v| v as i64);
    let pads = e.ints(format!("{}.pads", n.name), &p);
    e.node(
        "Pad",
        vec![n.x(), pads],
        n.name,
        vec![string("mode", "constant")],
    );
    Ok(())
}

/// `Add` of two inputs, `Sum` of more.
fn add(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let op = if n.inputs.len() == 2 { "Add" } else { "Sum" };
    e.node(op, n.inputs, n.name, vec![]);
    Ok(())
}

/// `Concat` on the channels (axis 1 of NCHW).
fn concatenate(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    e.node("Concat", n.inputs, n.name, vec![int("axis", 1)]);
    Ok(())
}

/// `Mul` (of two inputs, a chain of them for more); a channel vector
/// (`[C]` or `[1, 1, C]`, ours) is reshaped to `[N, C, 1, 1]` first, so that
/// ONNX's broadcasting repeats it over the pixels of the NCHW map.
fn multiply(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let out = n.out_shape;
    let mut names = Vec::with_capacity(n.inputs.len());
    for (k, (&shape, name)) in n.in_shapes.iter().zip(&n.inputs).enumerate() {
        if shape != out && out.len() == 3 {
            let c = *shape.last().expect("a vector of channels") as i64;
            let target = e.ints(format!("{}/shape{k}", n.name), &[0, c, 1, 1]);
            let v = e.node(
                "Reshape",
                vec![name.clone(), target],
                format!("{}/vector{k}", n.name),
                vec![],
            );
            names.push(v);
        } else {
            names.push(name.clone());
        }
    }
    let mut acc = names[0].clone();
    for (k, v) in names.iter().enumerate().skip(1) {
        let out = if k + 1 == names.len() {
            n.name.clone()
        } else {
            format!("{}/product{k}", n.name)
        };
        acc = e.node("Mul", vec![acc, v.clone()], out, vec![]);
    }
    Ok(())
}

/// ONNX's dims of one of our per-sample shapes, batch first as 0 (Reshape's
/// "copy the input's"): `[0, C, H, W]` for an image, `[0, F]` for a vector.
fn onnx_dims(shape: &[usize]) -> Vec<i64> {
    let mut d = vec![0];
    match shape {
        [h, w, c] => d.extend([*c, *h, *w].map(|v| v as i64)),
        s => d.extend(s.iter().map(|&v| v as i64)),
    }
    d
}

/// PyTorch's channel shuffle: `Reshape [N, G, C/G, ...]`, `Transpose` of
/// axes 1 and 2, `Reshape [N, C, ...]` (the importer reads it back as one layer).
fn channel_shuffle(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::ChannelShuffle { groups } = n.spec else {
        return Err(n.wrong("not a ChannelShuffle"));
    };
    let dims = onnx_dims(n.in_shape);
    let g = *groups as i64;
    let mut split = vec![0, g, dims[1] / g];
    split.extend(&dims[2..]);
    let rank = split.len();
    let to5 = e.ints(format!("{}/grouped_shape", n.name), &split);
    let grouped = e.node(
        "Reshape",
        vec![n.x(), to5],
        format!("{}/grouped", n.name),
        vec![],
    );
    let mut perm = vec![0, 2, 1];
    perm.extend(3..rank);
    let swapped = e.node(
        "Transpose",
        vec![grouped],
        format!("{}/transposed", n.name),
        vec![ints("perm", &perm)],
    );
    let back = e.ints(format!("{}/shape", n.name), &dims);
    e.node("Reshape", vec![swapped, back], n.name, vec![]);
    Ok(())
}

/// `Slice` of axis 1 (the channels of NCHW, the features of `[N, F]`).
fn channel_slice(e: &mut Emitter, n: Node<'_>) -> Result<()> {
    let LayerSpec::ChannelSlice { channels: [a, b] } = n.spec else {
        return Err(n.wrong("not a ChannelSlice"));
    };
    let starts = e.ints(format!("{}/starts", n.name), &[*a as i64]);
    let ends = e.ints(format!("{}/ends", n.name), &[*b as i64]);
    let axes = e.ints(format!("{}/axes", n.name), &[1]);
    e.node("Slice", vec![n.x(), starts, ends, axes], n.name, vec![]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_onnx_mapping() {
        for kind in convnet_nn::KIND_NAMES {
            assert!(exporter(kind).is_some(), "{kind} has no exporter");
        }
        assert_eq!(EXPORTERS.len(), convnet_nn::KIND_NAMES.len());
    }
}
