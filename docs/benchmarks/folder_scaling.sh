#!/usr/bin/env bash
# Image folders at scale (issue #17): one epoch of M3 (the README's cats-vs-dogs net) at
# 128x128x3 on generated folders of 1,000, 5,000 and 25,000 photo-like JPEGs, streaming
# (--cache-mib 0: every image decoded when its batch is asked for), with whole-process
# peak RSS and images/s; OLD=path/to/an older convnet adds the eager loader's figures.
#   bash docs/benchmarks/folder_scaling.sh SOURCE_PHOTO_FOLDER [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${1:?a folder of class sub-folders of photos, e.g. the 500-photo cats-vs-dogs set}
shift
SIZES=${*:-1000 5000 25000}
BIN=target/release/convnet
cargo build --release -q -p convnet-cli -p convnet-data --examples
M3="32C3-32C3-P2-BN-D0.2-32C3-32C3-P2-BN-D0.2-64C3-64C3-64C3-P2-BN-D0.2-64-D0.2-1"
run() { # binary, folder, extra args...
  local b=$1 f=$2; shift 2
  /usr/bin/time -f "peak_rss_kb %M wall_s %e" "$b" train --data "folder:$f" --input 128x128x3 \
    --padding valid --model "$M3" --epochs 1 --batch-size 16 --validation-split 0 \
    --rotation 15 --zoom 0.1 --width-shift 0.1 --height-shift 0.1 --shear 10 --horizontal-flip \
    --quiet --out /tmp/folder-scaling-runs "$@" 2>&1 | grep -E "^Epoch|peak_rss_kb"
}
for n in $SIZES; do
  f=/tmp/photos-$n
  [ -d "$f" ] || target/release/examples/make_photo_folder "$SRC" "$f" "$n"
  echo "== $n JPEGs, streaming (--cache-mib 0)"
  run "$BIN" "$f" --cache-mib 0
  if [ -n "${OLD:-}" ] && [ "$n" -le 5000 ]; then
    echo "== $n JPEGs, eager loader ($OLD: decoded up front as f32)"
    run "$OLD" "$f"
  fi
done
