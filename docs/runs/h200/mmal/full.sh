#!/usr/bin/env bash
# `cuda:mmal` as merged (M <= 8, v2, n1; `cuda:mma` v4 no longer offered at M <= 8): the
# GPU tests, the 63 shapes tuned (wall time against the 60 s target), then that table
# (this build) and the committed one (main's build) benched alternately, twice.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/mmalf; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
( time timeout 100 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|^real" $OUT/gpu-tests.log >>$log
( time timeout 90 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune.txt >>$log
for r in 1 2; do
  for t in new main; do
    bin=.dev/gemmtune; table=$OUT/h200-llama-63.csv
    [ $t = main ] && bin=.dev/gemmtune-main && table=tables/h200-llama-63.csv
    timeout 70 $bin bench --backend cuda --table $table --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-$r.json 2>&1 | grep -E "^limits|geomean|gate" | sed "s/^/$t $r: /" >>$log
  done
done
cd $OUT && tar czf data.tgz *.json tune.txt gpu-tests.log && cp data.tgz log.txt h200-llama-63.csv "$final/"
