"""Peers for `convnet bench`: the same nets in PyTorch eager (NCHW and
channels_last), when installed Keras 3 on TensorFlow, and for inference
ONNX Runtime (on the nets as `convnet bench --export-onnx` writes them), on
synthetic data, with the same thread count; and a comparison that runs ours
and theirs alternately in one run and prints the ratios. A peer that is not
installed is left out of the table.

    pip install torch onnxruntime   # (tensorflow-cpu keras for the Keras column)
    cargo build --release -p convnet-cli
    python3 tools/bench_peers.py compare --threads 2 --seconds 5 --rounds 2

Each configuration runs in its own process so that its peak resident
memory (ru_maxrss) is its own. Images/s is the steady state after 3
warm-up steps.
"""

import argparse
import os
import resource
import subprocess
import sys
import time

CONFIGS = [("m1", "train", 128), ("m1", "train", 32), ("m1", "infer", 256),
           ("m2", "train", 128), ("m2", "infer", 256), ("m3", "train", 32), ("m3", "infer", 64),
           ("resnet20", "train", 128), ("resnet20", "infer", 256), ("vgg64", "train", 64), ("vgg64", "infer", 128)]
# vgg64's stages: (filters, convs) at 64, 32, 16 and 8 pixels, each conv -> ReLU -> BN, then 2x2 max pool.
VGG64 = [32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVNET = os.path.join(ROOT, "target", "release", "convnet")


def torch_net(name):
    import torch.nn as nn
    import torch.nn.functional as F

    class SamePad(nn.Module):
        """TensorFlow 'same' padding for a stride-2 5x5 conv (odd pixel bottom/right)."""

        def __init__(self, n, k, s):
            super().__init__()
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            self.pad = (total // 2, total - total // 2, total // 2, total - total // 2)

        def forward(self, x):
            return F.pad(x, self.pad)

    R = nn.ReLU
    if name == "m1":
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), R(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5, padding=2), R(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(3136, 128), R(), nn.Dropout(0.4), nn.Linear(128, 10)), (1, 28, 28), 10
    if name == "m2":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), R(), nn.BatchNorm2d(32), nn.Conv2d(32, 32, 3), R(), nn.BatchNorm2d(32),
            SamePad(24, 5, 2), nn.Conv2d(32, 32, 5, stride=2), R(), nn.BatchNorm2d(32), nn.Dropout(0.4),
            nn.Conv2d(32, 64, 3), R(), nn.BatchNorm2d(64), nn.Conv2d(64, 64, 3), R(), nn.BatchNorm2d(64),
            SamePad(8, 5, 2), nn.Conv2d(64, 64, 5, stride=2), R(), nn.BatchNorm2d(64), nn.Dropout(0.4),
            nn.Conv2d(64, 128, 4), R(), nn.BatchNorm2d(128), nn.Flatten(), nn.Dropout(0.4),
            nn.Linear(128, 10)), (1, 28, 28), 10
    if name == "m3":
        def block(cin, cout, n):
            layers = []
            for i in range(n):
                layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3), R()]
            return layers + [nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.Dropout(0.2)]
        return nn.Sequential(*block(3, 32, 2), *block(32, 32, 2), *block(32, 64, 3), nn.Flatten(),
                             nn.Linear(11 * 11 * 64, 64), R(), nn.Dropout(0.2), nn.Linear(64, 1)), (3, 128, 128), 1
    if name == "resnet20":
        class Block(nn.Module):
            """He et al.'s basic block, projection shortcut (1x1 conv + BN) where the shape changes."""

            def __init__(self, cin, cout, stride):
                super().__init__()
                self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
                self.b1 = nn.BatchNorm2d(cout)
                self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
                self.b2 = nn.BatchNorm2d(cout)
                self.proj = None
                if stride != 1 or cin != cout:
                    self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

            def forward(self, x):
                out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
                return F.relu(out + (x if self.proj is None else self.proj(x)))

        layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), R()]
        cin = 16
        for stage, width in enumerate([16, 32, 64]):
            for i in range(3):
                layers.append(Block(cin, width, 2 if stage > 0 and i == 0 else 1))
                cin = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
        return nn.Sequential(*layers), (3, 32, 32), 10
    if name == "vgg64":
        layers, cin = [], 3
        for v in VGG64:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), R(), nn.BatchNorm2d(v)]
                cin = v
        layers += [nn.Flatten(), nn.Linear(256 * 4 * 4, 256), R(), nn.Dropout(0.5), nn.Linear(256, 10)]
        return nn.Sequential(*layers), (3, 64, 64), 10
    raise SystemExit(f"unknown net {name}")


def keras_resnet20():
    import keras
    from keras import layers as L
    x = inp = keras.Input((32, 32, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(x)))
    cin = 16
    for stage, width in enumerate([16, 32, 64]):
        for i in range(3):
            s = 2 if stage > 0 and i == 0 else 1
            h = L.ReLU()(L.BatchNormalization()(L.Conv2D(width, 3, strides=s, padding="same", use_bias=False)(x)))
            h = L.BatchNormalization()(L.Conv2D(width, 3, padding="same", use_bias=False)(h))
            sc = x
            if s != 1 or cin != width:
                sc = L.BatchNormalization()(L.Conv2D(width, 1, strides=s, use_bias=False)(x))
            x = L.ReLU()(L.Add()([h, sc]))
            cin = width
    x = L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, x)


def run_torch(name, mode, batch, seconds, threads, channels_last, bf16=False):
    """`bf16`: the step under `torch.autocast("cpu", dtype=torch.bfloat16)`, PyTorch's one line
    of mixed precision (fp32 weights, bf16 operands where autocast chooses them)."""
    import contextlib
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net, shape, classes = torch_net(name)
    x = torch.rand(batch, *shape)
    if classes == 1:
        y = (torch.arange(batch) % 2).float().unsqueeze(1)
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        y = torch.arange(batch) % classes
        loss_fn = torch.nn.CrossEntropyLoss()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step():
        with cast():
            plain_step()

    def plain_step():
        if mode == "train":
            net.train()
            opt.zero_grad()
            loss_fn(net(x), y).backward()
            opt.step()
        else:
            net.eval()
            with torch.no_grad():
                net(x)

    for _ in range(3):
        step()
    start, steps = time.perf_counter(), 0
    while steps < 5 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def run_keras(name, mode, batch, seconds, threads, bf16=False):
    """`bf16`: Keras's one policy of mixed precision, `mixed_bfloat16` (bf16 compute, fp32
    variables), set before the model is built."""
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    import numpy as np
    import keras
    from keras import layers as L
    if bf16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if name == "m1":
        model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 5, padding="same", activation="relu"),
                                  L.MaxPooling2D(2), L.Conv2D(64, 5, padding="same", activation="relu"),
                                  L.MaxPooling2D(2), L.Flatten(), L.Dense(128, activation="relu"),
                                  L.Dropout(0.4), L.Dense(10, activation="softmax")])
        shape, classes = (28, 28, 1), 10
    elif name == "m2":
        c = lambda f, k, **kw: L.Conv2D(f, k, activation="relu", **kw)
        model = keras.Sequential([keras.Input((28, 28, 1)), c(32, 3), L.BatchNormalization(), c(32, 3),
                                  L.BatchNormalization(), c(32, 5, strides=2, padding="same"), L.BatchNormalization(),
                                  L.Dropout(0.4), c(64, 3), L.BatchNormalization(), c(64, 3), L.BatchNormalization(),
                                  c(64, 5, strides=2, padding="same"), L.BatchNormalization(), L.Dropout(0.4),
                                  c(128, 4), L.BatchNormalization(), L.Flatten(), L.Dropout(0.4),
                                  L.Dense(10, activation="softmax")])
        shape, classes = (28, 28, 1), 10
    elif name == "resnet20":
        model, shape, classes = keras_resnet20(), (32, 32, 3), 10
    elif name == "vgg64":
        body = [L.MaxPooling2D(2) if v == "M" else L.Conv2D(v, 3, padding="same", activation="relu") for v in VGG64]
        body = [y for v in body for y in ([v] if isinstance(v, L.MaxPooling2D) else [v, L.BatchNormalization()])]
        model = keras.Sequential([keras.Input((64, 64, 3)), *body, L.Flatten(), L.Dense(256, activation="relu"),
                                  L.Dropout(0.5), L.Dense(10, activation="softmax")])
        shape, classes = (64, 64, 3), 10
    else:
        c = lambda f: L.Conv2D(f, 3, activation="relu")
        blk = lambda f, n: [c(f) for _ in range(n)] + [L.MaxPooling2D(2), L.BatchNormalization(), L.Dropout(0.2)]
        model = keras.Sequential([keras.Input((128, 128, 3)), *blk(32, 2), *blk(32, 2), *blk(64, 3), L.Flatten(),
                                  L.Dense(64, activation="relu"), L.Dropout(0.2), L.Dense(1, activation="sigmoid")])
        shape, classes = (128, 128, 3), 1
    loss = "binary_crossentropy" if classes == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss)
    x = np.random.rand(batch, *shape).astype("float32")
    y = (np.arange(batch) % max(classes, 2)).astype("float32" if classes == 1 else "int32")
    step = (lambda: model.train_on_batch(x, y)) if mode == "train" else (lambda: model.predict_on_batch(x))
    for _ in range(3):
        step()
    start, steps = time.perf_counter(), 0
    while steps < 5 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def run_ort(name, batch, seconds, threads, onnx_dir):
    """Inference in ONNX Runtime on the net exported by `convnet bench --export-onnx` (the same
    layers and weights as ours, NCHW input), with ONNX Runtime's default graph optimizations
    (ORT_ENABLE_ALL: batch norm folded into convolutions, activations fused, NCHWc layouts)."""
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.path.join(onnx_dir, f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.rand(batch, *inp.shape[1:]).astype("float32")
    step = lambda: sess.run(None, {inp.name: x})
    for _ in range(3):
        step()
    start, steps = time.perf_counter(), 0
    while steps < 5 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def ort_versions():
    import onnxruntime as ort
    import numpy as np
    return (f"ONNX Runtime {ort.__version__} (numpy {np.__version__}), CPUExecutionProvider, "
            "ORT_ENABLE_ALL, sequential, intra-op threads = --threads; models from "
            "`convnet bench --export-onnx` (opset 13, NCHW)")


def child(args):
    if args.peer == "ort":
        ips = run_ort(args.net, args.batch, args.seconds, args.threads, args.onnx_dir)
    elif args.peer == "torch":
        ips = run_torch(args.net, args.mode, args.batch, args.seconds, args.threads, args.channels_last,
                        args.precision == "bf16")
    else:
        ips = run_keras(args.net, args.mode, args.batch, args.seconds, args.threads, args.precision == "bf16")
    print(f"RESULT {ips} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}")


def spawn(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            v = [float(t) for t in line.split()[1:]]
            return v[0], v[-1]
    sys.stderr.write(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}\n")
    return None


def ours(net, mode, batch, seconds, threads, precision="fp32"):
    env = dict(os.environ, CONVNET_BENCH_CHILD="1")
    r = spawn([CONVNET, "bench", "--config", f"{net}:{mode}:{batch}", "--seconds", str(seconds),
               "--threads", str(threads), "--precision", precision], env)
    if r is None:
        return None
    return r  # (images/s, peak MiB); convnet prints (ips, gflops, mib): spawn keeps first and last


def theirs(peer, net, mode, batch, seconds, threads, channels_last=False, onnx_dir=None, precision="fp32"):
    cmd = [sys.executable, os.path.abspath(__file__), "child", "--peer", peer, "--net", net, "--mode", mode,
           "--batch", str(batch), "--seconds", str(seconds), "--threads", str(threads), "--precision", precision]
    if channels_last:
        cmd.append("--channels-last")
    if onnx_dir:
        cmd += ["--onnx-dir", onnx_dir]
    return spawn(cmd)


def have(modules):
    return subprocess.run([sys.executable, "-c", f"import {modules}"], capture_output=True).returncode == 0


def compare(args):
    bf16 = args.precision == "bf16"
    # bf16: PyTorch under autocast and Keras under mixed_bfloat16 (ONNX Runtime has no bf16 CPU kernels).
    have_keras = have("keras, tensorflow")
    have_torch = have("torch")
    have_ort = have("onnxruntime, numpy") and not bf16
    configs = CONFIGS if not args.config else [(c.split(":")[0], c.split(":")[1], int(c.split(":")[2])) for c in args.config]
    print(f"threads {args.threads}, {args.seconds}s per measurement, best of {args.rounds} alternating rounds, "
          f"precision {args.precision}" + (" (convnet --precision bf16; torch under autocast bf16; keras mixed_bfloat16)" if bf16 else ""))
    onnx_dir = None
    if have_ort and any(m == "infer" for _, m, _ in configs):
        import tempfile
        onnx_dir = tempfile.mkdtemp(prefix="convnet-onnx-")
        nets = sorted({n for n, m, _ in configs if m == "infer"})
        subprocess.run([CONVNET, "bench", "--export-onnx", onnx_dir] + [a for n in nets for a in ("--config", f"{n}:infer:1")],
                       check=True, capture_output=True)
        print(ort_versions())
    peers = ([("nchw", "torch NCHW", {"peer": "torch"}), ("cl", "torch CL", {"peer": "torch", "channels_last": True})]
             if have_torch else [])
    if have_keras:
        peers.append(("keras", "keras/tf", {"peer": "keras"}))
    hdr = f"{'config':<20}{'convnet':>10}" + "".join(f"{title:>12}" for _, title, _ in peers)
    hdr += f"{'ratio':>8}"
    if onnx_dir:
        hdr += f"{'ORT fp32':>10}{'vs ORT':>8}"
    hdr += f"{'MiB ours':>10}{'MiB peer':>10}{'mem ratio':>10}"
    print(hdr)
    for net, mode, batch in configs:
        best = {}
        for _ in range(args.rounds):
            runs = [("ours", lambda: ours(net, mode, batch, args.seconds, args.threads, args.precision))]
            runs += [(key, lambda kw=kw: theirs(kw["peer"], net, mode, batch, args.seconds, args.threads,
                                                 kw.get("channels_last", False), precision=args.precision))
                     for key, _, kw in peers]
            if onnx_dir and mode == "infer":
                runs.append(("ort", lambda: theirs("ort", net, mode, batch, args.seconds, args.threads, onnx_dir=onnx_dir)))
            for key, fn in runs:
                r = fn()
                if r and (key not in best or r[0] > best[key][0]):
                    best[key] = r
        mine = best["ours"]
        line = f"{net}:{mode}:{batch}".ljust(20) + f"{mine[0]:>10.1f}"
        line += "".join(f"{best.get(k, (0,))[0]:>12.1f}" for k, _, _ in peers)
        rivals = [best[k] for k, _, _ in peers if k in best]
        line += f"{mine[0] / max(r[0] for r in rivals):>8.2f}" if rivals else f"{'-':>8}"
        if onnx_dir:
            o = best.get("ort")
            line += f"{o[0]:>10.1f}{mine[0] / o[0]:>8.2f}" if o else f"{'-':>10}{'-':>8}"
            if o:
                rivals.append(o)
        peer_mem = min((r[1] for r in rivals), default=None)
        line += f"{mine[1]:>10.0f}"
        line += f"{peer_mem:>10.0f}{mine[1] / peer_mem:>10.2f}" if peer_mem else f"{'-':>10}{'-':>10}"
        print(line, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("child")
    c.add_argument("--peer", choices=["torch", "keras", "ort"], required=True)
    c.add_argument("--onnx-dir")
    c.add_argument("--net", required=True)
    c.add_argument("--mode", required=True)
    c.add_argument("--batch", type=int, required=True)
    c.add_argument("--seconds", type=float, default=5)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--channels-last", action="store_true")
    c.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    k = sub.add_parser("compare")
    k.add_argument("--threads", type=int, default=2)
    k.add_argument("--seconds", type=float, default=5)
    k.add_argument("--rounds", type=int, default=2)
    k.add_argument("--config", action="append", default=[])
    k.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: convnet --precision bf16 against PyTorch under autocast and Keras under mixed_bfloat16")
    args = p.parse_args()
    child(args) if args.cmd == "child" else compare(args)


if __name__ == "__main__":
    main()
