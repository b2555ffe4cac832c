#!/usr/bin/env bash
# The committed H200 table re-benched on the fifteenth session's host (main's build of
# scripts/gpu/build.sh, carried as .dev/gemmtune-main).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
.dev/gemmtune-main bench --backend cuda --table tables/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-committed.json 2>&1 | grep -E "^limits|geomean|gate" | tee $OUT/log.txt
