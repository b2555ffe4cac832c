#!/usr/bin/env bash
# Deeper TMA pipelines for the wgmma kernel: `cuda:wgt` with 18 and 20 stages (n16 t1:
# 185/205 KiB; n32 t1 s18: 222 KiB). Why: s8 -> s12 -> s16 kept winning on the short
# decode calls, where the prologue's boxes (requested before the wait on the previous
# call) are a large share of a block's steps. Probes of s16 against s18/s20 on the M = 8
# and M = 32 rows, the GPU tests, the 27 decode rows tuned with them, and that table
# benched against the committed one (main's build), alternated twice.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/deep; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
awk -F, '$1 == "dtype" || $3 == 8' scripts/gpu/decode-27.csv >$OUT/m8.csv
awk -F, '$1 == "dtype" || $3 == 32' scripts/gpu/decode-27.csv >$OUT/m32.csv
probe() {  # shapes id
  echo "== $2" >>$log
  timeout 60 .dev/gemmtune bench --backend cuda --kernel $2 --shapes $1 --budget-ms 150 --pdl --json $OUT/p-$(basename $1 .csv)-${2//:/_}.json 2>&1 | grep -E "^bf16 TN  " >>$log
}
for s in 16 20; do probe $OUT/m8.csv cuda:wgt:n16:g1:t1:s$s:k2; done
for s in 16 18; do probe $OUT/m32.csv cuda:wgt:n32:g1:t1:s$s:k2; done
( time timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|^real" $OUT/gpu-tests.log >>$log
( time timeout 100 .dev/gemmtune tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $OUT/dec-27.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune.txt >>$log
for r in 1 2; do
  for t in main new; do
    bin=.dev/gemmtune; table=$OUT/dec-27.csv
    [ $t = main ] && bin=.dev/gemmtune-main && table=tables/h200-llama-63.csv
    timeout 60 $bin bench --backend cuda --table $table --shapes scripts/gpu/decode-27.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-$r.json 2>&1 | grep -E "decode phase|gate" | sed "s/^/$t $r: /" >>$log
  done
done
cd $OUT && tar czf data.tgz *.json *.csv tune.txt gpu-tests.log && cp data.tgz log.txt "$final/"
