#!/usr/bin/env python3
"""Optimizer updates from Keras itself, step by step, for convnet's tests:
SGD with momentum, Nesterov SGD, Adam, AdamW and RMSprop applied for 6 steps
to one weight vector with a fixed sequence of gradients, in two regimes:

  normal  gradients of size 0.01-1
  tiny    gradients of size 1e-9-1e-7, where the place of epsilon decides
          the update: Keras adds it to sqrt(v) before the bias correction,
          PyTorch to sqrt(v_hat) after it. For Adam the PyTorch result is
          stored too (PyTorch's documented rule, in float32), so the test can show that
          the case tells them apart.

The test (crates/nn/tests/optimizers.rs) compares every step's change of
every weight with Keras's change, relative to the change, so that a wrong
beta_2 (0.99 for 0.999) or epsilon placement fails.

    python3 tools/golden/gen_optimizer_golden.py   # needs tensorflow (Keras 3)
"""
import json
import os

import numpy as np
import keras

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "nn", "tests", "golden")
STEPS = 6
rng = np.random.default_rng(3)

CONFIGS = [
    ("sgd_momentum", {"learning_rate": 0.1, "momentum": 0.9},
     lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)),
    ("sgd_nesterov", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
     lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("adam", {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
     lambda: keras.optimizers.Adam(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.004, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
     lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7)),
    ("rmsprop", {"learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-7},
     lambda: keras.optimizers.RMSprop(learning_rate=0.001, rho=0.9, epsilon=1e-7)),
]


def run_keras(make, w0, grads):
    var = keras.Variable(w0.astype(np.float32))
    opt = make()
    out = []
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g.astype(np.float32)), var)])
        out.append(np.array(var.numpy(), dtype=np.float64).tolist())
    return out


def run_torch_adam(w0, grads, lr, b1, b2, eps):
    """PyTorch's Adam as its documentation states it, in float32 (torch and
    TensorFlow cannot share one process: their LLVMs clash)."""
    f = np.float32
    w, m, v = w0.astype(f), np.zeros(8, f), np.zeros(8, f)
    out = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(f)
        m = f(b1) * m + f(1 - b1) * g
        v = f(b2) * v + f(1 - b2) * g * g
        m_hat = m / f(1 - b1 ** t)
        v_hat = v / f(1 - b2 ** t)
        w = w - f(lr) * m_hat / (np.sqrt(v_hat) + f(eps))
        out.append(w.astype(np.float64).tolist())
    return out


def main():
    cases = []
    w0 = rng.uniform(-1, 1, 8)
    for regime, scale in [("normal", 1.0), ("tiny", 1e-7)]:
        grads = [rng.uniform(-1, 1, 8) * scale * rng.uniform(0.01, 1.0, 8) for _ in range(STEPS)]
        for name, cfg, make in CONFIGS:
            case = {"optimizer": name, "config": cfg, "regime": regime, "w0": w0.tolist(),
                    "grads": [g.tolist() for g in grads], "keras": run_keras(make, w0, grads)}
            if name == "adam":
                case["torch"] = run_torch_adam(w0, grads, 0.01, 0.9, 0.999, 1e-7)
            cases.append(case)
    path = os.path.join(OUT, "optimizers.json")
    with open(path, "w") as f:
        json.dump({"generator": "tools/golden/gen_optimizer_golden.py", "keras": keras.__version__,
                   "cases": cases}, f)
    print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
