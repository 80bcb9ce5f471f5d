#!/usr/bin/env python3
"""Runs convnet's exported ONNX models in onnxruntime and compares the
outputs with convnet's own predictions.

The models, inputs and expected outputs come from the Rust test
`crates/onnx/tests/roundtrip.rs`:

    CONVNET_ONNX_DUMP=target/onnx-check cargo test -p convnet-onnx --test roundtrip
    python3 tools/onnx/check_onnxruntime.py target/onnx-check

Every model must pass `onnx.checker.check_model` (full check, with shape
inference) and agree with convnet to 1e-4 (max absolute difference).
Needs `pip install onnx onnxruntime numpy`.
"""
import json
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(folder: str) -> int:
    d = pathlib.Path(folder)
    models = sorted(d.glob("*.onnx"))
    if not models:
        print(f"no .onnx files in {d}", file=sys.stderr)
        return 1
    worst = 0.0
    for path in models:
        name = path.stem
        meta = json.loads((d / f"{name}.json").read_text())
        x = np.fromfile(d / f"{name}.input.bin", dtype="<f4").reshape(meta["input"])
        want = np.fromfile(d / f"{name}.expected.bin", dtype="<f4").reshape(meta["output"])
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        diff = float(np.max(np.abs(got - want)))
        worst = max(worst, diff)
        status = "ok" if diff <= 1e-4 else "FAIL"
        print(f"{name:12s} onnxruntime {ort.__version__}: max |diff| {diff:.2e} {status}")
        if diff > 1e-4:
            return 1
    print(f"{len(models)} models agree with convnet (worst {worst:.2e}); onnx {onnx.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "target/onnx-check"))
