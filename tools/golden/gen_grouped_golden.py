"""Writes crates/nn/tests/golden/grouped.json, the fixture that
crates/nn/tests/golden.rs checks grouped Conv2D (`groups` > 1) against.

Run from the repository root (needs `pip install torch numpy`):

    python3 tools/golden/gen_grouped_golden.py

PyTorch's `Conv2d(groups=G)` splits the C input channels and the F filters
into G groups; its weight `[F, C/G, KH, KW]` is Keras's kernel
`[KH, KW, C/G, F]` transposed, the layout convnet keeps. NHWC activations;
'same' padding puts the odd pixel bottom/right as Keras does (padded by
hand). References in f64 on f32-rounded inputs.
"""

import json
import os

import torch
import torch.nn.functional as F

from gen_golden import OUT, nhwc, pad_for, rnd, t

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def grouped_cases():
    cases = []
    specs = [
        # (n, h, w, c, f, groups, k, s, d, padding)
        (2, 7, 7, 4, 6, 2, (3, 3), (1, 1), (1, 1), "same"),
        (2, 8, 7, 6, 6, 3, (3, 3), (2, 2), (1, 1), "same"),   # ResNeXt/RegNet: stride 2
        (1, 9, 9, 8, 4, 4, (1, 1), (1, 1), (1, 1), "valid"),  # grouped 1x1 (ShuffleNet V1)
        (2, 9, 8, 4, 8, 2, (3, 3), (1, 1), (2, 2), "valid"),  # dilation
        (2, 6, 6, 6, 9, 3, (2, 3), (1, 2), (1, 1), "same"),   # rectangular kernel and stride
    ]
    for n, h, w, c, f, g, k, s, d, padding in specs:
        x = rnd(n, c, h, w).requires_grad_()
        wt = rnd(f, c // g, k[0], k[1]).requires_grad_()
        b = rnd(f).requires_grad_()
        y = F.conv2d(pad_for(x, k, s, d, padding), wt, b, stride=s, dilation=d, groups=g)
        dy = rnd(*y.shape)
        y.backward(dy)
        hwio = lambda v: v.permute(2, 3, 1, 0)  # [F, C/G, KH, KW] -> [KH, KW, C/G, F]
        cases.append({
            "filters": f, "groups": g, "kernel": list(k), "stride": list(s), "dilation": list(d),
            "padding": padding,
            "x": t(nhwc(x)), "kernel_hwio": t(hwio(wt)), "bias": t(b),
            "y": t(nhwc(y)), "dy": t(nhwc(dy)),
            "dx": t(nhwc(x.grad)), "dkernel": t(hwio(wt.grad)), "dbias": t(b.grad),
        })
    return cases


def main():
    path = os.path.join(OUT, "grouped.json")
    with open(path, "w") as fh:
        json.dump({"generator": "tools/golden/gen_grouped_golden.py",
                   "torch": torch.__version__, "cases": grouped_cases()}, fh)
    print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
