#!/usr/bin/env bash
# PREPARED, NOT RUN YET. Slice-major loads in cuda:mma / cuda:qmma (branch `mma-sectors`, or
# main with mma-sectors.patch here applied):
# one device call. Carry .dev with the branch's build (scripts/gpu/build.sh on the branch:
# gemmtune, cuda-tests, gptq-tests, built-in) and main's binary as .dev/gemmtune-old.
#   git checkout main && scripts/gpu/build.sh && cp .dev/gemmtune /tmp/gemmtune-old
#   git checkout mma-sectors && scripts/gpu/build.sh && cp /tmp/gemmtune-old .dev/
# Run from the branch's tree. Everything lands in two archives (the device returns 8 files).
# About 8 minutes: give the call timeout_s 580.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/mma-sectors; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version --format=csv >>$log
# 1. The new kernels' correctness: every candidate on awkward shapes, chained calls, GPTQ.
timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
timeout 60 .dev/gptq-tests --ignored --test-threads 1 >>$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked" $OUT/gpu-tests.log >>$log
# 2. Old and new build on the committed table, the 27 decode shapes, alternated.
scripts/gpu/ab-bench.sh .dev/gemmtune-old .dev/gemmtune tables/h200-llama-63.csv scripts/gpu/decode-27.csv 2 >>$log 2>&1
# 3. Sector counts and stalls of the M = 8 mma winner, old and new.
for b in old new; do
  bin=.dev/gemmtune; [ $b = old ] && bin=.dev/gemmtune-old
  GEMMTUNE=$bin TAG=$b timeout 150 scripts/gpu/ncu-decode.sh tables/h200-llama-63.csv 8,4096,4096 >>$log 2>&1
done
# 4. The decode shapes re-tuned with the new kernels (v2/v4 may now win, int4-like v1 no longer).
timeout 120 .dev/gemmtune tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $OUT/decode-27.csv --budget-ms 250 --pdl -v >$OUT/tune.log 2>&1
grep -E "^tuned|error" $OUT/tune.log >>$log
timeout 90 .dev/gemmtune bench --backend cuda --table $OUT/decode-27.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $OUT/bench-retuned.json >>$log 2>&1
tar -C "$OUT" -czf "$final/results.tgz" . && cp $log "$final/"
# 5. int4 (qmma, 29 of whose 32 H100 winners are V = 1): the decode shapes tuned by each build, each
# table benched by its own build. Last, with its own archive: the rest is safe if it runs out.
i4=/tmp/mma-sectors-int4; mkdir -p $i4
grep -v '^#' shapes/llama-h100-int4.csv | awk -F, 'NR==1 || $3<=32' >$i4/int4-decode.csv
for b in old new; do
  bin=.dev/gemmtune; [ $b = old ] && bin=.dev/gemmtune-old
  timeout 90 $bin tune --backend cuda --shapes $i4/int4-decode.csv --out $i4/int4-$b.csv --budget-ms 150 --pdl -q >$i4/tune-$b.log 2>&1
  timeout 60 $bin bench --backend cuda --table $i4/int4-$b.csv --shapes $i4/int4-decode.csv --budget-ms 150 -q --pdl --json $i4/bench-$b.json 2>&1 | grep -E "shapes:|gate" | sed "s/^/int4 $b: /" >>$log
done
echo "== end" >>$log
tar -C $i4 -czf "$final/results-int4.tgz" . ; cp $log "$final/"
