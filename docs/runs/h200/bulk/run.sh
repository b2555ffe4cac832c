#!/usr/bin/env bash
# Bulk-copy decode kernel (cuda:bulk): GPU tests, the full 63-shape chained tune + bench,
# then decode at batch 1 and 8 with the table committed before (wgmma run) vs the new one.
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p $out; log=$out/log.txt
nvidia-smi --query-gpu=name,driver_version --format=csv >>$log
timeout 200 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$out/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong" $out/gpu-tests.log | head -20 >>$log
timeout 240 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $out/h200-llama-63.csv --budget-ms 250 --pdl -v >$out/tune.log 2>&1
grep -E "^tuned|wall|error" $out/tune.log >>$log
timeout 150 .dev/gemmtune bench --backend cuda --table $out/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $out/bench-chained.json >>$log 2>&1
echo "== end" >>$log
log=$out/decode.txt
for b in 1 8; do for t in tables/h200-llama-63.csv $out/h200-llama-63.csv; do for cfg in "llama-3.1-70b 8" "llama-3.1-8b 1"; do
  set -- $cfg
  echo "== batch $b $t $1 tp$2" >>$log
  timeout 40 .dev/gemmtune decode-bench --backend cuda --config shapes/configs/$1.json --tp $2 --table $t --batch $b --prompt-len 128 --steps 64 --reps 3 >>$log 2>&1
done; done; done
