#!/usr/bin/env bash
# `cuda:mmal` (kernels/mmal.cu): the mma kernel with W read in whole 128-byte lines and
# turned into fragments through each warp's shared-memory tile (ldmatrix). Probes against
# the same `cuda:mma` configuration on the M = 8 rows, the GPU tests, the 27 decode rows
# tuned with it, and that table benched against the committed one (main's build),
# alternated twice.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/mmal; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
awk -F, '$1 == "dtype" || $3 == 8' scripts/gpu/decode-27.csv >$OUT/m8.csv
probe() {  # shapes id
  echo "== $2" >>$log
  timeout 60 .dev/gemmtune bench --backend cuda --kernel $2 --shapes $1 --budget-ms 150 --pdl --json $OUT/p-$(basename $1 .csv)-${2//:/_}.json 2>&1 | grep -E "^bf16 TN  " >>$log
}
for f in mma mmal; do probe $OUT/m8.csv cuda:$f:mt1:w8:v2:n1:k1; done
for f in mma mmal; do probe $OUT/m8.csv cuda:$f:mt1:w8:v2:n1:k4; done
( time timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained ) >$OUT/gpu-tests.log 2>&1
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
