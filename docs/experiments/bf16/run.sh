#!/bin/bash
# bf16 (mixed precision) training against fp32 (issue #30): the README's main job over three
# seeds in both precisions, then the Fashion-MNIST ResNet recipe of EXPERIMENTS.md in bf16
# (its fp32 run is docs/experiments/fashion-resnet/). Resumable: finished runs are skipped and
# a stopped Fashion-MNIST run continues from its newest checkpoint.
# Usage: run.sh CONVNET FASHION_MNIST_DIR (a release binary; the Fashion-MNIST IDX files)
set -x
BIN=${1:-convnet}
FASHION=${2:-../shared/data/fashion-mnist}
for seed in 42 1 2; do
  for p in fp32 bf16; do
    [ -f runs/readme-$p-$seed/metrics.json ] && continue
    rm -rf runs/readme-$p-$seed
    $BIN train --precision $p --seed $seed --quiet --out runs --name readme-$p-$seed > readme-$p-$seed.log 2>&1
  done
done
M="28x28x1-32C3-BN-R[32C3-BN-32C3-BN]x2-R[64C3S2-BN-64C3-BN]-R[64C3-BN-64C3-BN]-R[128C3S2-BN-128C3-BN]-R[128C3-BN-128C3-BN]-GAP-D0.3-10"
if ! grep -q '"epochs": 22' runs/fashion-bf16/run.json 2>/dev/null; then
  if [ -d runs/fashion-bf16 ]; then
    $BIN train --resume runs/fashion-bf16 --quiet >> fashion-bf16.log 2>&1    # the first 15 epochs
  else
    $BIN train --data fashion-mnist --data-dir "$FASHION" --epochs 15 --batch-size 64 --horizontal-flip \
      --width-shift 0.1 --height-shift 0.1 --seed 1 --precision bf16 --quiet --out runs --name fashion-bf16 \
      --model "$M" > fashion-bf16.log 2>&1
  fi
fi
# Then 7 epochs with the base rate stepped down (a stopped one resumes with the same line).
$BIN train --resume runs/fashion-bf16 --epochs 22 --lr 1e-4 --quiet >> fashion-bf16.log 2>&1
