#!/usr/bin/env bash
# The final MNIST net at the kernel's full budget (issue #18): 45 epochs, Adam,
# lr = 1e-3 x 0.95^epoch, batch 64, rotation 10, zoom 0.1, shifts 0.1.
#   1. ten bagged members (90 % of the 60,000 training images each, seeds 42-51),
#   2. three single nets on all 60,000 training images (seeds 1-3),
#   3. the families where the quick budget disagreed with the kernel, at its budget
#      (--full: 20 epochs on 54,000 images, 6,000 for validation): dropout, dense-size.
# Every step writes a checkpoint per epoch; run the script again to continue
# where it stopped (a finished step is skipped). The ensemble is written
# straight into the repository's models/mnist-ensemble, finished members and
# the running member's newest checkpoint alike, so that committing that folder
# at the end of a working session carries the run over to the next one.
# The single nets go to models/mnist-single-45 and the families' progress and
# tables to docs/experiments/full, both tracked for the same reason.
# Low priority, so other work on the machine keeps its speed.
# Logs: models/mnist-ensemble/train.log, models/mnist-single-45/*.log,
# docs/experiments/full/*.log.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN=${CONVNET:-target/release/convnet}
FINAL="784-[32C3-BN-32C3-BN-32C5S2s-BN-D0.4]-[64C3-BN-64C3-BN-64C5S2s-BN-D0.4]-128C4-BN-F-D0.4-10"
mkdir -p models/mnist-ensemble models/mnist-single-45 docs/experiments/full
nice -n 19 "$BIN" ensemble --nets 10 --augment --epochs 45 --out models/mnist-ensemble --resume --quiet \
  >>models/mnist-ensemble/train.log 2>&1
for s in 1 2 3; do
  run=models/mnist-single-45/seed-$s
  [ -f "$run/metrics.json" ] && continue
  if [ -f "$run/run.json" ]; then
    nice -n 19 "$BIN" train --resume "$run" --quiet >>"$run.log" 2>&1
  else
    nice -n 19 "$BIN" train --model "$FINAL" --padding valid --rotation 10 --zoom 0.1 \
      --width-shift 0.1 --height-shift 0.1 --epochs 45 --validation-split 0 --batch-size 64 \
      --seed "$s" --quiet --out models/mnist-single-45 --name "seed-$s" >>"$run.log" 2>&1
  fi
done
for fam in dropout dense-size; do
  nice -n 19 "$BIN" experiment "$fam" --full --resume --quiet --out docs/experiments/full \
    >>"docs/experiments/full/$fam.log" 2>&1
done
