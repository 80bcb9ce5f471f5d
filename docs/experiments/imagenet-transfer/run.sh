#!/usr/bin/env bash
# EXPERIMENTS.md, "An ImageNet-trained base on 500 photos": cats vs dogs (the 500 photos of
# ../shared/data/cats-vs-dogs-small, 100 held out: --validation-split 0.2 of the seed-42 shuffle),
# three ways, with the same augmentation where it applies. Run from the repository root after
# `cargo build --release`; needs torch for the first step. Logs beside this script.
set -euo pipefail
D=folder:../shared/data/cats-vs-dogs-small
OUT=docs/experiments/imagenet-transfer
BIN=target/release/convnet
python3 tools/pretrained/efficientnet_lite0.py --out runs/efficientnet-lite0
# 1. Transfer: the ImageNet base frozen, a new head (10 epochs), then its top 20 layers with
#    weights unfrozen at 1e-5 (batch norms stay frozen) for 5 more.
/usr/bin/time -v $BIN finetune runs/efficientnet-lite0 --head GAP-D0.2-1 --data $D --input 224x224x3 \
  --validation-split 0.2 --epochs 10 --batch-size 32 --horizontal-flip --rotation 10 --zoom 0.1 \
  --unfreeze-top 20 --unfreeze-lr 1e-5 --unfreeze-epochs 5 --name transfer > $OUT/transfer.log 2>&1
# 2. The same architecture from scratch (built in), 20 epochs.
/usr/bin/time -v $BIN train --model efficientnet_lite0 --data $D --input 224x224x3 \
  --validation-split 0.2 --epochs 20 --batch-size 32 --horizontal-flip --rotation 10 --zoom 0.1 \
  --name scratch > $OUT/scratch.log 2>&1
# 3. The README's 128x128 net (M3-style) from scratch, 30 epochs.
/usr/bin/time -v $BIN train --data $D --input 128x128x3 --padding valid \
  --model 32C3-32C3-P2-BN-D0.2-32C3-32C3-P2-BN-D0.2-64C3-64C3-64C3-P2-BN-D0.2-64-D0.2-1 \
  --epochs 30 --batch-size 16 --validation-split 0.2 \
  --rotation 15 --zoom 0.1 --width-shift 0.1 --height-shift 0.1 --shear 10 --horizontal-flip \
  --name m3-128 > $OUT/m3-128.log 2>&1
