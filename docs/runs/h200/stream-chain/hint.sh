#!/usr/bin/env bash
# On the GPU machine (one call): the L2 prefetch size of the weight loads. The pure-load
# probe's hint sweep (`stream hint`), then the committed table's 27 decode rows benched by
# three builds of the same kernels, alternately, twice: main (no hint), `.L2::128B`,
# `.L2::256B` (W_L2_HINT, kernels/common.cuh); then the 27 rows re-tuned by the two hint
# builds and those tables benched alternately with the committed one.
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
.dev/stream-chain hint | tee $OUT/stream-hint.txt
dec=scripts/gpu/decode-27.csv
bench() {  # build table tag
  .dev/$1 bench --backend cuda --table $2 --shapes $dec --budget-ms 200 -q --pdl --json $OUT/bench-$3.json 2>&1 | grep -E "^M <= 32|gate" | sed "s/^/$3: /"
}
for r in 1 2; do
  bench gemmtune-main tables/h200-llama-63.csv main-$r
  bench gemmtune-h128 tables/h200-llama-63.csv h128-$r
  bench gemmtune tables/h200-llama-63.csv h256-$r
done
for b in gemmtune-h128 gemmtune; do
  s=$(date +%s.%N)
  .dev/$b tune --backend cuda --shapes $dec --out $OUT/tuned-$b.csv --budget-ms 250 --pdl -q 2>&1 | tail -1
  echo "$b: tuned in $(echo "$(date +%s.%N) - $s" | bc) s"
done
for r in 1 2; do
  bench gemmtune-main tables/h200-llama-63.csv main-c$r
  bench gemmtune-h128 $OUT/tuned-gemmtune-h128.csv h128-t$r
  bench gemmtune $OUT/tuned-gemmtune.csv h256-t$r
done
