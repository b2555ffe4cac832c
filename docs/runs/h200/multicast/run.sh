#!/usr/bin/env bash
# `cuda:wgm`: the TMA wgmma kernel with X shared along N by a cluster of 2 or 4 blocks
# (each copies 1/c of the tokens and multicasts it to all c). One device call:
# the GPU tests (every candidate on awkward shapes, chained calls with two wgm rows), then
# `bench --kernel` probes of wgm against the same wgt configuration, then the 27 shapes
# with M in {8, 32, 128} tuned by main's build and by this one, and the two tables benched
# alternately, twice. Builds: .dev/gemmtune-main (main), .dev/gemmtune (this change).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/mc; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv,noheader >>$log
( time timeout 200 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained ) >$OUT/gpu-tests.log 2>&1
grep -E "test result|panicked|FAILED|^real" $OUT/gpu-tests.log >>$log
awk -F, 'NR <= 4 && /^#/ || $1 == "dtype" || $3 == 8 || $3 == 32 || $3 == 128' shapes/llama-h100-63.csv >$OUT/mid.csv
awk -F, '/^#/ || $1 == "dtype" || $3 == 128' shapes/llama-h100-63.csv >$OUT/m128.csv
awk -F, '/^#/ || $1 == "dtype" || $3 == 32' shapes/llama-h100-63.csv >$OUT/m32.csv
echo "shapes: $(grep -c '^bf16' $OUT/mid.csv) mid, $(grep -c '^bf16' $OUT/m128.csv) m128" >>$log
probe() {  # shapes id
  echo "== probe $2 on $(basename $1)" >>$log
  timeout 60 .dev/gemmtune bench --backend cuda --kernel $2 --shapes $1 --budget-ms 150 --pdl --json $OUT/probe-$(basename $1 .csv)-${2//:/_}.json 2>&1 | grep -vE "^limits" >>$log
}
for id in cuda:wgt:n128:g1:t1:s8:k1 cuda:wgm:n128:g1:t1:s8:c2:k1 cuda:wgm:n128:g1:t1:s8:c4:k1 cuda:wgm:n128:g2:t1:s6:c2:k1 cuda:wgm:n128:g2:t1:s6:c4:k1; do probe $OUT/m128.csv $id; done
for id in cuda:wgt:n32:g1:t1:s16:k2 cuda:wgm:n32:g1:t1:s16:c2:k2 cuda:wgm:n32:g1:t1:s16:c4:k2; do probe $OUT/m32.csv $id; done
for b in main new; do
  exe=.dev/gemmtune; [ $b = main ] && exe=.dev/gemmtune-main
  ( time timeout 120 $exe tune --backend cuda --shapes $OUT/mid.csv --out $OUT/table-$b.csv --budget-ms 250 --pdl -v ) >$OUT/tune-$b.txt 2>&1
  echo "== tune $b: $(grep -E 'tuned [0-9]+ shapes|^real' $OUT/tune-$b.txt | tr '\n' ' ')" >>$log
done
for r in 1 2; do
  for b in main new; do
    timeout 80 .dev/gemmtune bench --backend cuda --table $OUT/table-$b.csv --shapes $OUT/mid.csv --budget-ms 300 -q --pdl --json $OUT/bench-$b-r$r.json 2>&1 | grep -vE "^limits" | sed "s/^/$b r$r: /" >>$log
  done
done
echo "== end" >>$log
cd $OUT && tar czf data.tgz *.json *.csv tune-*.txt gpu-tests.log && cp data.tgz log.txt "$final/"
