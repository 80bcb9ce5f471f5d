#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time, one after another, and
# reports per target: executions, the final edge coverage (`cov`), the corpus
# size, and the moment coverage last grew. A target "stops finding new paths"
# when its coverage has not grown for a long stretch at the end of the run.
#
# Usage: tools/fuzz_all.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET defaults to 900; targets default to all six.
# Needs: cargo install cargo-fuzz; on a stable toolchain RUSTC_BOOTSTRAP=1
# (set here). Logs go to fuzz/logs/TARGET.log (git-ignored). Crashes are
# written by libFuzzer to fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-900}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(idx csv notation model_file checkpoint onnx)
fi
export RUSTC_BOOTSTRAP=1
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a "$t" >/dev/null
    start=$(date +%s)
    # Each libFuzzer line gets the seconds since the start in front.
    RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a "$t" -- -max_total_time="$secs" \
        -print_final_stats=1 -close_fd_mask=1 2>&1 |
        while IFS= read -r line; do
            printf '%d %s\n' "$(($(date +%s) - start))" "$line"
        done >"logs/$t.log" || true
    awk -v t="$t" '
        / cov: / {
            for (i = 1; i <= NF; i++) if ($i == "cov:") c = $(i + 1) + 0
            if (c > cov) { cov = c; last = $1 }
            if ($3 == "NEW") lastnew = $1
            n = $2; sub(/^#/, "", n)
        }
        /number_of_executed_units/ { n = $NF }
        /corp:/ { for (i = 1; i <= NF; i++) if ($i == "corp:") corp = $(i + 1) }
        END {
            printf "%-11s %12s executions  cov %6d  corpus %-14s coverage last grew at %5d s, last NEW at %5d s, ran %d s\n",
                t, n, cov, corp, last, lastnew, $1
        }' "logs/$t.log"
done
