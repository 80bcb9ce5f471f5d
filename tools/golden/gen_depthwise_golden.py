"""Writes crates/nn/tests/golden/depthwise.json, the fixture that
crates/nn/tests/golden.rs checks DepthwiseConv2D against.

Run from the repository root (needs `pip install torch numpy`):

    python3 tools/golden/gen_depthwise_golden.py

PyTorch computes a depthwise convolution as `Conv2d` with `groups = C` and
a weight `[C*M, 1, KH, KW]`; output channel `c*M + m` reads input channel
`c`, as Keras's `DepthwiseConv2D` does with its kernel `[KH, KW, C, M]`.
The fixture is written in convnet's layouts (NHWC activations, the kernel
`[KH, KW, C, M]`); 'same' padding puts the odd pixel bottom/right as Keras
does (padded by hand). References in f64 on f32-rounded inputs.
"""

import json
import os

import torch
import torch.nn.functional as F

from gen_golden import OUT, nhwc, pad_for, rnd, t

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def depthwise_cases():
    cases = []
    specs = [
        # (n, h, w, c, m, k, s, d, padding)
        (2, 7, 7, 3, 1, (3, 3), (1, 1), (1, 1), "same"),
        (2, 7, 7, 3, 1, (3, 3), (1, 1), (1, 1), "valid"),
        (2, 8, 7, 4, 2, (3, 3), (2, 2), (1, 1), "same"),   # multiplier 2, stride 2
        (1, 9, 9, 2, 3, (5, 5), (2, 2), (1, 1), "same"),   # EfficientNet's 5x5 stride 2
        (2, 8, 8, 5, 1, (2, 2), (1, 1), (1, 1), "same"),   # even kernel: odd pad bottom/right
        (1, 9, 8, 3, 1, (3, 3), (1, 1), (2, 2), "valid"),  # dilation
        (2, 6, 6, 2, 2, (2, 3), (1, 2), (1, 1), "same"),   # rectangular kernel and stride
    ]
    for n, h, w, c, m, k, s, d, padding in specs:
        x = rnd(n, c, h, w).requires_grad_()
        wt = rnd(c * m, 1, k[0], k[1]).requires_grad_()
        b = rnd(c * m).requires_grad_()
        y = F.conv2d(pad_for(x, k, s, d, padding), wt, b, stride=s, dilation=d, groups=c)
        dy = rnd(*y.shape)
        y.backward(dy)
        # [C*M, 1, KH, KW] -> [KH, KW, C, M]
        hwcm = lambda v: v.reshape(c, m, k[0], k[1]).permute(2, 3, 0, 1)
        cases.append({
            "multiplier": m, "kernel": list(k), "stride": list(s), "dilation": list(d),
            "padding": padding,
            "x": t(nhwc(x)), "kernel_hwcm": t(hwcm(wt)), "bias": t(b),
            "y": t(nhwc(y)), "dy": t(nhwc(dy)),
            "dx": t(nhwc(x.grad)), "dkernel": t(hwcm(wt.grad)), "dbias": t(b.grad),
        })
    return cases


def main():
    path = os.path.join(OUT, "depthwise.json")
    with open(path, "w") as f:
        json.dump({"generator": "tools/golden/gen_depthwise_golden.py",
                   "torch": torch.__version__, "cases": depthwise_cases()}, f)
    print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
