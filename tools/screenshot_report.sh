#!/usr/bin/env bash
# Renders RUN/report.html in headless Chromium and saves RUN/report.png.
# Needs Debian's chromium (apt-get install chromium).
set -euo pipefail
run="${1:?usage: tools/screenshot_report.sh RUN_FOLDER}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "chromium not found: apt-get install chromium" >&2
  exit 2
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1280,2400 \
  --screenshot="$(realpath "$run")/report.png" "file://$(realpath "$run")/report.html"
echo "wrote $run/report.png"
