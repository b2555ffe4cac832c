#!/usr/bin/env bash
# Tune wall time on a fresh GPU node (cold module cache; this build runs first, so it also
# pays the machine's first NVRTC use): this build (the warm-up's timed call counted as the
# first sample where a sample is one call; the later shapes' kernels compiled on a thread
# of their own while the first are tuned) against main's, each after clearing the
# on-disk CUBIN cache; then both tables benched.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/tt2; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
for t in new main; do
  bin=.dev/gemmtune; [ $t = main ] && bin=.dev/gemmtune-main
  rm -rf "${XDG_CACHE_HOME:-$HOME/.cache}/gemmtune"
  ( time timeout 120 $bin tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/$t.csv --budget-ms 250 --pdl -v ) >$OUT/tune-$t.txt 2>&1
  grep -E "tuned [0-9]+ shapes|^real" $OUT/tune-$t.txt | sed "s/^/$t: /" >>$log
done
for t in new main; do
  bin=.dev/gemmtune; [ $t = main ] && bin=.dev/gemmtune-main
  timeout 70 $bin bench --backend cuda --table $OUT/$t.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t.json 2>&1 | grep -E "^limits|geomean|gate" | sed "s/^/$t: /" >>$log
done
cd $OUT && tar czf data.tgz *.json *.csv tune-*.txt && cp data.tgz log.txt "$final/"
