#!/usr/bin/env python3
"""torchvision's classification nets through both of PyTorch's ONNX
exporters, as a new user would bring them in, for `convnet import`.

    python3 tools/onnx/try_torchvision.py target/onnx-zoo [--convnet BIN] [NAME ...]
    CONVNET_ONNX_FULL=target/onnx-zoo cargo test --release -p convnet-onnx -- --ignored

For each net (untrained weights: no download; batch-norm statistics moved
away from (0, 1)) and each exporter (TorchScript with batch norms kept,
`-ts`; the default dynamo exporter, `-dynamo`), it writes NAME.onnx, the
input, PyTorch's output and NAME.json as `gen_torch_fixtures.py` does, then
runs `convnet import` on it and prints one line per file: imported (with
onnxruntime's distance to PyTorch's output on the same file), or the
importer's error. The ignored test then runs every file that imports and
compares it with PyTorch's output (1e-4 of the largest output, at least 1e-4). Needs
torch, torchvision and onnxscript (the dynamo exporter).
"""
import argparse
import pathlib
import shutil
import subprocess
import sys
import warnings

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from gen_torch_fixtures import write  # noqa: E402

NETS = [
    "resnet50",
    "squeezenet1_1",
    "densenet121",
    "alexnet",
    "vgg11",
    "googlenet",
    "mobilenet_v2",
    "mnasnet1_0",
    "shufflenet_v2_x1_0",
    "regnet_x_400mf",
    "efficientnet_b0",
]


def build(name: str) -> torch.nn.Module:
    import torchvision

    kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    return getattr(torchvision.models, name)(weights=None, **kw).eval()


def ort_diff(out: pathlib.Path, file: str) -> float:
    """Max |onnxruntime - PyTorch| on the written input: the ignored test
    compares convnet with PyTorch's output, so this ties it to onnxruntime."""
    import json

    import numpy as np
    import onnxruntime as ort

    meta = json.loads((out / f"{file}.json").read_text())
    x = np.fromfile(out / f"{file}.input.bin", dtype="<f4").reshape(meta["input"])
    want = np.fromfile(out / f"{file}.expected.bin", dtype="<f4")
    s = ort.InferenceSession(str(out / f"{file}.onnx"), providers=["CPUExecutionProvider"])
    got = s.run(None, {s.get_inputs()[0].name: x})[0].reshape(-1)
    return float(np.abs(got - want).max())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("names", nargs="*", default=NETS, help="nets to try (before --convnet)")
    ap.add_argument("--convnet", default="target/release/convnet")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in a.names:
        for exporter, dynamo in [("ts", False), ("dynamo", True)]:
            file = f"{name}-{exporter}"
            torch.manual_seed(0)
            try:
                write(out, file, build(name), (1, 3, 224, 224), dynamo)
            except Exception as e:  # an exporter's own failure: reported, not ours
                print(f"{file:28} export failed: {str(e).splitlines()[0][:100]}")
                continue
            shutil.rmtree(out / "runs" / file, ignore_errors=True)
            r = subprocess.run(
                [a.convnet, "import", str(out / f"{file}.onnx"), "--out", str(out / "runs" / file)],
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                print(f"{file:28} imported; onnxruntime vs PyTorch {ort_diff(out, file):.2e}")
            else:
                failed += 1
                msg = (r.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{file:28} {msg[:300]}")
                for ext in ["json"]:  # the ignored test checks only what imports
                    (out / f"{file}.{ext}").unlink(missing_ok=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
