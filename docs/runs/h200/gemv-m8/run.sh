#!/usr/bin/env bash
# Would the CUDA-core GEMV win at M = 8 on the H200? (the H100 reference measured 0.97x
# cuBLAS on one shape). GEMV_MAXM 8 added to the grid for this build only (.dev/gemmtune);
# the 9 shapes with M = 8 tuned with -v (every gemv m8 candidate timed against the rest),
# then probes of four m8 variants. One device call.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/g8; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
awk -F, '/^#/ || $1 == "dtype" || $3 == 8' shapes/llama-h100-63.csv >$OUT/m8.csv
( time timeout 60 .dev/gemmtune tune --backend cuda --shapes $OUT/m8.csv --out $OUT/table-m8.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune.txt >>$log
for id in cuda:gemv:r4:t256:u1:m8 cuda:gemv:r2:t256:u1:m8 cuda:gemv:r2:t256:u2:m8 cuda:gemv:r1:t256:u2:m8; do
  echo "== probe $id" >>$log
  timeout 60 .dev/gemmtune bench --backend cuda --kernel $id --shapes $OUT/m8.csv --budget-ms 150 --pdl --json $OUT/probe-${id//:/_}.json 2>&1 | grep -E "^bf16 TN  |geomean" >>$log
done
echo "== end" >>$log
cd $OUT && tar czf data.tgz *.json *.csv tune.txt && cp data.tgz log.txt "$final/"
