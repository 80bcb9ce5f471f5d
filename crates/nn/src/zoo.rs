//! Built-in architectures by name, built the way torchvision builds them
//! (so that its weights can be brought in): a few lines of configuration
//! over shared blocks, as in torchvision's `vgg.py`, `resnet.py` and
//! `googlenet.py`.
//!
//! | name | what | torchvision |
//! |---|---|---|
//! | `vgg11`, `vgg13`, `vgg16`, `vgg19`, `..-bn` | Simonyan & Zisserman 2014, configurations A, B, D, E | `vgg16`, `vgg16_bn`, ... |
//! | `resnet18`, `resnet34` | He et al. 2016, ImageNet stem, basic blocks | `resnet18`, `resnet34` |
//! | `resnet20`, `resnet32`, `resnet56` | He et al. 2016 section 4.2 (CIFAR): 3 stages of 16/32/64 filters, projection shortcuts | - |
//! | `googlenet` | Szegedy et al. 2014, Inception v1 without the auxiliary heads | `googlenet(aux_logits=False)` |
//! | `mobilenet_v2` | Sandler et al. 2018: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project; ReLU6) | `mobilenet_v2` |
//! | `efficientnet_b0` | Tan & Le 2019: MBConv with squeeze-and-excitation, swish, stochastic depth | `efficientnet_b0` |
//! | `efficientnet_lite0` | Tan & Le 2019, the Lite variant: MBConv (3x3 and 5x5 depthwise) without squeeze-and-excitation, ReLU6, TensorFlow's `same` padding | - (`efficientnet-lite-pytorch`) |
//!
//! As in torchvision: a convolution followed by batch norm has no bias (VGG's
//! keep theirs), padding is explicit and symmetric (`padding=1`), ResNet's
//! stem pool pads by 1, GoogLeNet's pools round up (`ceil_mode=True`), every
//! GoogLeNet convolution is followed by batch norm (eps 1e-3), and the branch
//! the paper calls 5x5 uses 3x3 kernels (pytorch/vision#906). Batch norm
//! takes PyTorch's settings: momentum 0.1 on the new value (0.9 in our
//! Keras convention) and eps 1e-5.
//!
//! Where torchvision pools adaptively to a fixed size (VGG's 7x7, the
//! others' 1x1), the nets here use the map as it is (7x7 at 224x224, so the
//! same layers there) or global average pooling.

use crate::{
    Activation, BatchNormConfig, Conv2dConfig, DenseConfig, DepthwiseConv2dConfig, DropoutConfig,
    LayerSpec, ModelSpec, Padding, PoolConfig, Result,
};

/// Every built-in name, for help texts and errors.
pub const NAMES: [&str; 17] = [
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11-bn",
    "vgg13-bn",
    "vgg16-bn",
    "vgg19-bn",
    "resnet18",
    "resnet34",
    "resnet20",
    "resnet32",
    "resnet56",
    "googlenet",
    "mobilenet-v2",
    "efficientnet-lite0",
    "efficientnet-b0",
];

/// The input shape and class count a built-in net is made for
/// (`224x224x3`, 1,000 classes; the CIFAR ResNets `32x32x3`, 10 classes).
pub fn defaults(name: &str) -> Option<(Vec<usize>, usize)> {
    let name = normalize(name);
    if !NAMES.contains(&name.as_str()) {
        return None;
    }
    Some(match name.as_str() {
        "resnet20" | "resnet32" | "resnet56" => (vec![32, 32, 3], 10),
        _ => (vec![224, 224, 3], 1000),
    })
}

fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('_', "-")
}

/// The built-in net `name` for inputs `[H, W, C]` and `classes` outputs
/// (softmax; sigmoid when 1), or `None` when no net has that name.
pub fn builtin(name: &str, input: &[usize], classes: usize) -> Option<Result<ModelSpec>> {
    let name = normalize(name);
    let mut b = Builder::new(input);
    match name.as_str() {
        "vgg11" | "vgg13" | "vgg16" | "vgg19" | "vgg11-bn" | "vgg13-bn" | "vgg16-bn"
        | "vgg19-bn" => {
            let depth = &name[3..5];
            vgg(&mut b, depth, name.ends_with("-bn"), classes)
        }
        "resnet18" => resnet_imagenet(&mut b, [2, 2, 2, 2], classes),
        "resnet34" => resnet_imagenet(&mut b, [3, 4, 6, 3], classes),
        "resnet20" => resnet_cifar(&mut b, 3, classes),
        "resnet32" => resnet_cifar(&mut b, 5, classes),
        "resnet56" => resnet_cifar(&mut b, 9, classes),
        "googlenet" => googlenet(&mut b, classes),
        "mobilenet-v2" => mobilenet_v2(&mut b, classes),
        "efficientnet-lite0" => efficientnet_lite0(&mut b, classes),
        "efficientnet-b0" => efficientnet_b0(&mut b, classes),
        _ => return None,
    }
    Some(b.g.checked().map(|_| b.g))
}

/// The functional builder with the few block shapes the zoo needs.
struct Builder {
    g: ModelSpec,
    bn: BatchNormConfig,
    /// Padding of a k x k window: PyTorch's symmetric `(k - 1) / 2`, or
    /// TensorFlow's `same` (EfficientNet's, the odd pixel bottom/right).
    tf_same: bool,
    /// The activation of the inverted residual blocks' convs (ReLU6, or
    /// EfficientNet-B0's swish).
    mb_act: Activation,
    /// Squeeze-and-excitation in the inverted residual blocks (EfficientNet-B0).
    squeeze_excite: bool,
    /// Stochastic depth of the next inverted residual block's branch (when
    /// it has a shortcut; 0: none).
    drop_path: f32,
}

impl Builder {
    fn new(input: &[usize]) -> Builder {
        Builder {
            g: ModelSpec::new(input),
            bn: torch_bn(1e-5),
            tf_same: false,
            mb_act: Activation::Relu6,
            squeeze_excite: false,
            drop_path: 0.0,
        }
    }

    fn apply(&mut self, layer: LayerSpec, inputs: &[&str]) -> String {
        self.g.apply(layer, inputs)
    }

    /// `Conv2d(k, stride, padding=pad, bias)` with a linear activation.
    fn conv(
        &mut self,
        x: &str,
        filters: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    ) -> String {
        let c = Conv2dConfig::new(filters, k)
            .with_stride(stride)
            .with_padding(Padding::symmetric(pad))
            .with_bias(bias);
        self.apply(LayerSpec::Conv2D(c), &[x])
    }

    /// The padding of a k x k window in this net (see `tf_same`).
    fn window_padding(&self, k: usize) -> Padding {
        if self.tf_same {
            Padding::Same
        } else {
            Padding::symmetric((k - 1) / 2)
        }
    }

    fn batch_norm(&mut self, x: &str) -> String {
        self.apply(LayerSpec::BatchNormalization(self.bn.clone()), &[x])
    }

    fn relu(&mut self, x: &str) -> String {
        self.act(x, Activation::Relu)
    }

    fn act(&mut self, x: &str, activation: Activation) -> String {
        self.apply(LayerSpec::Activation { activation }, &[x])
    }

    /// Depthwise `Conv2d(groups=C, k, stride, bias=False)` -> BN -> the
    /// blocks' activation: the middle of an inverted residual block.
    fn depthwise_bn_act(&mut self, x: &str, k: usize, stride: usize) -> String {
        let c = DepthwiseConv2dConfig::new(k)
            .with_stride(stride)
            .with_padding(self.window_padding(k))
            .with_bias(false);
        let h = self.apply(LayerSpec::DepthwiseConv2D(c), &[x]);
        let h = self.batch_norm(&h);
        self.act(&h, self.mb_act)
    }

    /// Squeeze-and-excitation (torchvision's `SqueezeExcitation` with
    /// SiLU): global average pooling -> Dense(`squeeze`, swish) ->
    /// Dense(C, sigmoid) -> the map times that gate per channel (the 1x1
    /// convs on the pooled vector are these Dense layers).
    fn squeeze_excite(&mut self, x: &str, squeeze: usize) -> String {
        let c = self.channels(x);
        let p = self.apply(LayerSpec::GlobalAveragePooling2D, &[x]);
        let dense = |u, a| LayerSpec::Dense(DenseConfig::new(u).with_activation(a));
        let s = self.apply(dense(squeeze, Activation::Swish), &[&p]);
        let s = self.apply(dense(c, Activation::Sigmoid), &[&s]);
        self.apply(LayerSpec::Multiply, &[x, &s])
    }

    /// Conv (no bias) -> BN -> the blocks' activation: torchvision's
    /// `Conv2dNormActivation` in MobileNet and EfficientNet.
    fn conv_bn_act(&mut self, x: &str, filters: usize, k: usize, stride: usize) -> String {
        let c = Conv2dConfig::new(filters, k)
            .with_stride(stride)
            .with_padding(self.window_padding(k))
            .with_bias(false);
        let h = self.apply(LayerSpec::Conv2D(c), &[x]);
        let h = self.batch_norm(&h);
        self.act(&h, self.mb_act)
    }

    /// MobileNet-V2's inverted residual block (EfficientNet's MBConv):
    /// 1x1 expansion by `t` (none when 1) -> k x k depthwise (stride) ->
    /// squeeze-and-excitation when the net has it -> 1x1 linear
    /// projection, plus the input when the stride is 1 and the width
    /// unchanged.
    fn inverted_residual(
        &mut self,
        x: &str,
        out: usize,
        k: usize,
        stride: usize,
        t: usize,
    ) -> String {
        let inp = self.channels(x);
        let mut h = x.to_string();
        if t != 1 {
            h = self.conv_bn_act(&h, inp * t, 1, 1);
        }
        let mut h = self.depthwise_bn_act(&h, k, stride);
        if self.squeeze_excite {
            h = self.squeeze_excite(&h, (inp / 4).max(1));
        }
        let h = self.conv(&h, out, 1, 1, 0, false);
        let mut h = self.batch_norm(&h);
        if stride == 1 && inp == out {
            if self.drop_path > 0.0 {
                let sd = LayerSpec::StochasticDepth {
                    rate: self.drop_path,
                };
                h = self.apply(sd, &[&h]);
            }
            self.apply(LayerSpec::Add, &[&h, x])
        } else {
            h
        }
    }

    /// Conv (no bias) -> BN -> ReLU: torchvision's `BasicConv2d`.
    fn conv_bn_relu(
        &mut self,
        x: &str,
        filters: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> String {
        let h = self.conv(x, filters, k, stride, pad, false);
        let h = self.batch_norm(&h);
        self.relu(&h)
    }

    fn max_pool(&mut self, x: &str, k: usize, stride: usize, pad: usize, ceil: bool) -> String {
        let p = PoolConfig::new(k)
            .with_stride(stride)
            .with_padding(Padding::symmetric(pad))
            .with_ceil_mode(ceil);
        self.apply(LayerSpec::MaxPooling2D(p), &[x])
    }

    fn channels(&self, x: &str) -> usize {
        let (w, shapes) = self.g.checked().expect("the zoo builds valid graphs");
        let i = w
            .names
            .iter()
            .position(|n| n == x)
            .expect("a node of this graph");
        shapes[i][2]
    }

    /// The classifier: global average pooling (unless flat), optional
    /// dropout, Dense to the classes with the output activation.
    fn head(&mut self, x: &str, dropout: Option<f32>, classes: usize) {
        let mut h = self.apply(LayerSpec::GlobalAveragePooling2D, &[x]);
        if let Some(rate) = dropout {
            h = self.apply(LayerSpec::Dropout(DropoutConfig::new(rate)), &[&h]);
        }
        self.apply(LayerSpec::Dense(output(classes)), &[&h]);
    }

    /// He et al.'s basic block: conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the
    /// input (or its 1x1 projection with BN when the stride or width
    /// changes), then ReLU.
    fn basic_block(&mut self, x: &str, planes: usize, stride: usize) -> String {
        let h = self.conv_bn_relu(x, planes, 3, stride, 1);
        let h = self.conv(&h, planes, 3, 1, 1, false);
        let h = self.batch_norm(&h);
        let shortcut = if stride != 1 || self.channels(x) != planes {
            let p = self.conv(x, planes, 1, stride, 0, false);
            self.batch_norm(&p)
        } else {
            x.to_string()
        };
        let s = self.apply(LayerSpec::Add, &[&h, &shortcut]);
        self.relu(&s)
    }
}

/// PyTorch's batch norm (momentum 0.1 on the new value, eps) in our convention.
fn torch_bn(epsilon: f32) -> BatchNormConfig {
    let mut bn = BatchNormConfig::new();
    bn.momentum = 0.9;
    bn.epsilon = epsilon;
    bn
}

/// The output layer: softmax over `classes`, or a sigmoid unit when 1.
fn output(classes: usize) -> DenseConfig {
    DenseConfig::new(classes).with_activation(if classes == 1 {
        Activation::Sigmoid
    } else {
        Activation::Softmax
    })
}

/// torchvision's VGG configurations: widths, 0 for a 2x2 max pool.
fn vgg_config(depth: &str) -> &'static [usize] {
    match depth {
        "11" => &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        "13" => &[
            64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0,
        ],
        "16" => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
        ],
        _ => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512,
            512, 0,
        ],
    }
}

fn vgg(b: &mut Builder, depth: &str, bn: bool, classes: usize) {
    let mut x = b.g.input();
    for &v in vgg_config(depth) {
        if v == 0 {
            x = b.max_pool(&x, 2, 2, 0, false);
        } else {
            // torchvision's VGG convs keep their bias, with or without BN.
            x = b.conv(&x, v, 3, 1, 1, true);
            if bn {
                x = b.batch_norm(&x);
            }
            x = b.relu(&x);
        }
    }
    x = b.apply(LayerSpec::Flatten, &[&x]);
    for _ in 0..2 {
        let d = DenseConfig::new(4096).with_activation(Activation::Relu);
        x = b.apply(LayerSpec::Dense(d), &[&x]);
        x = b.apply(LayerSpec::Dropout(DropoutConfig::new(0.5)), &[&x]);
    }
    b.apply(LayerSpec::Dense(output(classes)), &[&x]);
}

fn resnet_imagenet(b: &mut Builder, blocks: [usize; 4], classes: usize) {
    let x = b.g.input();
    let x = b.conv_bn_relu(&x, 64, 7, 2, 3);
    let mut x = b.max_pool(&x, 3, 2, 1, false);
    for (stage, &n) in blocks.iter().enumerate() {
        let planes = 64 << stage;
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            x = b.basic_block(&x, planes, stride);
        }
    }
    b.head(&x, None, classes);
}

fn resnet_cifar(b: &mut Builder, n: usize, classes: usize) {
    let x = b.g.input();
    let mut x = b.conv_bn_relu(&x, 16, 3, 1, 1);
    for stage in 0..3 {
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            x = b.basic_block(&x, 16 << stage, stride);
        }
    }
    b.head(&x, None, classes);
}

/// torchvision's `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`.
fn inception(b: &mut Builder, x: &str, c: [usize; 6]) -> String {
    let b1 = b.conv_bn_relu(x, c[0], 1, 1, 0);
    let h = b.conv_bn_relu(x, c[1], 1, 1, 0);
    let b2 = b.conv_bn_relu(&h, c[2], 3, 1, 1);
    let h = b.conv_bn_relu(x, c[3], 1, 1, 0);
    // 3x3, not the paper's 5x5: torchvision's weights were trained so.
    let b3 = b.conv_bn_relu(&h, c[4], 3, 1, 1);
    let h = b.max_pool(x, 3, 1, 1, true);
    let b4 = b.conv_bn_relu(&h, c[5], 1, 1, 0);
    b.apply(LayerSpec::Concatenate, &[&b1, &b2, &b3, &b4])
}

fn googlenet(b: &mut Builder, classes: usize) {
    b.bn = torch_bn(1e-3);
    let x = b.g.input();
    let x = b.conv_bn_relu(&x, 64, 7, 2, 3);
    let x = b.max_pool(&x, 3, 2, 0, true);
    let x = b.conv_bn_relu(&x, 64, 1, 1, 0);
    let x = b.conv_bn_relu(&x, 192, 3, 1, 1);
    let mut x = b.max_pool(&x, 3, 2, 0, true);
    let stages: [&[[usize; 6]]; 3] = [
        &[[64, 96, 128, 16, 32, 32], [128, 128, 192, 32, 96, 64]],
        &[
            [192, 96, 208, 16, 48, 64],
            [160, 112, 224, 24, 64, 64],
            [128, 128, 256, 24, 64, 64],
            [112, 144, 288, 32, 64, 64],
            [256, 160, 320, 32, 128, 128],
        ],
        &[[256, 160, 320, 32, 128, 128], [384, 192, 384, 48, 128, 128]],
    ];
    for (s, modules) in stages.iter().enumerate() {
        for &c in modules.iter() {
            x = inception(b, &x, c);
        }
        match s {
            0 => x = b.max_pool(&x, 3, 2, 0, true),
            1 => x = b.max_pool(&x, 2, 2, 0, true),
            _ => {}
        }
    }
    b.head(&x, Some(0.2), classes);
}

/// torchvision's `mobilenet_v2()` (width 1.0): a stride-2 stem, 17
/// inverted residual blocks `(t, c, n, s)`, a 1x1 conv to 1,280, dropout 0.2.
fn mobilenet_v2(b: &mut Builder, classes: usize) {
    let x = b.g.input();
    let mut x = b.conv_bn_act(&x, 32, 3, 2);
    let blocks = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    for (t, c, n, s) in blocks {
        for i in 0..n {
            x = b.inverted_residual(&x, c, 3, if i == 0 { s } else { 1 }, t);
        }
    }
    let x = b.conv_bn_act(&x, 1280, 1, 1);
    b.head(&x, Some(0.2), classes);
}

/// EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant for mobile
/// accelerators, as the TensorFlow reference and `efficientnet-lite-pytorch`
/// build it): EfficientNet-B0's MBConv stages without squeeze-and-excitation,
/// ReLU6 for swish, the stem (32) and head (1,280) fixed; TensorFlow's
/// `same` padding and batch norm (momentum 0.99, eps 1e-3); drop connect
/// (stochastic depth) 0.2 * block / 16 on the blocks with a shortcut;
/// dropout 0.2.
/// torchvision's `efficientnet_b0()`: a stride-2 stem, MBConv stages with
/// squeeze-and-excitation (squeeze to a quarter of the block's input
/// width), swish (SiLU) everywhere, the 1x1 head to 1,280, dropout 0.2;
/// PyTorch's padding and batch norm; stochastic depth on the blocks with a
/// shortcut (rate 0.2 * block / 16, as torchvision's).
fn efficientnet_b0(b: &mut Builder, classes: usize) {
    b.mb_act = Activation::Swish;
    b.squeeze_excite = true;
    mbconv_stages(b, classes);
}

/// EfficientNet-B0's stem, MBConv stages and head with the builder's
/// settings (activation, padding, batch norm, squeeze-and-excitation).
fn mbconv_stages(b: &mut Builder, classes: usize) {
    let x = b.g.input();
    let mut x = b.conv_bn_act(&x, 32, 3, 2);
    // (expansion t, kernel k, stride s of the first, width c, repeats n)
    let stages = [
        (1, 3, 1, 16, 1),
        (6, 3, 2, 24, 2),
        (6, 5, 2, 40, 2),
        (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3),
        (6, 5, 2, 192, 4),
        (6, 3, 1, 320, 1),
    ];
    // Stochastic depth 0.2 * (block index) / (block count), on the blocks
    // with a shortcut: torchvision's and efficientnet-lite-pytorch's rule.
    let total: usize = stages.iter().map(|s| s.4).sum();
    let mut block = 0;
    for (t, k, s, c, n) in stages {
        for i in 0..n {
            b.drop_path = 0.2 * block as f32 / total as f32;
            x = b.inverted_residual(&x, c, k, if i == 0 { s } else { 1 }, t);
            block += 1;
        }
    }
    b.drop_path = 0.0;
    let x = b.conv_bn_act(&x, 1280, 1, 1);
    b.head(&x, Some(0.2), classes);
}

fn efficientnet_lite0(b: &mut Builder, classes: usize) {
    b.tf_same = true;
    let mut bn = BatchNormConfig::new();
    bn.epsilon = 1e-3;
    b.bn = bn;
    mbconv_stages(b, classes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(name: &str, input: &[usize], classes: usize) -> (usize, usize) {
        let s = builtin(name, input, classes)
            .unwrap()
            .unwrap()
            .summary()
            .unwrap();
        (s.trainable, s.non_trainable)
    }

    #[test]
    fn parameter_counts_equal_torchvision() {
        // torchvision's sum(p.numel() for p in model.parameters()) (trainable)
        // and its BN buffers running_mean + running_var (non-trainable).
        let imagenet = [224, 224, 3];
        assert_eq!(counts("resnet18", &imagenet, 1000), (11_689_512, 9_600));
        assert_eq!(counts("resnet34", &imagenet, 1000).0, 21_797_672);
        assert_eq!(counts("vgg16", &imagenet, 1000), (138_357_544, 0));
        assert_eq!(counts("vgg16-bn", &imagenet, 1000).0, 138_365_992);
        assert_eq!(counts("vgg11", &imagenet, 1000).0, 132_863_336);
        assert_eq!(counts("vgg19_bn", &imagenet, 1000).0, 143_678_248);
        assert_eq!(counts("googlenet", &imagenet, 1000).0, 6_624_904);
        assert_eq!(counts("resnet20", &[32, 32, 3], 10).0, 272_474);
        // torchvision's mobilenet_v2 (3,504,872 as its docs say; the buffers
        // from a plain PyTorch rebuild of it, which has no torchvision here).
        assert_eq!(counts("mobilenet_v2", &imagenet, 1000), (3_504_872, 34_112));
        // efficientnet-lite-pytorch's model with the ImageNet weights: its
        // parameters, and its buffers less the 49 batch-count scalars.
        assert_eq!(
            counts("efficientnet_lite0", &imagenet, 1000),
            (4_652_008, 42_065 - 49)
        );
        // torchvision's efficientnet_b0: parameters and running statistics.
        assert_eq!(
            counts("efficientnet_b0", &imagenet, 1000),
            (5_288_548, 42_016)
        );
    }

    #[test]
    fn output_sizes_follow_torchvision() {
        let g = builtin("googlenet", &[224, 224, 3], 1000).unwrap().unwrap();
        let shapes = g.output_shapes().unwrap();
        let concat: Vec<&Vec<usize>> = g
            .layers
            .iter()
            .zip(&shapes)
            .filter(|(n, _)| n.layer.kind() == "Concatenate")
            .map(|(_, s)| s)
            .collect();
        // inception3a .. 5b: 28, 28, 14 x5, 7, 7 with torchvision's widths.
        assert_eq!(concat[0], &vec![28, 28, 256]);
        assert_eq!(concat[2], &vec![14, 14, 512]);
        assert_eq!(concat[8], &vec![7, 7, 1024]);
        assert_eq!(shapes.last().unwrap(), &vec![1000]);
        let r = builtin("resnet56", &[32, 32, 3], 10).unwrap().unwrap();
        let adds = r.layers.iter().filter(|n| n.layer.kind() == "Add").count();
        assert_eq!(adds, 27);
        let m = builtin("mobilenet_v2", &[224, 224, 3], 1000)
            .unwrap()
            .unwrap();
        let shapes = m.output_shapes().unwrap();
        let adds = m.layers.iter().filter(|n| n.layer.kind() == "Add").count();
        assert_eq!(adds, 10, "the blocks that keep stride 1 and width");
        // The last block's map is 7x7x320, then 1x1 to 1,280.
        let last_dw = m
            .layers
            .iter()
            .rposition(|n| n.layer.kind() == "DepthwiseConv2D")
            .unwrap();
        assert_eq!(shapes[last_dw], vec![7, 7, 960]);
        assert!(builtin("resnet99", &[32, 32, 3], 10).is_none());
        assert!(builtin("vgg16", &[16, 16, 3], 10).unwrap().is_err());
    }
}
