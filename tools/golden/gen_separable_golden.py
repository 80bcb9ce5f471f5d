"""Writes crates/nn/tests/golden/separable.json, the fixture that
crates/nn/tests/golden.rs checks SeparableConv2D against: Keras's own
layer (`keras.layers.SeparableConv2D`, TensorFlow backend, float64), its
weights as Keras stores them (`depthwise_kernel [KH, KW, C, M]`,
`pointwise_kernel [1, 1, C*M, F]`, `bias [F]`), the gradients from
`tf.GradientTape` of `sum(y * dy)`.

Run from the repository root (needs `pip install tensorflow keras`):

    python3 tools/golden/gen_separable_golden.py
"""

import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "nn", "tests", "golden")
rng = np.random.default_rng(0)


def rnd(*shape):
    # f32-rounded values, computed on in f64.
    return rng.uniform(-1, 1, shape).astype(np.float32).astype(np.float64)


def t(x):
    x = np.asarray(x)
    return {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1)]}


def cases():
    out = []
    specs = [
        # (n, h, w, c, filters, kernel, strides, multiplier, padding, activation)
        (2, 7, 7, 3, 4, 3, 1, 1, "same", "linear"),
        (2, 7, 6, 3, 5, 3, 1, 1, "valid", "relu"),
        (2, 8, 8, 4, 6, 3, 2, 2, "same", "linear"),  # multiplier 2, stride 2
        (1, 9, 9, 2, 3, 5, 2, 1, "same", "tanh"),    # 5x5 stride 2, odd size
    ]
    for n, h, w, c, f, k, s, m, padding, act in specs:
        layer = keras.layers.SeparableConv2D(
            f, k, strides=s, padding=padding, depth_multiplier=m, activation=act, dtype="float64"
        )
        x = tf.constant(rnd(n, h, w, c))
        layer.build(x.shape)
        dk, pk, b = rnd(k, k, c, m), rnd(1, 1, c * m, f), rnd(f)
        layer.set_weights([dk, pk, b])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            dy = tf.constant(rnd(*y.shape))
            loss = tf.reduce_sum(y * dy)
        dx, ddk, dpk, db = tape.gradient(loss, [x, *layer.trainable_weights])
        out.append({
            "filters": f, "kernel": k, "strides": s, "multiplier": m,
            "padding": padding, "activation": act,
            "x": t(x), "depthwise_kernel": t(dk), "pointwise_kernel": t(pk), "bias": t(b),
            "y": t(y), "dy": t(dy), "dx": t(dx),
            "ddepthwise_kernel": t(ddk), "dpointwise_kernel": t(dpk), "dbias": t(db),
        })
    return out


def main():
    path = os.path.join(OUT, "separable.json")
    with open(path, "w") as fh:
        json.dump({"generator": "tools/golden/gen_separable_golden.py",
                   "keras": keras.__version__, "cases": cases()}, fh)
    print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
