#!/usr/bin/env bash
# First device call for `cuda:mmd` (the mma kernel with 2-3 steps of loads in flight per
# warp; `cuda:mma` rewritten on the same staged loop at depth 1).
# Build (scripts/gpu/build.sh, carry [".dev"]): main at b9314c6 -> .dev/gemmtune-main,
# branch mmd -> .dev/gemmtune and .dev/cuda-tests.
# 1. GPU tests (every candidate on awkward shapes, chained calls incl. an mmd row).
# 2. Each build tunes the 27 decode rows; each benches its own table, alternated twice.
# 3. Both builds bench the committed table's 27 decode rows, alternated (the depth-1
#    rewrite must not move the committed mma rows).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/mmd; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
timeout 200 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong" $OUT/gpu-tests.log | head -30 >>$log
d27=scripts/gpu/decode-27.csv
timeout 100 .dev/gemmtune tune --backend cuda --shapes $d27 --out $OUT/mmd-27.csv --budget-ms 250 --pdl >$OUT/tune-mmd.log 2>&1
timeout 100 .dev/gemmtune-main tune --backend cuda --shapes $d27 --out $OUT/main-27.csv --budget-ms 250 --pdl >$OUT/tune-main.log 2>&1
grep -hE "^tuned " $OUT/tune-mmd.log $OUT/tune-main.log >>$log
echo "mmd rows: $(grep -c cuda:mmd $OUT/mmd-27.csv)" >>$log
for r in 1 2; do
  for b in main mmd; do
    bin=.dev/gemmtune; [ $b = main ] && bin=.dev/gemmtune-main
    timeout 60 $bin bench --backend cuda --table $OUT/$b-27.csv --shapes $d27 --budget-ms 200 -q --pdl --json $OUT/own-$b-r$r.json | grep -E "^M <= 32" | sed "s/^/own table, $b r$r: /" >>$log
    timeout 60 $bin bench --backend cuda --table tables/h200-llama-63.csv --shapes $d27 --budget-ms 200 -q --pdl --json $OUT/committed-$b-r$r.json | grep -E "^M <= 32" | sed "s/^/committed table, $b r$r: /" >>$log
  done
done
echo "== end" >>$log
tar -C "$OUT" -czf "$final/results.tgz" --exclude "*.log" . ; cp $log "$final/"
