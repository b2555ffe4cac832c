#!/usr/bin/env bash
# The first device call for `cuda:wgs` (the TMA wgmma kernel, persistent stream-K).
# Build here first (binaries of scripts/gpu/build.sh):
#   git checkout main && scripts/gpu/build.sh && cp .dev/gemmtune /tmp/gemmtune-main
#   git checkout wgs && scripts/gpu/build.sh && cp /tmp/gemmtune-main .dev/gemmtune-main
# then run from the branch tree with carry [".dev"], timeout_s 590.
# 1. GPU tests of this build (every candidate on awkward shapes incl. 200 rows over 4 tiles
#    split 16 ways; chained calls incl. two wgs rows).
# 2. The 63 shapes re-tuned with wgs and benched (the table to commit if it wins).
# 3. A/B on the 36 shapes with M <= 128: main's build tunes them in this call too, then
#    each build benches its own table, alternated twice.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/wgs; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >>$log
timeout 200 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong|cuda:wgs" $OUT/gpu-tests.log | head -40 >>$log
timeout 200 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v >$OUT/tune.log 2>&1
grep -E "^\[|^tuned " $OUT/tune.log >$OUT/tune-decisions.txt
grep -E "^tuned |rror" $OUT/tune.log | head >>$log
for f in wgs wgt wg mma gemv cublaslt cublas:; do echo "$f rows: $(grep -c "cuda:$f" $OUT/h200-llama-63.csv)"; done >>$log
timeout 150 .dev/gemmtune bench --backend cuda --table $OUT/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-chained.json >>$log 2>&1
(head -5 shapes/llama-h100-63.csv; awk -F, 'NR>5 && $3<=128' shapes/llama-h100-63.csv) >$OUT/m128-36.csv
timeout 100 .dev/gemmtune-main tune --backend cuda --shapes $OUT/m128-36.csv --out $OUT/main-36.csv --budget-ms 250 --pdl >$OUT/tune-main.log 2>&1
grep -E "^tuned " $OUT/tune-main.log >>$log
tar -C "$OUT" --exclude tune.log --exclude tune-main.log -czf "$final/results.tgz" . ; cp $log "$final/"
for r in 1 2; do
  for b in main wgs; do
    if [ $b = main ]; then bin=.dev/gemmtune-main t=$OUT/main-36.csv; else bin=.dev/gemmtune t=$OUT/h200-llama-63.csv; fi
    timeout 60 $bin bench --backend cuda --table $t --shapes $OUT/m128-36.csv --budget-ms 200 -q --pdl --json $OUT/ab-$b-r$r.json | grep -E "^M <= 32|^32 < M" | sed "s/^/$b r$r: /" >>$log
  done
done
echo "== end" >>$log
tar -C "$OUT" --exclude tune.log --exclude tune-main.log -czf "$final/results.tgz" . ; cp $log "$final/"
