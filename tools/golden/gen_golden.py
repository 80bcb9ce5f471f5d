"""Writes the golden fixtures that crates/nn/tests/golden.rs checks against.

Run from the repository root (needs `pip install torch numpy`):

    python3 tools/golden/gen_golden.py

PyTorch is NCHW and its conv weights are OIHW; the fixtures are written in
convnet's layouts: activations NHWC, conv kernels HWIO (Keras's), dense
kernels [in, out]. Keras/TensorFlow conventions are reproduced explicitly:
'same' padding puts the odd pixel bottom/right (we pad by hand with F.pad),
'same' max pooling pads with -inf, 'same' average pooling excludes the
padded cells, batch norm uses epsilon 1e-3 and Keras's moving-statistics
update (momentum 0.99, biased variance), and the probability forms of the
cross-entropies use Keras's clipping with epsilon 1e-7.

Each fixture file is JSON: a list of cases, each with its settings and the
tensors as {"shape": [...], "data": [...]}.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "nn", "tests", "golden")
EPS = 1e-7
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # references in f64, stored as f32-rounded values


def t(x):
    x = x.detach().to(torch.float64).numpy()
    return {"shape": list(x.shape), "data": [float(np.float32(v)) for v in x.reshape(-1)]}


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def rnd(*shape):
    # Round to f32 so that Rust sees exactly the same inputs.
    return torch.rand(*shape).mul(2).sub(1).float().double()


def same_pad(n, k, s, d=1):
    k_eff = (k - 1) * d + 1
    out = math.ceil(n / s)
    total = max((out - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def pad_for(x, k, s, d, padding, value=0.0):
    if padding == "valid":
        return x
    h, w = x.shape[2], x.shape[3]
    top, bottom = same_pad(h, k[0], s[0], d[0])
    left, right = same_pad(w, k[1], s[1], d[1])
    return F.pad(x, (left, right, top, bottom), value=value)


def conv_cases():
    cases = []
    specs = [
        # (n, h, w, c, f, k, s, d, padding)
        (2, 7, 7, 3, 4, (3, 3), (1, 1), (1, 1), "valid"),
        (2, 7, 7, 3, 4, (3, 3), (1, 1), (1, 1), "same"),
        (2, 8, 8, 2, 3, (2, 2), (1, 1), (1, 1), "same"),  # even kernel: odd pad bottom/right
        (2, 8, 7, 2, 3, (4, 4), (2, 2), (1, 1), "same"),
        (2, 9, 9, 3, 2, (5, 5), (2, 2), (1, 1), "same"),
        (1, 9, 8, 2, 3, (3, 3), (2, 2), (1, 1), "valid"),
        (1, 9, 9, 2, 2, (3, 3), (1, 1), (2, 2), "valid"),
        (2, 6, 6, 3, 2, (2, 3), (1, 2), (1, 1), "same"),
    ]
    for n, h, w, c, f, k, s, d, padding in specs:
        x = rnd(n, c, h, w).requires_grad_()
        wt = rnd(f, c, k[0], k[1]).requires_grad_()
        b = rnd(f).requires_grad_()
        y = F.conv2d(pad_for(x, k, s, d, padding), wt, b, stride=s, dilation=d)
        dy = rnd(*y.shape)
        y.backward(dy)
        cases.append({
            "filters": f, "kernel": list(k), "stride": list(s), "dilation": list(d),
            "padding": padding,
            "x": t(nhwc(x)), "kernel_hwio": t(wt.permute(2, 3, 1, 0)), "bias": t(b),
            "y": t(nhwc(y)), "dy": t(nhwc(dy)),
            "dx": t(nhwc(x.grad)), "dkernel": t(wt.grad.permute(2, 3, 1, 0)), "dbias": t(b.grad),
        })
    return cases


def pool_cases():
    cases = []
    specs = [
        # (n, h, w, c, pool, stride, padding)
        (2, 6, 6, 3, (2, 2), (2, 2), "valid"),
        (2, 7, 7, 3, (2, 2), (2, 2), "valid"),
        (2, 7, 7, 2, (2, 2), (2, 2), "same"),
        (1, 7, 6, 2, (3, 3), (2, 2), "same"),
        (1, 6, 6, 2, (3, 3), (1, 1), "valid"),
    ]
    for n, h, w, c, p, s, padding in specs:
        for kind in ("max", "avg"):
            x = rnd(n, c, h, w).requires_grad_()
            if kind == "max":
                y = F.max_pool2d(pad_for(x, p, s, (1, 1), padding, -math.inf), p, s)
            else:
                xp = pad_for(x, p, s, (1, 1), padding, 0.0)
                ones = pad_for(torch.ones_like(x), p, s, (1, 1), padding, 0.0)
                y = F.avg_pool2d(xp, p, s, divisor_override=1) / F.avg_pool2d(ones, p, s, divisor_override=1)
            dy = rnd(*y.shape)
            y.backward(dy)
            cases.append({
                "kind": kind, "pool": list(p), "stride": list(s), "padding": padding,
                "x": t(nhwc(x)), "y": t(nhwc(y)), "dy": t(nhwc(dy)), "dx": t(nhwc(x.grad)),
            })
    return cases


def batch_norm_cases():
    cases = []
    for shape in [(4, 3, 5, 5), (16, 6)]:
        c = shape[1]
        x = (rnd(*shape) * 2 + 0.5).requires_grad_()
        gamma = (rnd(c) + 1.5).requires_grad_()
        beta = rnd(c).requires_grad_()
        y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-3)
        dy = rnd(*y.shape)
        y.backward(dy)
        dims = [0] + list(range(2, len(shape)))
        mean = x.detach().mean(dim=dims)
        var = x.detach().var(dim=dims, unbiased=False)
        moving_mean = 0.99 * torch.zeros(c) + 0.01 * mean  # Keras: momentum weighs the old value
        moving_var = 0.99 * torch.ones(c) + 0.01 * var
        y_eval = F.batch_norm(x.detach(), moving_mean, moving_var, gamma.detach(), beta.detach(),
                              training=False, eps=1e-3)
        to = (lambda a: nhwc(a)) if len(shape) == 4 else (lambda a: a)
        cases.append({
            "x": t(to(x)), "gamma": t(gamma), "beta": t(beta),
            "y_train": t(to(y)), "dy": t(to(dy)), "dx": t(to(x.grad)),
            "dgamma": t(gamma.grad), "dbeta": t(beta.grad),
            "moving_mean": t(moving_mean), "moving_variance": t(moving_var),
            "y_eval": t(to(y_eval)),
        })
    return cases


def keras_cce(p, y):
    q = p / p.sum(-1, keepdim=True)
    return -(y * torch.log(q.clamp(EPS, 1 - EPS))).sum(-1).mean()


def keras_bce(p, y):
    c = p.clamp(EPS, 1 - EPS)
    return -(y * torch.log(c + EPS) + (1 - y) * torch.log(1 - c + EPS)).mean(-1).mean()


def loss_cases():
    cases = []
    z = rnd(5, 4) * 3
    labels = torch.tensor([0, 3, 1, 1, 2])
    onehot = F.one_hot(labels, 4).double()

    def case(name, pred, target, fn):
        pred = pred.detach().clone().requires_grad_()
        loss = fn(pred)
        loss.backward()
        cases.append({"loss": name, "pred": t(pred), "target": t(target),
                      "value": float(loss.detach()), "grad": t(pred.grad)})

    probs = torch.softmax(z, -1)
    case("categorical_crossentropy", probs, onehot, lambda p: keras_cce(p, onehot))
    case("categorical_crossentropy_from_logits", z, onehot, lambda q: F.cross_entropy(q, labels))
    case("sparse_categorical_crossentropy", probs, labels.double(),
         lambda p: keras_cce(p, F.one_hot(labels, 4).double()))
    case("sparse_categorical_crossentropy_from_logits", z, labels.double(),
         lambda q: F.cross_entropy(q, labels))
    case("mean_squared_error", probs, onehot, lambda p: F.mse_loss(p, onehot))
    zb = rnd(6, 2) * 3
    yb = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.2, 0.9], [1.0, 0.0]])
    case("binary_crossentropy", torch.sigmoid(zb), yb, lambda p: keras_bce(p, yb))
    case("binary_crossentropy_from_logits", zb, yb,
         lambda q: F.binary_cross_entropy_with_logits(q, yb))
    return cases


def dense_activation_cases():
    cases = []
    acts = {
        "linear": lambda a: a, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "softmax": lambda a: torch.softmax(a, -1), "leaky_relu": lambda a: F.leaky_relu(a, 0.2),
        "elu": F.elu,
    }
    for name, fn in acts.items():
        x = rnd(4, 6).requires_grad_()
        k = rnd(6, 5).requires_grad_()
        b = rnd(5).requires_grad_()
        y = fn(x @ k + b)
        dy = rnd(*y.shape)
        y.backward(dy)
        cases.append({"activation": name, "x": t(x), "kernel": t(k), "bias": t(b),
                      "y": t(y), "dy": t(dy), "dx": t(x.grad), "dkernel": t(k.grad),
                      "dbias": t(b.grad)})
    return cases


def training_step_cases():
    """Two full training steps (forward, loss, backward, update) of a tiny
    net Conv2D(2, 3x3, relu) -> Flatten -> Dense(3, softmax) with categorical
    cross-entropy, for SGD with momentum and for Adam (Keras's update rules,
    which PyTorch's optimizers reproduce: see the comments)."""
    cases = []
    x = rnd(4, 1, 5, 5)
    labels = torch.tensor([0, 2, 1, 2])
    conv_w0 = rnd(2, 1, 3, 3) * 0.5
    conv_b0 = rnd(2) * 0.1
    dense_w0 = rnd(18, 3) * 0.5  # rows in NHWC-flatten order, as convnet flattens
    dense_b0 = rnd(3) * 0.1
    for name, make in [
        # Keras SGD: v = m v - lr g; w += v. PyTorch: b = m b + g; w -= lr b. Equal for constant lr.
        ("sgd_momentum", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
        # Keras Adam puts eps on sqrt(v) before bias correction; with eps=1e-7 the
        # difference from PyTorch's placement is far below the tolerance.
        ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-7)),
    ]:
        cw = conv_w0.clone().requires_grad_()
        cb = conv_b0.clone().requires_grad_()
        dw = dense_w0.clone().requires_grad_()
        db = dense_b0.clone().requires_grad_()
        opt = make([cw, cb, dw, db])
        losses = []
        for _ in range(2):
            opt.zero_grad()
            h = F.relu(F.conv2d(x, cw, cb))
            h = nhwc(h).reshape(4, -1)
            z = h @ dw + db
            loss = F.cross_entropy(z, labels)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        cases.append({
            "optimizer": name, "x": t(nhwc(x)), "labels": t(labels.double()),
            "conv_kernel": t(conv_w0.permute(2, 3, 1, 0)), "conv_bias": t(conv_b0),
            "dense_kernel": t(dense_w0), "dense_bias": t(dense_b0),
            "losses": losses,
            "conv_kernel_after": t(cw.permute(2, 3, 1, 0)), "conv_bias_after": t(cb),
            "dense_kernel_after": t(dw), "dense_bias_after": t(db),
        })
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, fn in [("conv2d", conv_cases), ("pooling", pool_cases),
                     ("batch_norm", batch_norm_cases), ("losses", loss_cases),
                     ("dense_activations", dense_activation_cases),
                     ("training_steps", training_step_cases)]:
        path = os.path.join(OUT, name + ".json")
        with open(path, "w") as f:
            json.dump({"generator": "tools/golden/gen_golden.py",
                       "torch": torch.__version__, "cases": fn()}, f)
        print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
