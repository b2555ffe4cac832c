#!/usr/bin/env bash
# A K split of 5 for the wgmma kernels (wg, wgt): 20 row tiles x 5 = 100 one-per-SM blocks
# in clusters of 5 (three fit in a GPC, where two of 6 do). Probes on the two weakest
# decode rows, the awkward-shapes GPU test, then the 63 shapes tuned with it and that
# table and the committed one benched in the same call. Binary: scripts/gpu/build.sh of
# this change (.dev/gemmtune).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/k5; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
awk -F, '$1 == "dtype" || ($3 == 32 && $4 == 1280)' scripts/gpu/decode-27.csv >$OUT/m32.csv
awk -F, '$1 == "dtype" || ($3 == 8 && $4 == 1280)' scripts/gpu/decode-27.csv >$OUT/m8.csv
probe() {  # shapes id
  timeout 40 .dev/gemmtune bench --backend cuda --kernel $2 --shapes $1 --budget-ms 200 --pdl --json $OUT/p-$(basename $1 .csv)-${2//:/_}.json 2>&1 | grep -E "^bf16 TN  " >>$log
}
for id in cuda:wgt:n32:g1:t1:s16:k5 cuda:wgt:n32:g1:t1:s12:k5 cuda:wg:n32:g1:t1:s8:k5; do probe $OUT/m32.csv $id; done
for id in cuda:wgt:n16:g1:t1:s16:k5 cuda:wgt:n16:g1:t1:s12:k5; do probe $OUT/m8.csv $id; done
( time timeout 90 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|^real" $OUT/gpu-tests.log >>$log
( time timeout 100 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune.txt >>$log
for t in new committed; do
  table=$OUT/h200-llama-63.csv; [ $t = committed ] && table=tables/h200-llama-63.csv
  timeout 70 .dev/gemmtune bench --backend cuda --table $table --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t.json 2>&1 | grep -E "^limits|geomean|gate" | sed "s/^/$t: /" >>$log
done
cd $OUT && tar czf data.tgz *.json *.csv tune.txt gpu-tests.log && cp data.tgz log.txt "$final/"
