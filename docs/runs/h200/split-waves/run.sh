#!/usr/bin/env bash
# 1280 x 8192 (70B-TP8 qkv) at M = 8 and 32, the weakest decode rows: how the K split of
# the deep-pipeline TMA kernel (one block per SM at 12-16 stages; the split is a cluster)
# behaves as the grid passes one wave, against the current winners. `bench --kernel`
# probes, chained, cold. Binary: scripts/gpu/build.sh of main (.dev/gemmtune).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/sw; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
awk -F, '$1 == "dtype" || ($3 == 32 && $4 == 1280)' scripts/gpu/decode-27.csv >$OUT/m32.csv
awk -F, '$1 == "dtype" || ($3 == 8 && $4 == 1280)' scripts/gpu/decode-27.csv >$OUT/m8.csv
probe() {  # shapes id
  timeout 40 .dev/gemmtune bench --backend cuda --kernel $2 --shapes $1 --budget-ms 200 --pdl --json $OUT/p-$(basename $1 .csv)-${2//:/_}.json 2>&1 | grep -E "^bf16 TN  " >>$log
}
for id in cuda:wg:n32:g1:t1:s8:k8 cuda:wgt:n32:g1:t1:s8:k8 cuda:wgt:n32:g1:t1:s12:k4 cuda:wgt:n32:g1:t1:s12:k6 cuda:wgt:n32:g1:t1:s12:k8 cuda:wgt:n32:g1:t1:s16:k4 cuda:wgt:n32:g1:t1:s16:k6 cuda:wgt:n32:g1:t1:s16:k8 cuda:wg:n32:g1:t1:s6:k12 cuda:wg:n32:g1:t1:s4:k16; do probe $OUT/m32.csv $id; done
for id in cuda:mma:mt1:w8:v1:n1:k8 cuda:wgt:n16:g1:t1:s16:k4 cuda:wgt:n16:g1:t1:s16:k6 cuda:wgt:n16:g1:t1:s8:k8 cuda:wg:n16:g1:t1:s8:k8; do probe $OUT/m8.csv $id; done
cd $OUT && tar czf data.tgz *.json && cp data.tgz log.txt "$final/"
