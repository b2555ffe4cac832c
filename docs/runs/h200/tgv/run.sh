#!/usr/bin/env bash
# The tensor-core GEMV (`cuda:tgv`, kernels/tgv.cu): GPU tests with it, the 27 decode rows
# tuned with it (-v: every candidate's time), then that table (this build) and the
# committed one (main's build, .dev/gemmtune-main) benched alternately, twice.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/tgv; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>$log
( time timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|^real" $OUT/gpu-tests.log >>$log
( time timeout 150 .dev/gemmtune tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $OUT/tgv-27.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune.txt >>$log
for r in 1 2; do
  for t in main tgv; do
    bin=.dev/gemmtune; table=$OUT/tgv-27.csv
    [ $t = main ] && bin=.dev/gemmtune-main && table=tables/h200-llama-63.csv
    timeout 60 $bin bench --backend cuda --table $table --shapes scripts/gpu/decode-27.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-$r.json 2>&1 | grep -E "^limits|geomean|gate" | sed "s/^/$t $r: /" >>$log
  done
done
cd $OUT && tar czf data.tgz *.json *.csv tune.txt gpu-tests.log && cp data.tgz log.txt "$final/"
