"""One training epoch from Python: convnet's package vs its CLI (the cost of the Python layer)
and vs Keras 3 (TensorFlow) and PyTorch, on the same machine, in one run, alternating rounds.

    pip install .                          # the package; torch and tensorflow-cpu for the peers
    cargo build --release -p convnet-cli
    python3 tools/bench_python.py [--rounds 3] [--photos ../shared/data/cats-vs-dogs-small]

Rows:
- M1 (`32C5-P2-64C5-P2-128-D0.4-10`) on the 60,000 MNIST training images, batch 128, Adam.
  CLI: `convnet train` on the bundled MNIST (bytes converted per batch); Python: `fit(x, y)`
  on the float32 array (the call's time; x is read in place); Keras: `fit` on the same
  arrays; PyTorch: the usual loop over shuffled index batches of the same tensors.
- The tutorial's seed classifier (128x128x3, seven 3x3 convolutions, batch norm, dropout,
  sigmoid) on a folder of photos, batch 32. CLI: `--data folder:DIR`; Python:
  `flow_from_directory` (the same loader); both decode and resize each photo in the epoch
  (the cache holds them after the first round; every round after is warm, for both).
  Keras and PyTorch train on the photos already decoded into an array (their best case).
Each framework uses 2 threads (`--threads`), each Python peer in a process of its own (TensorFlow and
PyTorch in one process abort: both bundle LLVM). Seconds are the fit call's wall time (the CLI's
own "Trained 1 epoch(s) in Xs" line, which excludes its start-up and data loading); for the
package both the fit call and the same span as the CLI's (the pass alone, which leaves out
listing the folder) are printed; the figure per row is the best of the rounds.
"""

import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVNET = os.path.join(ROOT, "target", "release", "convnet")
M1 = "32C5-P2-64C5-P2-128-D0.4-10"


def cpu_name():
    with open("/proc/cpuinfo") as f:
        info = f.read()
    name = re.search(r"model name\s*:\s*(.*)", info).group(1)
    fam = re.search(r"cpu family\s*:\s*(\d+)", info).group(1)
    model = re.search(r"model\s*:\s*(\d+)", info).group(1)
    flags = re.search(r"flags\s*:\s*(.*)", info).group(1).split()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} (family {fam}, model {model}; {' '.join(simd)})"


def cli_epoch(args, threads):
    out = subprocess.run([CONVNET, "train", *args, "--epochs", "1", "--threads", str(threads),
                          "--validation-split", "0", "--schedule", "constant", "--out", "/tmp/bench-python-cli"],
                         check=True, capture_output=True, text=True)
    return float(re.search(r"Trained 1 epoch\(s\) in ([0-9.]+)s", out.stdout).group(1))


def convnet_m1(x, y):
    import convnet

    m = convnet.build(M1, seed=1)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t = time.perf_counter()
    m.fit(x, y, batch_size=128, epochs=1, verbose=0)
    return time.perf_counter() - t, m._fit_seconds


def keras_m1(x, y):
    import keras
    from keras import layers as L

    m = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 5, padding="same", activation="relu"),
                          L.MaxPooling2D(2), L.Conv2D(64, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
                          L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.4),
                          L.Dense(10, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t = time.perf_counter()
    m.fit(x, y, batch_size=128, epochs=1, verbose=0)
    return time.perf_counter() - t


def torch_fit(net, x, y, batch, binary):
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y.astype(np.float32 if binary else np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.BCEWithLogitsLoss() if binary else torch.nn.CrossEntropyLoss()
    t = time.perf_counter()
    net.train()
    for idx in torch.randperm(len(xt)).split(batch):
        opt.zero_grad()
        out = net(xt[idx])
        loss = loss_fn(out.squeeze(1), yt[idx]) if binary else loss_fn(out, yt[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def torch_m1(x, y):
    import torch.nn as nn

    net = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.4), nn.Linear(128, 10))
    return torch_fit(net, x, y, 128, False)


def seed_layers(L):
    """The tutorial's classifier in Keras's (or our) layers module."""
    c = lambda f, **kw: L.Conv2D(f, (3, 3), activation="relu", **kw)
    tail = lambda: [L.MaxPooling2D(pool_size=(2, 2)), L.BatchNormalization(), L.Dropout(0.2)]
    return [c(32, input_shape=(128, 128, 3)), c(32), *tail(), c(32), c(32), *tail(), c(64), c(64), c(64), *tail(),
            L.Flatten(), L.Dense(units=64, activation="relu"), L.Dropout(0.2), L.Dense(units=1, activation="sigmoid")]


def convnet_seed(folder):
    from convnet.keras import layers as L
    from convnet.keras.models import Sequential
    from convnet.keras.preprocessing.image import ImageDataGenerator

    m = Sequential(seed_layers(L), seed=1)
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    flow = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(folder, target_size=(128, 128), batch_size=32,
                                                                     class_mode="binary")
    t = time.perf_counter()
    m.fit(flow, epochs=1, verbose=0)
    return time.perf_counter() - t, m._fit_seconds


def keras_seed(x, y):
    import keras
    from keras import layers as L

    layers = seed_layers(L)
    layers[0] = L.Conv2D(32, (3, 3), activation="relu")
    m = keras.Sequential([keras.Input((128, 128, 3)), *layers])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    t = time.perf_counter()
    m.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return time.perf_counter() - t


def torch_seed(x, y):
    import torch.nn as nn

    def block(cin, cout, n):
        out = []
        for i in range(n):
            out += [nn.Conv2d(cin if i == 0 else cout, cout, 3), nn.ReLU()]
        return out + [nn.MaxPool2d(2), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.Dropout(0.2)]

    net = nn.Sequential(*block(3, 32, 2), *block(32, 32, 2), *block(32, 64, 3), nn.Flatten(),
                        nn.Linear(11 * 11 * 64, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 1))
    return torch_fit(net, x, y, 32, True)


def photos(folder):
    """The folder's photos as Keras's loader gives them (bilinear resize to 128x128, / 255)."""
    from PIL import Image

    xs, ys = [], []
    for label, cls in enumerate(sorted(os.listdir(folder))):
        d = os.path.join(folder, cls)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            img = Image.open(os.path.join(d, f)).convert("RGB").resize((128, 128), Image.BILINEAR)
            xs.append(np.asarray(img, dtype=np.float32) / 255)
            ys.append(label)
    return np.stack(xs), np.array(ys, dtype=np.float32)


def setup_threads(threads, peer):
    """Every framework on `threads` threads (TensorFlow's before it starts)."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    if peer == "PyTorch":
        import torch

        torch.set_num_threads(threads)
    elif peer.startswith("Keras"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def mnist_arrays():
    from convnet.keras.datasets import mnist

    (x, y), _ = mnist.load_data()
    return x.reshape(-1, 28, 28, 1).astype("float32") / 255, y.astype("float32")


def worker(row, peer, a):
    """One epoch of `peer` on `row`, in this process (its own: TensorFlow and PyTorch each
    bundle LLVM, and the two in one process abort); prints the seconds."""
    setup_threads(a.threads, peer)
    if row == "m1":
        x, y = mnist_arrays()
        fn = {"convnet Python": convnet_m1, "Keras 3 (TensorFlow)": keras_m1, "PyTorch": torch_m1}[peer]
        seconds = fn(x, y)
    elif peer == "convnet Python":
        seconds = convnet_seed(a.photos)
    else:
        px, py = photos(a.photos)
        seconds = {"Keras 3 (TensorFlow)": keras_seed, "PyTorch": torch_seed}[peer](px, py)
    if isinstance(seconds, tuple):  # convnet Python: the call, and the pass alone (the CLI's span)
        print(f"PASS {seconds[1]}")
        seconds = seconds[0]
    print(f"SECONDS {seconds}")


def versions():
    out = []
    for mod in ("torch", "keras", "tensorflow"):
        try:
            v = subprocess.run([sys.executable, "-c", f"import {mod}; print({mod}.__version__)"],
                               capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            out.append(f"{mod} {v}")
        except subprocess.CalledProcessError:
            out.append(f"{mod} not installed")
    return ", ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="comma-separated names of the columns to run (e.g. 'convnet CLI,convnet Python')")
    ap.add_argument("--rows", default="m1,seed", help="comma-separated rows to run: m1, seed")
    ap.add_argument("--photos", default=os.path.join(ROOT, "..", "shared", "data", "cats-vs-dogs-small"))
    ap.add_argument("--worker", nargs=2, metavar=("ROW", "PEER"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker[0], a.worker[1], a)
    n_photos = sum(len(os.listdir(os.path.join(a.photos, c))) for c in os.listdir(a.photos)
                   if os.path.isdir(os.path.join(a.photos, c)))
    print(f"CPU: {cpu_name()}, {a.threads} threads; {versions()}; {n_photos} photos from {a.photos}; "
          "each Python peer in its own process", flush=True)

    def run_worker(row, peer):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", row, peer,
                              "--threads", str(a.threads), "--photos", a.photos],
                             capture_output=True, text=True)
        found = re.search(r"SECONDS ([0-9.]+)", out.stdout)
        if not found:
            raise RuntimeError(f"{peer} on {row} failed:\n{out.stderr[-2000:]}")
        passed = re.search(r"PASS ([0-9.]+)", out.stdout)
        if passed:
            passes.setdefault(row, []).append(float(passed.group(1)))
        return float(found.group(1))

    passes = {}

    seed_cli = ["--data", f"folder:{a.photos}", "--input", "128x128x3", "--model",
                "32C3v-32C3v-P2-BN-D0.2-32C3v-32C3v-P2-BN-D0.2-64C3v-64C3v-64C3v-P2-BN-D0.2-64-D0.2-1",
                "--batch-size", "32", "--seed", "1", "--loss", "binary_crossentropy"]
    rows = {
        ("m1", "M1 MNIST (60,000), batch 128"): ["--model", M1, "--batch-size", "128", "--seed", "1"],
        ("seed", f"seed classifier, {n_photos} photos 128x128x3, batch 32"): seed_cli,
    }
    names = ["convnet CLI", "convnet Python", "Keras 3 (TensorFlow)", "PyTorch"]
    if a.only:
        names = [n for n in names if n in a.only.split(",")]
    for (key, row), cli_args in rows.items():
        if key not in a.rows.split(","):
            continue
        times = {name: [] for name in names}
        for r in range(a.rounds):
            for name in names:
                s = cli_epoch(cli_args, a.threads) if name == "convnet CLI" else run_worker(key, name)
                times[name].append(s)
                print(f"  {row} | round {r + 1} | {name}: {s:.2f} s", flush=True)
        best = {k: min(v) for k, v in times.items()}
        ref = best.get("convnet Python") or best[names[0]]
        print(f"\n{row}: best of {a.rounds} rounds, seconds for one epoch (ratio to convnet Python)")
        for name, s in best.items():
            print(f"  {name:22s} {s:8.2f} s   {s / ref:.3f}x")
        if "convnet CLI" in best and "convnet Python" in best:
            print(f"  Python layer over the CLI: {100 * (best['convnet Python'] / best['convnet CLI'] - 1):+.1f} %"
                  " (the fit call against the CLI's pass)")
            p = min(passes[key])
            print(f"  the same span in both (the pass alone): Python {p:.2f} s, "
                  f"{100 * (p / best['convnet CLI'] - 1):+.1f} % over the CLI")
        print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
