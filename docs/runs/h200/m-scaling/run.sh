#!/usr/bin/env bash
# What a decode call's token count costs with the kernel fixed: the same ids timed
# (chained, cold) at M = 1, 8, 16, 24, 32 on N = 4096 with K = 64 (nearly no work: the
# call's fixed part, Y's size grows with M) and K = 4096 (X traffic grows with M too).
# Binary: scripts/gpu/build.sh (.dev/gemmtune).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/msc; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
s=docs/runs/h200/m-scaling/shapes.csv
for run in cuda:wgt:n32:g1:t1:s16:k1,32 cuda:wgt:n32:g1:t1:s16:k2,32 cuda:wg:n32:g1:t1:s8:k1,32 cuda:mma:mt1:w4:v2:n4:k1,32 cuda:mma:mt1:w8:v2:n1:k1,8 cuda:gemv:r2:t256:u1:m4,4; do
  id=${run%,*}; awk -F, -v max=${run#*,} '$1 == "dtype" || $3 <= max' $s >$OUT/s.csv
  echo "== $id" >>$log
  timeout 80 .dev/gemmtune bench --backend cuda --kernel $id --shapes $OUT/s.csv --budget-ms 150 --pdl --json $OUT/${id//:/_}.json 2>&1 | grep -E "^bf16|^limits" >>$log
done
cd $OUT && tar czf data.tgz *.json && cp data.tgz log.txt "$final/"
