#!/usr/bin/env bash
# (1) Does the measuring order change the 63-shape report? The committed table benched by
# the build before 7a410f7 (file order: each layer's M = 1 row right after the previous
# layer's M = 8192 row) and by 7a410f7 (lightest first), alternated twice on one machine.
# (2) Branch `tmap-prefetch` (the wgmma TMA form's tensor maps prefetched at kernel start):
# the chained GPU test, then the committed table's 27 decode rows benched by main and by
# the branch, alternated twice.
# Build (scripts/gpu/build.sh, carry [".dev"]): dbba94f -> .dev/gemmtune-main, main
# (lightest first) -> .dev/gemmtune, tmap-prefetch -> .dev/gemmtune-pf and .dev/cuda-tests.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/order; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
timeout 100 .dev/cuda-tests --ignored --test-threads 1 gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked" $OUT/gpu-tests.log >>$log
for r in 1 2; do
  for b in file lightest; do
    bin=.dev/gemmtune; [ $b = file ] && bin=.dev/gemmtune-main
    timeout 120 $bin bench --backend cuda --table tables/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-$b-r$r.json | grep -E "^limits|^M |^32 <|^gate" | sed "s/^/$b r$r: /" >>$log
  done
done
for r in 1 2; do
  for b in main pf; do
    bin=.dev/gemmtune; [ $b = pf ] && bin=.dev/gemmtune-pf
    timeout 60 $bin bench --backend cuda --table tables/h200-llama-63.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $OUT/d27-$b-r$r.json | grep -E "^M <= 32" | sed "s/^/$b r$r: /" >>$log
  done
done
echo "== end" >>$log
cp $OUT/*.json $log "$final/"
