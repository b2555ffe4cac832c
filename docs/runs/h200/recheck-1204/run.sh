#!/usr/bin/env bash
# The committed table (tables/h200-llama-63.csv, tuned 2026-12-04 with the check from
# rest) benched twice on the 63 shapes on another day's host: does the gate still pass?
# Binary: scripts/gpu/build.sh of main (.dev/gemmtune).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/rc; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader >>$log
for r in 1 2; do
  ( time timeout 200 .dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-r$r.json ) 2>&1 | grep -E "^limits|geomean|gate|^real" | sed "s/^/r$r: /" >>$log
done
cd $OUT && tar czf data.tgz *.json && cp data.tgz log.txt "$final/"
