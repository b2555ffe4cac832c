#!/usr/bin/env bash
# Refills of the TMA wgmma kernel requested in batches (`cuda:wgb`, WG_BATCH = 2 or 4
# steps) against one step per freed buffer (`cuda:wgt`): same ids otherwise, probed on
# decode rows; then the GPU tests, the 27 decode rows and the 9 M = 128 rows tuned with
# both (and `cuda:tgv`), and the decode tables benched against main's, alternated.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/wgb; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
awk -F, '$1 == "dtype" || $3 == 32' scripts/gpu/decode-27.csv >$OUT/m32.csv
awk -F, '$1 == "dtype" || $3 == 128' shapes/llama-h100-63.csv >$OUT/m128.csv
probe() {  # shapes id
  echo "== $2" >>$log
  timeout 60 .dev/gemmtune bench --backend cuda --kernel $2 --shapes $1 --budget-ms 150 --pdl --json $OUT/p-$(basename $1 .csv)-${2//:/_}.json 2>&1 | grep -E "^bf16 TN  " >>$log
}
for id in cuda:wgt:n32:g1:t1:s16:k2 cuda:wgb:n32:g1:t1:s16:b4:k2 cuda:wgb:n32:g1:t1:s16:b2:k2; do probe $OUT/m32.csv $id; done
( time timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|^real" $OUT/gpu-tests.log >>$log
( time timeout 100 .dev/gemmtune tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $OUT/dec-27.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune.txt >>$log
( time timeout 60 .dev/gemmtune tune --backend cuda --shapes $OUT/m128.csv --out $OUT/m128-tuned.csv --budget-ms 250 --pdl -v ) >$OUT/tune128.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune128.txt >>$log
for r in 1 2; do
  for t in main new; do
    bin=.dev/gemmtune; table=$OUT/dec-27.csv
    [ $t = main ] && bin=.dev/gemmtune-main && table=tables/h200-llama-63.csv
    timeout 60 $bin bench --backend cuda --table $table --shapes scripts/gpu/decode-27.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-$r.json 2>&1 | grep -E "geomean|gate" | sed "s/^/$t $r: /" >>$log
  done
done
cd $OUT && tar czf data.tgz *.json *.csv tune.txt tune128.txt gpu-tests.log && cp data.tgz log.txt "$final/"
