#!/usr/bin/env bash
# RUN 2026-12-03 (twelfth session; data in data/): the first device call of that session. The committed H200 table
# was tuned before the direct-Y epilogue (25e8190), which made unsplit wgmma variants
# 3-11 % faster; re-tune the 63 shapes with it (the table to commit if the gate passes),
# then the 27 decode rows of the committed table against the new one, alternated.
# Build: scripts/gpu/build.sh on main; carry [".dev"]; timeout_s 400.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/retune; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
timeout 200 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v >$OUT/tune.log 2>&1
grep -E "^\[|^tuned " $OUT/tune.log >$OUT/tune-decisions.txt
grep -E "^tuned " $OUT/tune.log >>$log
timeout 150 .dev/gemmtune bench --backend cuda --table $OUT/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-chained.json | grep -vE "^bf16" >>$log
for r in 1 2; do
  for t in committed new; do
    tab=tables/h200-llama-63.csv; [ $t = new ] && tab=$OUT/h200-llama-63.csv
    timeout 40 .dev/gemmtune bench --backend cuda --table $tab --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $OUT/d27-$t-r$r.json | grep -E "^M <= 32" | sed "s/^/$t r$r: /" >>$log
  done
done
echo "== end" >>$log
tar -C "$OUT" --exclude tune.log -czf "$final/results.tgz" . ; cp $log "$final/"
