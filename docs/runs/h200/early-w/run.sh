#!/usr/bin/env bash
# Early-W kernels: all GPU tests that need no model, the 63-shape chained tune + bench,
# and decode-bench A/B (old vs new kernels) of the 8B and 70B-TP8 shapes on the new table.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p $out
log=$out/log.txt
nvidia-smi --query-gpu=name,driver_version --format=csv >>$log
timeout 200 .dev/cuda-tests --ignored --test-threads 1 --skip runtime:: >$out/gpu-tests.log 2>&1
timeout 100 .dev/gptq-tests --ignored --test-threads 1 >>$out/gpu-tests.log 2>&1
grep -E "^test |test result" $out/gpu-tests.log >>$log
.dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $out/h200-llama-63.csv --budget-ms 250 --pdl -v >$out/tune.log 2>&1
grep -E "^tuned|wall" $out/tune.log >>$log
.dev/gemmtune bench --backend cuda --table $out/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $out/bench-chained.json >>$log 2>&1
OUT=/tmp/ab timeout 200 bash scripts/gpu/runtime.sh ab .dev/gemmtune-old .dev/gemmtune $out/h200-llama-63.csv 2 >>$log 2>&1
tar czf $out/ab.tgz -C /tmp ab
echo "== end" >>$log
