#!/usr/bin/env bash
# The transfer-learning and insert-bn experiments of EXPERIMENTS.md ("Transfer learning and
# batch norm surgery"). Run from the repository root after `cargo build --release -p convnet-cli`;
# FASHION points at the Fashion-MNIST IDX files. Logs land next to this script.
set -euo pipefail
C=target/release/convnet
FASHION=${FASHION:-../shared/data/fashion-mnist}
OUT=${OUT:-runs/transfer}
LOGS=docs/experiments/transfer
mkdir -p "$OUT"
run() { local name=$1; shift; "$C" "$@" --quiet --out "$OUT" --name "$name" > "$LOGS/$name.log" 2>&1; }

# (b) A base trained on MNIST (the default net, 3 epochs), its conv layers frozen under a new
# head, trained on 1,000 labelled Fashion-MNIST images; against the same net from scratch on them.
run mnist-base train --epochs 3 --seed 1
run fm1000-transfer finetune "$OUT/mnist-base" --head F-128-D0.4-10 --data fashion-mnist \
    --data-dir "$FASHION" --limit 1000 --epochs 20 --seed 1
"$C" train --resume "$OUT/fm1000-transfer" --unfreeze 2 --lr 1e-4 --epochs 30 --quiet \
    > "$LOGS/fm1000-transfer-stage2.log" 2>&1
run fm1000-scratch train --data fashion-mnist --data-dir "$FASHION" --limit 1000 --epochs 30 --seed 1

# (a) A VGG-style net without batch norm (MNIST, 12,000 images, 2 epochs), then: batch norm
# inserted and 2 more epochs; 2 more epochs without; and the same net with batch norm from scratch.
VGG=32C3-32C3-P2-64C3-64C3-P2-128-10
run vgg-nobn train --model $VGG --limit 12000 --epochs 2 --seed 1
cp -r "$OUT/vgg-nobn" "$OUT/vgg-nobn-continued"
"$C" train --resume "$OUT/vgg-nobn-continued" --epochs 4 --quiet > "$LOGS/vgg-nobn-continued.log" 2>&1
"$C" insert-bn "$OUT/vgg-nobn" --after conv --calibrate 10 --out "$OUT" --name vgg-bn-inserted \
    > "$LOGS/vgg-insert-bn.log" 2>&1
"$C" train --resume "$OUT/vgg-bn-inserted" --epochs 2 --quiet > "$LOGS/vgg-bn-inserted.log" 2>&1
run vgg-bn-scratch train --model 32C3-BN-32C3-BN-P2-64C3-BN-64C3-BN-P2-128-10 --limit 12000 --epochs 4 --seed 1
# (c) Cats vs dogs (500 photos, 100 held out for validation), as 28x28 grayscale so that a
# base trained offline fits: the Fashion-MNIST net's conv layers frozen under a new sigmoid
# head, against the same net from scratch. (With internet, the real recipe starts from an
# ImageNet net brought in through ONNX.)
CATS=${CATS:-../shared/data/cats-vs-dogs-small}
AUG="--horizontal-flip --width-shift 0.1 --height-shift 0.1 --rotation 10 --validation-split 0.2"
run fashion-base train --data fashion-mnist --data-dir "$FASHION" --epochs 3 --seed 1
run cats-transfer finetune "$OUT/fashion-base" --head F-64-D0.5-1 --data "folder:$CATS" \
    --input 28x28x1 --epochs 30 --batch-size 16 $AUG --seed 1
run cats-scratch train --data "folder:$CATS" --input 28x28x1 --epochs 30 --batch-size 16 $AUG --seed 1
for r in "$OUT"/*/; do echo "== $r"; cat "$r/history.csv"; cat "$r/metrics.json" 2>/dev/null; echo; done \
    > "$LOGS/histories.txt"
