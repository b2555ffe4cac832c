#!/usr/bin/env bash
# Tune wall time on a fresh GPU node (cold module cache, the first process there), this
# build: tune-time2.sh's plus one warm-up call on CUDA instead of two (validation has just
# run every candidate). Then its table benched (gate).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/tt3; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
rm -rf "${XDG_CACHE_HOME:-$HOME/.cache}/gemmtune"
( time timeout 120 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/new.csv --budget-ms 250 --pdl -v ) >$OUT/tune-new.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune-new.txt | sed "s/^/new: /" >>$log
timeout 70 .dev/gemmtune bench --backend cuda --table $OUT/new.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-new.json 2>&1 | grep -E "^limits|geomean|gate" | sed "s/^/new: /" >>$log
cd $OUT && tar czf data.tgz *.json *.csv tune-*.txt && cp data.tgz log.txt "$final/"
