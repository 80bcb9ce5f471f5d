#!/usr/bin/env python3
"""ONNX files written by PyTorch's exporter, for convnet's importer tests.

Architectures built from torchvision's own modules (BasicBlock,
make_layers, Inception, BasicConv2d) in torchvision's arrangement, at
reduced width so that the fixtures stay small, with random weights and
batch-norm statistics moved away from (0, 1):

  resnet18-ts      ResNet-18 layout (7x7/2 stem, 3x3/2 max pool, 2-2-2-2
                   BasicBlocks with 1x1 projection + BN, global average
                   pool, fc), width 4, 64x64x3; TorchScript exporter with
                   batch norm kept (training=PRESERVE).
  resnet18-dynamo  the same net through PyTorch 2's default exporter (batch
                   norm folded into the convs, ReduceMean, Reshape, weights
                   in an external data file).
  vgg11-bn         VGG-11-BN layout (make_layers with batch norm), widths /16,
                   64x64x3, adaptive average pool, a channel-first flatten of
                   a 2x2 map, a 3-layer classifier with dropout.
  normalized       resnet18-dynamo inside the README's wrapper: (x - mean) / std
                   in front, softmax behind (Sub, Div, Softmax).
  googlenet        GoogLeNet layout (BasicConv2d = conv without bias + BN
                   eps 1e-3 + ReLU, Inception modules, ceil-mode max pools,
                   3x3 kernels in the "5x5" branch as torchvision has them),
                   widths /8, 64x64x3.
  mobile-lite      a small EfficientNet-Lite (MobileLite below): depthwise convs
                   3x3 and 5x5, strides 1 and 2, TensorFlow's `same` padding as
                   ZeroPad2d (pads computed by ConstantOfShape ... Cast), ReLU6
                   (Clip), a residual sum, a single-input Concat, 32x32x3;
                   TorchScript exporter, batch norm kept. `--only mobile-lite`
                   writes it alone (no torchvision needed).
  grouped          grouped convolutions (2 and 4 groups; strides, dilation,
                   padding, bias or BN), 12x12x4; `--only grouped`.
  shuffle-ts       ShuffleNet V2 units (torchvision's InvertedResidual and
  shuffle-dynamo   channel_shuffle, copied below): a stride-2 unit, then two
                   stride-1 units that chunk the channels in two; 16x16x3,
                   through both exporters (TorchScript writes the chunk as
                   Slice with ends computed from Shape, dynamo as Split);
                   `--only shuffle`.

Each fixture is NAME.onnx (+ NAME.onnx.data), NAME.input.bin (NCHW f32 LE),
NAME.expected.bin (PyTorch's output) and NAME.json (shapes). Usage:

    python3 tools/onnx/gen_torch_fixtures.py crates/onnx/tests/fixtures
    python3 tools/onnx/gen_torch_fixtures.py --full target/onnx-full   # torchvision's full-size nets

Needs torch, torchvision and onnx (pip install torch torchvision onnx).
"""
import argparse
import json
import pathlib

import torch
import torch.nn as nn


def resnet18(width: int, classes: int) -> nn.Module:
    """torchvision's ResNet-18 with `width` channels in its first stage (64 there)."""
    from torchvision.models.resnet import BasicBlock

    layers = [
        nn.Conv2d(3, width, 7, 2, 3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    inplanes = width
    for i, planes in enumerate([width, 2 * width, 4 * width, 8 * width]):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or inplanes != planes:
            down = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers += [BasicBlock(inplanes, planes, stride, down), BasicBlock(planes, planes)]
        inplanes = planes
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(inplanes, classes)]
    return nn.Sequential(*layers)


def vgg11_bn(div: int, classes: int, pooled: int) -> nn.Module:
    """torchvision's VGG-11-BN with channels / `div` and a smaller classifier."""
    from torchvision.models.vgg import make_layers

    cfg = [c if c == "M" else c // div for c in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]]
    features = make_layers(cfg, batch_norm=True)
    last = 512 // div
    hidden = 4096 // (div * 4)
    return nn.Sequential(
        features,
        nn.AdaptiveAvgPool2d((pooled, pooled)),
        nn.Flatten(1),
        nn.Linear(last * pooled * pooled, hidden),
        nn.ReLU(True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(True),
        nn.Dropout(0.5),
        nn.Linear(hidden, classes),
    )


def googlenet(div: int, classes: int) -> nn.Module:
    """torchvision's GoogLeNet (no auxiliary heads) with channels / `div`."""
    from torchvision.models.googlenet import BasicConv2d, Inception

    d = lambda *cs: [c // div for c in cs]  # noqa: E731
    return nn.Sequential(
        BasicConv2d(3, *d(64), kernel_size=7, stride=2, padding=3),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        BasicConv2d(*d(64, 64), kernel_size=1),
        BasicConv2d(*d(64, 192), kernel_size=3, padding=1),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        Inception(*d(192, 64, 96, 128, 16, 32, 32)),
        Inception(*d(256, 128, 128, 192, 32, 96, 64)),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        Inception(*d(480, 192, 96, 208, 16, 48, 64)),
        Inception(*d(512, 160, 112, 224, 24, 64, 64)),
        Inception(*d(512, 128, 128, 256, 24, 64, 64)),
        Inception(*d(512, 112, 144, 288, 32, 64, 64)),
        Inception(*d(528, 256, 160, 320, 32, 128, 128)),
        nn.MaxPool2d(2, stride=2, ceil_mode=True),
        Inception(*d(832, 256, 160, 320, 32, 128, 128)),
        Inception(*d(832, 384, 192, 384, 48, 128, 128)),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(1),
        nn.Dropout(0.2),
        nn.Linear(1024 // div, classes),
    )


class SamePadConv(nn.Module):
    """efficientnet-lite-pytorch's Conv2dStaticSamePadding: TensorFlow's
    `same` padding for a fixed input size as a ZeroPad2d in front of an
    unpadded conv (PyTorch's exporter writes the pads as ConstantOfShape ->
    Concat -> Reshape -> Slice -> Transpose -> Reshape -> Cast -> Pad)."""

    def __init__(self, cin, cout, k, stride, size, groups=1):
        super().__init__()
        out = -(-size // stride)
        pad = max((out - 1) * stride + k - size, 0)
        self.pad = nn.ZeroPad2d((pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        self.conv = nn.Conv2d(cin, cout, k, stride, groups=groups, bias=False)

    def forward(self, x):
        return self.conv(self.pad(x))


class MBConv(nn.Module):
    """EfficientNet-Lite's block: 1x1 expand, k x k depthwise, 1x1 project, BN after each, ReLU6."""

    def __init__(self, cin, cout, k, stride, t, size):
        super().__init__()
        mid = cin * t
        self.skip = stride == 1 and cin == cout
        self.body = nn.Sequential(
            SamePadConv(cin, mid, 1, 1, size), nn.BatchNorm2d(mid, eps=1e-3), nn.ReLU6(),
            SamePadConv(mid, mid, k, stride, size, groups=mid), nn.BatchNorm2d(mid, eps=1e-3), nn.ReLU6(),
            SamePadConv(mid, cout, 1, 1, -(-size // stride)), nn.BatchNorm2d(cout, eps=1e-3),
        )

    def forward(self, x):
        y = self.body(x)
        return y + x if self.skip else y


class MobileLite(nn.Module):
    """A small EfficientNet-Lite: stem 3x3/2, MBConv blocks with 3x3 and 5x5
    depthwise convs (strides 1 and 2, one residual), a 1x1 head, a
    single-input Concat (as densenet121's TorchScript export has), pool, fc."""

    def __init__(self, classes: int):
        super().__init__()
        self.stem = nn.Sequential(SamePadConv(3, 8, 3, 2, 32), nn.BatchNorm2d(8, eps=1e-3), nn.ReLU6())
        self.blocks = nn.Sequential(
            MBConv(8, 8, 3, 1, 2, 16), MBConv(8, 12, 5, 2, 3, 16), MBConv(12, 16, 3, 2, 3, 8)
        )
        self.head = nn.Sequential(SamePadConv(16, 32, 1, 1, 4), nn.BatchNorm2d(32, eps=1e-3), nn.ReLU6())
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = torch.cat([self.head(self.blocks(self.stem(x)))], 1)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Grouped(nn.Module):
    """Grouped convolutions as ResNeXt and RegNet use them: 2 and 4 groups,
    strides, dilation, padding, with and without bias, ReLU between."""

    def __init__(self, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 12, 3, padding=2, dilation=2, groups=4),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(12, classes),
        )

    def forward(self, x):
        return self.body(x)


def channel_shuffle(x, groups: int):
    """torchvision.models.shufflenetv2.channel_shuffle."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, num_channels, height, width)


class ShuffleUnit(nn.Module):
    """torchvision.models.shufflenetv2.InvertedResidual."""

    def __init__(self, inp, oup, stride):
        super().__init__()
        self.stride = stride
        f = oup // 2

        def dw(c, s):
            return [nn.Conv2d(c, c, 3, s, 1, bias=False, groups=c), nn.BatchNorm2d(c)]

        def pw(a, b):
            return [nn.Conv2d(a, b, 1, 1, 0, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

        if stride > 1:
            self.branch1 = nn.Sequential(*dw(inp, stride), *pw(inp, f))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(*pw(inp if stride > 1 else f, f), *dw(f, stride), *pw(f, f))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class Shuffle(nn.Module):
    """A stem conv, a stride-2 ShuffleNet V2 unit, two stride-1 units, pool, fc."""

    def __init__(self, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.units = nn.Sequential(ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, 1), ShuffleUnit(16, 16, 1))
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.units(self.stem(x)).mean([2, 3]))


class ImageNetInput(nn.Module):
    """The wrapper the README gives: ImageNet's normalization in front, softmax behind."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return torch.softmax(self.net((x - self.mean) / self.std), dim=1)


def randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) * 0.6 - 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=gen) * 0.6 - 0.3)


def write(out: pathlib.Path, name: str, model: nn.Module, shape, dynamo: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        randomize_bn(model, gen)
    model.eval()
    x = torch.rand(*shape, generator=gen)
    with torch.no_grad():
        y = model(x)
    path = out / f"{name}.onnx"
    for old in [path, out / f"{name}.onnx.data"]:
        old.unlink(missing_ok=True)
    if dynamo:
        torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=True)
    else:
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=17,
            training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["output"],
        )
    x.numpy().astype("<f4").tofile(out / f"{name}.input.bin")
    y.numpy().astype("<f4").tofile(out / f"{name}.expected.bin")
    meta = {"input": list(x.shape), "output": list(y.shape), "torch": torch.__version__}
    (out / f"{name}.json").write_text(json.dumps(meta) + "\n")
    size = sum(p.stat().st_size for p in out.glob(f"{name}.*"))
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, {size:,} bytes")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--full", action="store_true", help="torchvision's full-size resnet18, vgg11_bn, googlenet at 224x224")
    ap.add_argument("--only", help="write this fixture only (mobile-lite, grouped, shuffle: no torchvision needed)")
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if a.full:
        import torchvision

        write(out, "resnet18", torchvision.models.resnet18(), (1, 3, 224, 224), False)
        write(out, "vgg11-bn", torchvision.models.vgg11_bn(), (1, 3, 224, 224), False)
        g = torchvision.models.googlenet(aux_logits=False, init_weights=True, transform_input=False)
        write(out, "googlenet", g, (1, 3, 224, 224), False)
        return
    if a.only == "mobile-lite":
        write(out, "mobile-lite", MobileLite(10), (2, 3, 32, 32), False)
        return
    if a.only == "grouped":
        write(out, "grouped", Grouped(5), (2, 4, 12, 12), False)
        return
    if a.only == "shuffle":
        write(out, "shuffle-ts", Shuffle(6), (2, 3, 16, 16), False)
        write(out, "shuffle-dynamo", Shuffle(6), (2, 3, 16, 16), True)
        return
    write(out, "resnet18-ts", resnet18(4, 10), (2, 3, 64, 64), False)
    write(out, "resnet18-dynamo", resnet18(4, 10), (2, 3, 64, 64), True)
    write(out, "vgg11-bn", vgg11_bn(16, 10, 2), (2, 3, 64, 64), False)
    write(out, "googlenet", googlenet(8, 10), (2, 3, 64, 64), False)
    write(out, "normalized", ImageNetInput(resnet18(4, 10)), (2, 3, 64, 64), True)
    write(out, "mobile-lite", MobileLite(10), (2, 3, 32, 32), False)
    write(out, "grouped", Grouped(5), (2, 4, 12, 12), False)
    write(out, "shuffle-ts", Shuffle(6), (2, 3, 16, 16), False)
    write(out, "shuffle-dynamo", Shuffle(6), (2, 3, 16, 16), True)


if __name__ == "__main__":
    main()
