#!/usr/bin/env bash
# The 63 shapes re-tuned and benched by main's build of e807acd (second call of the
# session, same machine as docs/runs/h200/mma-sectors/run.sh). Its table
# (h200-llama-63.csv here) is the one docs/runs/h200/m128-floor/run.sh benched.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/retune-63; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>$log
timeout 200 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v >$OUT/tune.log 2>&1
grep -E "^\[|^tuned " $OUT/tune.log >$OUT/tune-decisions.txt
timeout 200 .dev/gemmtune bench --backend cuda --table $OUT/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-chained.json >>$log 2>&1
echo "== end" >>$log
tar -C "$OUT" -czf "$final/results-63.tgz" . ; cp $log "$final/"
