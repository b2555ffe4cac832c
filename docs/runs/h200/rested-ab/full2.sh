#!/usr/bin/env bash
# The refinement (second A/B as long as the tune budget, only below a 4 % gain; full2/refine.patch, not kept), then
# benched as in every H200 section: the table to commit and its tune time.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/rf2; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
timeout 120 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v >$OUT/tune.txt 2>&1
grep -E "not from rest|tuned [0-9]+ shapes" $OUT/tune.txt >>$log
timeout 150 .dev/gemmtune bench --backend cuda --table $OUT/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench.json >>$log 2>&1
echo "== end" >>$log
cp $OUT/h200-llama-63.csv $OUT/bench.json $OUT/tune.txt $log "$final/"
