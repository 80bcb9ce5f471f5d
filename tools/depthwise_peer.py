#!/usr/bin/env python3
"""PyTorch's depthwise convolution (Conv2d, groups = C, channels-last, fp32)
on the shapes of crates/tensor/examples/depthwise_bench.rs: forward, input
gradient and weight gradient, best of 10 passes, ms (GFLOP/s, GB/s).

    python3 tools/depthwise_peer.py [THREADS]
"""
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [  # (label, [N, H, W, C], kernel, stride), as the Rust example
    ("112x112x32 DW3 b32", [32, 112, 112, 32], 3, 1),
    ("112x112x96 DW3S2 b32", [32, 112, 112, 96], 3, 2),
    ("56x56x144 DW3 b32", [32, 56, 56, 144], 3, 1),
    ("28x28x240 DW5 b32", [32, 28, 28, 240], 5, 1),
    ("14x14x480 DW3 b32", [32, 14, 14, 480], 3, 1),
]


def best(f, reps=10):
    f()
    out = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out = min(out, time.perf_counter() - t)
    return out


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} thread(s); ms per pass (GFLOP/s, GB/s): "
          "forward | input gradient | weight gradient")
    cl = torch.channels_last
    for label, (n, h, w, c), k, s in SHAPES:
        x = torch.rand(n, c, h, w).to(memory_format=cl).requires_grad_()
        wt = torch.rand(c, 1, k, k).requires_grad_()
        b = torch.rand(c).requires_grad_()
        pad = k // 2
        y = F.conv2d(x, wt, b, stride=s, padding=pad, groups=c)
        dy = torch.rand_like(y)
        oh, ow = y.shape[2], y.shape[3]
        gflop = 2.0 * n * oh * ow * c * k * k / 1e9
        gb = 4.0 * (x.numel() + y.numel() + wt.numel()) / 1e9

        def fwd():
            with torch.no_grad():
                F.conv2d(x, wt, b, stride=s, padding=pad, groups=c)

        def grads(inputs):
            def run():
                out = F.conv2d(x, wt, b, stride=s, padding=pad, groups=c)
                torch.autograd.grad(out, inputs, dy)
            return run

        t_f = best(fwd)
        # Each gradient alone includes a forward; subtract it.
        t_i = best(grads([x])) - t_f
        t_w = best(grads([wt, b])) - t_f
        cols = [f"{t * 1e3:7.2f} ({gflop / t:5.1f}, {gb / t:5.1f})" for t in (t_f, t_i, t_w)]
        print(f"{label:<22} " + " | ".join(cols))


if __name__ == "__main__":
    main()
