#!/usr/bin/env bash
# The sustained compute roof (100 back-to-back 8192^3 calls from rest, one sample) and
# 500 ms idle before each shape, as bench now does on GPUs; the re-tuned table
# (retune-direct) with its stale row (2048 x 6144 x 4096: 0.965-0.971x in settle/) tuned
# again, benched twice.
# Build: scripts/gpu/build.sh; carry [".dev"]; timeout_s 400.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/sustain; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
tab=$OUT/h200-llama-63.csv
grep -v "^bf16,TN,2048,6144,4096," docs/runs/h200/retune-direct/data/h200-llama-63.csv >$tab
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
for r in 1 2; do .dev/gemmtune bench --backend cuda --limits >>$log 2>&1; done
timeout 60 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $tab --budget-ms 250 --pdl -v >$OUT/tune.log 2>&1
grep -E "^\[|^tuned " $OUT/tune.log >>$log
for r in 1 2; do
  echo "== r$r" >>$log
  timeout 130 .dev/gemmtune bench --backend cuda --table $tab --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-r$r.json | grep -vE "^bf16" >>$log
done
echo "== end" >>$log
tar -C "$OUT" -czf "$final/results.tgz" . ; cp $log "$final/"
