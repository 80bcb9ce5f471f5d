#!/usr/bin/env bash
# The explorer in a real headless Chromium (issue #19): trains a small MNIST
# run (or uses RUN), serves it, drives the page with tools/explorer/browser_test.mjs
# and leaves screenshots in OUT (default target/explorer-screenshots).
#   bash tools/explorer/browser_test.sh [BIN] [RUN] [OUT]
# Needs Debian's chromium and Node.js; installs playwright-core (npm) here.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/debug/convnet}
RUN=${2:-}
OUT=${3:-target/explorer-screenshots}
if [ -z "$RUN" ]; then
  rm -rf target/explorer-run
  # Class 0's name is markup (script injection through --class-names): the
  # page must show it as text.
  # The README's default net with a batch norm after the first convolution:
  # a layer with negative values for the colour scale to show.
  "$BIN" train --limit 6000 --epochs 2 --quiet --out target/explorer-run --name mnist \
    --model 32C5-BN-P2-64C5-P2-128-D0.4-10 \
    --class-names '<img src=x onerror=window.__xss=1>,1,2,3,4,5,6,7,8,9' >/dev/null
  RUN=target/explorer-run/mnist
  export HOSTILE_NAMES=1
fi
(cd tools/explorer && npm install --no-audit --no-fund --silent)
LOG=$(mktemp)
CONVNET_SERVE_LOG=1 "$BIN" serve "$RUN" --port 0 >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "http://" "$LOG" && break; sleep 0.1; done
URL=$(grep -o "http://[0-9.:]*/" "$LOG" | head -1)
[ -n "$URL" ] || { cat "$LOG"; exit 1; }
node tools/explorer/browser_test.mjs "$URL" "$OUT" || { echo "server log:"; tail -50 "$LOG"; exit 1; }

# A graph (residual blocks, one with a projection, and an inception module)
# drawn as a graph.
kill $PID 2>/dev/null || true
rm -rf target/explorer-graph
"$BIN" train --limit 3000 --epochs 2 --quiet --out target/explorer-graph --name graph \
  --model '8C3-BN-R[8C3-BN-8C3-BN]-R[16C3S2-BN-16C3-BN]-I[8C1 | 8C1-8C3 | P3S1-8C1]-GAP-10' >/dev/null
: >"$LOG"
CONVNET_SERVE_LOG=1 "$BIN" serve target/explorer-graph/graph --port 0 >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q "http://" "$LOG" && break; sleep 0.1; done
URL=$(grep -o "http://[0-9.:]*/" "$LOG" | head -1)
[ -n "$URL" ] || { cat "$LOG"; exit 1; }
node tools/explorer/graph_test.mjs "$URL" "$OUT" || { echo "server log:"; tail -50 "$LOG"; exit 1; }

# Live training: train --serve with the page open (pause, rate, re-predict,
# "epoch N of N").
kill $PID 2>/dev/null || true
LIVE=$(mktemp)
rm -rf target/explorer-live
"$BIN" train --limit 3000 --epochs 3 --quiet --out target/explorer-live --name live \
  --serve --serve-port 0 >"$LIVE" 2>&1 &
PID=$!
for _ in $(seq 300); do grep -q "http://" "$LIVE" && break; sleep 0.1; done
URL=$(grep -o "http://[0-9.:]*/" "$LIVE" | head -1)
[ -n "$URL" ] || { cat "$LIVE"; exit 1; }
node tools/explorer/live_test.mjs "$URL" 3 || { echo "training log:"; tail -20 "$LIVE"; exit 1; }
