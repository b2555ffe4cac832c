#!/usr/bin/env bash
# Branch `direct-y`: the wgmma kernels without a K split write their accumulators straight
# to Y (no shared-memory pass, no cluster barriers). GPU tests, then the committed table's
# 27 decode rows benched by main (4c10217) and by the branch, alternated twice.
# Build (scripts/gpu/build.sh, carry [".dev"]): main -> .dev/gemmtune-main, branch ->
# .dev/gemmtune and .dev/cuda-tests.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/dy; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
timeout 150 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong" $OUT/gpu-tests.log | head -30 >>$log
for r in 1 2; do
  for b in main direct; do
    bin=.dev/gemmtune; [ $b = main ] && bin=.dev/gemmtune-main
    timeout 40 $bin bench --backend cuda --table tables/h200-llama-63.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $OUT/d27-$b-r$r.json | grep -E "^M <= 32" | sed "s/^/$b r$r: /" >>$log
  done
done
echo "== end" >>$log
cp $OUT/*.json $log "$final/"
