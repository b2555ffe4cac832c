#!/usr/bin/env bash
# The wgmma kernels' K-split ending with slice slots pushed to their owners (one cluster
# barrier, no remote loads) against main's (partials read remotely, two barriers). One
# device call: the GPU tests; `bench --kernel` of the split winners on the 18 M = 8 and 32
# rows, main's build and this one alternated twice; the timelines of both versions; the
# 63 shapes tuned with this build and that table benched against the committed one (main's
# build), alternated twice.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/sl; mkdir -p "$OUT/csv" "$final"
log=$OUT/log.txt
( time timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|^real" $OUT/gpu-tests.log >>$log
shapes=docs/runs/h200/timeline/m8-32.csv
for id in cuda:wgt:n32:g1:t1:s16:k2 cuda:wgt:n32:g1:t1:s16:k4 cuda:wgt:n16:g1:t1:s16:k2 cuda:wgt:n16:g1:t2:s12:k8 cuda:wg:n32:g1:t1:s8:k8; do
  for r in 1 2; do
    for t in main new; do
      bin=.dev/gemmtune; [ $t = main ] && bin=.dev/gemmtune-main
      echo "== $id $t $r" >>$log
      timeout 60 $bin bench --backend cuda --kernel $id --shapes $shapes --budget-ms 150 --pdl --json $OUT/k-${id//:/_}-$t-$r.json 2>&1 | grep -E "^bf16 TN  " >>$log
    done
  done
done
tl() { OUT=$OUT/csv "$@" | grep -E "^==|^--|mean over" >>$log; }
for v in "" -main; do
  echo "#### timeline$v" >>$log
  tl .dev/timeline$v/wgt_n32_s16_k4 32 1280 8192
  tl .dev/timeline$v/wgt_n32_s16_k2 32 4096 4096
  tl .dev/timeline$v/wg_n32_s8_k8 32 1280 8192
done
( time timeout 90 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v ) >$OUT/tune.txt 2>&1
grep -E "tuned [0-9]+ shapes|^real" $OUT/tune.txt >>$log
for r in 1 2; do
  for t in new main; do
    bin=.dev/gemmtune; table=$OUT/h200-llama-63.csv
    [ $t = main ] && bin=.dev/gemmtune-main && table=tables/h200-llama-63.csv
    timeout 70 $bin bench --backend cuda --table $table --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-$t-$r.json 2>&1 | grep -E "^limits|geomean|gate" | sed "s/^/$t $r: /" >>$log
  done
done
cd $OUT && tar czf data.tgz csv *.json tune.txt gpu-tests.log && cp data.tgz log.txt h200-llama-63.csv "$final/"
