"""Writes crates/nn/tests/golden/graph.json: a residual block with a
projection shortcut and batch norm (torchvision's BasicBlock) and an
inception module (torchvision's GoogLeNet Inception, BN after every conv,
3x3 in the "5x5" branch), in training mode: the forward output, the input
gradient and every parameter gradient for L = sum(r * y).

Run from the repository root (needs `pip install torch numpy`):

    python3 tools/golden/gen_graph_golden.py

The Rust test (crates/nn/tests/golden.rs) builds the same graphs node by
node; parameters are named as convnet names them, `layer{i}.{name}` with
`i` the node's position, and written in convnet's layouts (NHWC
activations, HWIO conv kernels).
"""

import json
import os

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "nn", "tests", "golden")
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def t(x):
    x = x.detach().to(torch.float64).numpy()
    return {"shape": list(x.shape), "data": [float(np.float32(v)) for v in x.reshape(-1)]}


def rnd(*shape):
    return torch.rand(*shape).mul(2).sub(1).float().double()


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def named(kind, m):
    """A conv's or batch norm's parameters and gradients, in convnet's names and layouts."""
    if kind == "conv":
        hwio = lambda w: w.permute(2, 3, 1, 0)  # noqa: E731  OIHW -> HWIO
        out = {"kernel": (hwio(m.weight), hwio(m.weight.grad))}
        if m.bias is not None:
            out["bias"] = (m.bias, m.bias.grad)
        return out
    return {"gamma": (m.weight, m.weight.grad), "beta": (m.bias, m.bias.grad)}


def randomize(module):
    # Weights away from the defaults (BN gamma 1, beta 0) so that every term matters.
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(rnd(*p.shape))


def case(name, module, nodes, x, extra=None):
    """`nodes`: (index, kind, torch module) in convnet's node order."""
    randomize(module)
    module.train()
    x = x.clone().requires_grad_(True)
    y = module(x)
    r = rnd(*y.shape)
    y.backward(r)
    params, grads = {}, {}
    for i, kind, m in nodes:
        for pname, (value, grad) in named(kind, m).items():
            params[f"layer{i}.{pname}"] = t(value)
            grads[f"layer{i}.{pname}"] = t(grad)
    c = {
        "name": name,
        "x": t(nhwc(x)),
        "r": t(nhwc(r)),
        "y": t(nhwc(y)),
        "dx": t(nhwc(x.grad)),
        "params": params,
        "grads": grads,
    }
    c.update(extra or {})
    return c


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock with its downsample."""

    def __init__(self, inplanes, planes, stride, eps):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=eps)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=eps)
        self.down_conv = nn.Conv2d(inplanes, planes, 1, stride, bias=False)
        self.down_bn = nn.BatchNorm2d(planes, eps=eps)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.down_bn(self.down_conv(x))
        return torch.relu(out)


class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, k, pad, eps):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=pad, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """torchvision.models.googlenet.Inception."""

    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp, eps):
        super().__init__()
        self.b1 = BasicConv2d(cin, c1, 1, 0, eps)
        self.b2a = BasicConv2d(cin, c3r, 1, 0, eps)
        self.b2b = BasicConv2d(c3r, c3, 3, 1, eps)
        self.b3a = BasicConv2d(cin, c5r, 1, 0, eps)
        self.b3b = BasicConv2d(c5r, c5, 3, 1, eps)
        self.pool = nn.MaxPool2d(3, 1, 1, ceil_mode=True)
        self.b4 = BasicConv2d(cin, pp, 1, 0, eps)

    def forward(self, x):
        return torch.cat(
            [self.b1(x), self.b2b(self.b2a(x)), self.b3b(self.b3a(x)), self.b4(self.pool(x))], 1
        )


def main():
    cases = []
    eps = 1e-5
    block = BasicBlock(4, 6, 2, eps)
    # convnet's nodes: 0 conv1, 1 bn1, 2 relu, 3 conv2, 4 bn2, 5 down_conv, 6 down_bn, 7 add, 8 relu.
    nodes = [
        (0, "conv", block.conv1),
        (1, "bn", block.bn1),
        (3, "conv", block.conv2),
        (4, "bn", block.bn2),
        (5, "conv", block.down_conv),
        (6, "bn", block.down_bn),
    ]
    cases.append(case("residual", block, nodes, rnd(2, 4, 6, 6), {"eps": eps}))

    eps = 1e-3
    inc = Inception(6, 4, 3, 5, 2, 3, 2, eps)
    # convnet's nodes, branch by branch: each BasicConv2d is conv, bn, relu;
    # the pool branch starts with the pool; then the concatenation.
    nodes = []
    i = 0
    for m in [inc.b1, inc.b2a, inc.b2b, inc.b3a, inc.b3b, None, inc.b4]:
        if m is None:
            i += 1  # the max pool
            continue
        nodes += [(i, "conv", m.conv), (i + 1, "bn", m.bn)]
        i += 3
    cases.append(case("inception", inc, nodes, rnd(2, 6, 5, 5), {"eps": eps}))

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "graph.json"), "w") as f:
        json.dump({"generator": "tools/golden/gen_graph_golden.py", "torch": torch.__version__, "cases": cases}, f)
    print("wrote", os.path.join(OUT, "graph.json"))


if __name__ == "__main__":
    main()
