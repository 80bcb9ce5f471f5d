#!/usr/bin/env python3
"""Checks the pre-trained EfficientNet-Lite0 brought in by
`efficientnet_lite0.py` against PyTorch on the 80 bundled photos.

    python3 tools/pretrained/check_efficientnet_lite0.py target/debug/convnet target/pretrained

1. Writes the run folder with `efficientnet_lite0.py`.
2. Same pixels on both sides: each photo of `data/cats-vs-dogs` resized to
   224x224 by Pillow (bilinear) and saved as PNG, which `convnet predict`
   reads without resizing; PyTorch runs the package's net on the same
   pixels. Every photo's top-5 classes must be the same, in the same
   order, and the probabilities agree to 1e-4.
3. What a user gets: `convnet predict` on the original JPEGs (its own
   resize); the top-1 class must be a cat (ImageNet 281-285) for the
   photos in `cats/` and a dog (151-268) for those in `dogs/`, for at
   least 90 % of them.
Needs PyTorch; pip-installs the two packages and Pillow when missing.
"""
import csv
import pathlib
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PHOTOS = ROOT / "data" / "cats-vs-dogs"
sys.path.insert(0, str(HERE))
import efficientnet_lite0 as lite0  # noqa: E402


def right_animal(folder: str, cls: int) -> bool:
    return 281 <= cls <= 285 if folder == "cats" else 151 <= cls <= 268


def predict(exe: str, run: pathlib.Path, files, out: pathlib.Path) -> np.ndarray:
    subprocess.run(
        [exe, "predict", str(run), *map(str, files), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    rows = {r["input"]: r for r in csv.DictReader(out.open())}
    return np.array([[float(rows[str(f)][f"p{k}"]) for k in range(1000)] for f in files])


def main(exe: str, work: str) -> int:
    try:
        from PIL import Image
    except ImportError:
        lite0.pip_install("pillow")
        from PIL import Image
    import torch

    work = pathlib.Path(work)
    (work / "png").mkdir(parents=True, exist_ok=True)
    run = work / "efficientnet-lite0"
    r = subprocess.run(
        [sys.executable, str(HERE / "efficientnet_lite0.py"), "--out", str(run), "--convnet", exe]
    )
    if r.returncode != 0:
        return r.returncode
    photos = [(d, f) for d in ("cats", "dogs") for f in sorted((PHOTOS / d).glob("*.jpg"))]
    pngs = []
    for d, f in photos:
        png = work / "png" / f"{d}-{f.stem}.png"
        Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR).save(png)
        pngs.append(png)
    ours = predict(exe, run, pngs, work / "png.csv")
    x = np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in pngs])
    with torch.no_grad():
        theirs = lite0.wrapped(lite0.pretrained_net())(torch.from_numpy(x.transpose(0, 3, 1, 2)))
    theirs = theirs.numpy()
    failures = []
    for i, (d, f) in enumerate(photos):
        a, b = list(np.argsort(-ours[i])[:5]), list(np.argsort(-theirs[i])[:5])
        if a != b:
            failures.append(f"{d}/{f.name}: top-5 convnet {a}, PyTorch {b}")
    diff = float(np.abs(ours - theirs).max())
    if diff > 1e-4:
        failures.append(f"probabilities differ by {diff:.2e} (> 1e-4)")
    print(f"same pixels: top-5 equal for {len(photos) - len(failures)}/{len(photos)} photos, "
          f"max |p_convnet - p_torch| = {diff:.2e}")
    jpg = predict(exe, run, [f for _, f in photos], work / "jpg.csv")
    right = sum(right_animal(d, int(np.argmax(jpg[i]))) for i, (d, _) in enumerate(photos))
    torch_right = sum(right_animal(d, int(np.argmax(theirs[i]))) for i, (d, _) in enumerate(photos))
    print(f"convnet predict on the JPEGs: top-1 a cat or dog class of the right folder for "
          f"{right}/{len(photos)} (PyTorch on Pillow's resize: {torch_right}/{len(photos)})")
    if right < 0.9 * len(photos):
        failures.append(f"only {right}/{len(photos)} photos classified as the right animal (< 90 %)")
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
