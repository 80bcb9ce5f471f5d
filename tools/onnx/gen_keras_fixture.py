#!/usr/bin/env python3
"""An ONNX file written by tf2onnx from a Keras model, for convnet's
importer tests: NHWC input (one channel, which tf2onnx reshapes to NCHW),
conv + ReLU, batch norm (which tf2onnx folds into Mul and Add), max pool, a
residual Add, a strided valid conv, Flatten (Transpose + a Reshape whose
shape is computed with Shape/Gather/Slice/Concat), Dropout, Dense layers
(MatMul + Add), softmax. Random weights, non-zero biases, batch-norm
statistics away from (0, 1).

    python3 tools/onnx/gen_keras_fixture.py crates/onnx/tests/fixtures

Writes keras-tf2onnx.onnx, .input.bin (NCHW f32 LE, as the other fixtures),
.expected.bin (Keras's output) and .json. Needs tensorflow, tf2onnx, onnx.
"""
import json
import pathlib
import sys

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

keras = tf.keras
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "crates/onnx/tests/fixtures")
tf.random.set_seed(0)
rng = np.random.default_rng(1)

inp = keras.Input((28, 28, 1))
x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
x = keras.layers.BatchNormalization()(x)
x = keras.layers.MaxPooling2D(2)(x)
y = keras.layers.Conv2D(8, 3, padding="same")(x)
x = keras.layers.Add()([x, y])
x = keras.layers.Conv2D(12, 3, strides=2, padding="valid", activation="relu")(x)
x = keras.layers.Flatten()(x)
x = keras.layers.Dropout(0.3)(x)
x = keras.layers.Dense(16, activation="relu")(x)
outp = keras.layers.Dense(10, activation="softmax")(x)
model = keras.Model(inp, outp)
for layer in model.layers:
    w = layer.get_weights()
    if isinstance(layer, keras.layers.BatchNormalization):
        c = w[0].shape[0]
        layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.3, 0.3, c),
                           rng.uniform(-0.3, 0.3, c), rng.uniform(0.5, 2.0, c)])
    elif len(w) == 2:
        layer.set_weights([w[0], rng.uniform(-0.2, 0.2, w[1].shape).astype(np.float32)])

x = rng.uniform(0, 1, (2, 28, 28, 1)).astype(np.float32)
y = model.predict(x, verbose=0)
spec = (tf.TensorSpec((None, 28, 28, 1), tf.float32, name="input"),)
proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
name = "keras-tf2onnx"
onnx.save(proto, str(out / f"{name}.onnx"))
x.transpose(0, 3, 1, 2).astype("<f4").tofile(out / f"{name}.input.bin")
y.astype("<f4").tofile(out / f"{name}.expected.bin")
meta = {"input": [2, 1, 28, 28], "output": list(y.shape), "tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__}
(out / f"{name}.json").write_text(json.dumps(meta) + "\n")
print(name, sorted({n.op_type for n in proto.graph.node}))
