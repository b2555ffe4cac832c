#!/usr/bin/env bash
# RUN 2026-12-03 with the first form of the change (peak sustained 2 s, median of its second
# half; replaced by the 100-call sample of sustain/): data in data/.
# bench with the sustained peak (2 s back to back) as the compute roof and 500 ms idle
# before each shape (the new GPU defaults), on the re-tuned table (retune-direct) and the
# committed one, alternated; then the 27 decode rows alone for the order comparison.
# Build: scripts/gpu/build.sh; carry [".dev"]; timeout_s 420.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/settle; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
new=docs/runs/h200/retune-direct/data/h200-llama-63.csv
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
.dev/gemmtune bench --backend cuda --limits >>$log 2>&1
for r in 1 2 3; do
  tab=$new; t=new; [ $r = 2 ] && { tab=tables/h200-llama-63.csv; t=committed; }
  echo "== r$r $t" >>$log
  timeout 130 .dev/gemmtune bench --backend cuda --table $tab --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-r$r.json | grep -vE "^bf16" >>$log
done
echo "== decode-27 alone, new table" >>$log
timeout 60 .dev/gemmtune bench --backend cuda --table $new --shapes scripts/gpu/decode-27.csv --budget-ms 300 -q --pdl --json $OUT/d27-new.json | grep -E "^M <= 32|^limits" >>$log
echo "== end" >>$log
tar -C "$OUT" -czf "$final/results.tgz" . ; cp $log "$final/"
