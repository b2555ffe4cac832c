#!/usr/bin/env bash
# Where the decode gap is: the fixed cost of a chained call. One device call, binaries of
# scripts/gpu/build.sh in .dev/. Measurements first (what is under $OUT comes back even if
# the call runs out of time), the GPU tests of this build last.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p $out; log=$out/log.txt
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv >>$log
# 1. Calls with nearly no work, chained: every candidate's time (-v).
timeout 60 .dev/gemmtune tune --backend cuda --shapes scripts/gpu/chain-cost.csv --out $out/chain-cost.csv --budget-ms 150 --pdl -v >$out/chain-cost.log 2>&1
echo "== chain-cost rc=$?" >>$log
# 2. The committed table on the nine small decode shapes: cold (weights from HBM), then hot
# (one operand set, weights in L2), then cold again.
for run in cold hot cold2; do
  flag=; [ $run = hot ] && flag=--hot
  echo "== bench $run" >>$log
  timeout 60 .dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes scripts/gpu/small-decode.csv --budget-ms 300 -q --pdl $flag --json $out/bench-$run.json >>$log 2>&1
done
# 3. This build's GPU tests.
timeout 100 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$out/gpu-tests.log 2>&1
grep -E "^test |test result|panicked" $out/gpu-tests.log | head -10 >>$log
echo "== end" >>$log
# Second call, same binary (dec-cold.json, dec-hot.json): all 27 decode shapes, cold then hot.
#   grep -v '^#' shapes/llama-h100-63.csv | awk -F, 'NR==1 || $3<=32' > /tmp/dec.csv
#   for run in cold hot; do flag=; [ $run = hot ] && flag=--hot
#     .dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes /tmp/dec.csv --budget-ms 200 -q --pdl $flag --json $OUT/dec-$run.json; done
# Analysis (fit.txt): scripts/dev/decode-fit.py dec-cold.json --hot dec-hot.json --chain chain-cost.csv
