#!/usr/bin/env bash
# On the GPU machine (one call): the GEMV in spread order (`cuda:gemvs`, GEMV_SPREAD in
# kernels/gemv.cu). GPU tests (every candidate on the awkward shapes, chained), then the 27
# decode rows tuned by this build (-v: every candidate's time), then that table benched by
# this build and the committed one by main's build, alternately, twice.
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
.dev/cuda-tests --ignored --test-threads 1 gpu_every gpu_chained 2>&1 | grep -E "^test |test result|panicked|wrong" | head -30
dec=scripts/gpu/decode-27.csv
s=$(date +%s%N)
.dev/gemmtune tune --backend cuda --shapes $dec --out $OUT/spread.csv --budget-ms 250 --pdl -v > $OUT/tune-spread.txt 2>&1
echo "tuned in $(( ($(date +%s%N) - s) / 1000000 )) ms"; tail -1 $OUT/tune-spread.txt
grep -E "^\[" $OUT/tune-spread.txt | cut -c1-140
bench() {  # build table tag
  .dev/$1 bench --backend cuda --table $2 --shapes $dec --budget-ms 200 -q --pdl --json $OUT/bench-$3.json 2>&1 | grep -E "^M <= 32|gate" | sed "s/^/$3: /"
}
for r in 1 2; do
  bench gemmtune-main tables/h200-llama-63.csv main-$r
  bench gemmtune $OUT/spread.csv spread-$r
done
