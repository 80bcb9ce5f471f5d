#!/usr/bin/env python3
"""Keras's own defaults, read from Keras itself, for convnet's tests: every
default that convnet mirrors (optimizers, batch norm, convolution and dense
layers, pooling, initializers) as Keras's get_config() gives it, so that
changing one of convnet's (Adam's beta_2 from 0.999 to 0.99, say) fails
crates/nn/tests/keras_defaults.rs.

    pip install keras jax   # any Keras 3 backend; the script sets jax if none is chosen
    python3 tools/golden/gen_keras_defaults.py
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "nn", "tests", "golden",
                   "keras_defaults.json")

OPT_KEYS = ("learning_rate", "momentum", "nesterov", "beta_1", "beta_2", "epsilon",
            "weight_decay", "rho")


def init_name(cfg):
    return cfg["class_name"] if isinstance(cfg, dict) else cfg


def layer(cfg, keys):
    out = {}
    for k in keys:
        v = cfg[k]
        if k.endswith("initializer"):
            v = init_name(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


optimizers = {}
for name, opt in [("sgd", keras.optimizers.SGD()), ("adam", keras.optimizers.Adam()),
                  ("adamw", keras.optimizers.AdamW()), ("rmsprop", keras.optimizers.RMSprop())]:
    c = opt.get_config()
    optimizers[name] = {k: c[k] for k in OPT_KEYS if k in c}

bn = keras.layers.BatchNormalization().get_config()
conv = keras.layers.Conv2D(4, 3).get_config()
dense = keras.layers.Dense(4).get_config()
pool = keras.layers.MaxPooling2D().get_config()
avg = keras.layers.AveragePooling2D(pool_size=2).get_config()  # pool_size has no default
fixture = {
    "keras_version": keras.__version__,
    "optimizers": optimizers,
    "batch_normalization": layer(bn, ["momentum", "epsilon", "center", "scale",
                                      "beta_initializer", "gamma_initializer",
                                      "moving_mean_initializer",
                                      "moving_variance_initializer"]),
    "conv2d": layer(conv, ["strides", "padding", "dilation_rate", "activation", "use_bias",
                           "kernel_initializer", "bias_initializer"]),
    "dense": layer(dense, ["activation", "use_bias", "kernel_initializer", "bias_initializer"]),
    "max_pooling2d": layer(pool, ["pool_size", "strides", "padding"]),
    "average_pooling2d": layer(avg, ["strides", "padding"]),
}
with open(OUT, "w") as f:
    json.dump(fixture, f, indent=1, sort_keys=True)
    f.write("\n")
print("wrote", OUT)
