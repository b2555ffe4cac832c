#!/usr/bin/env bash
# The session's closing check of main (scripts/gpu/build.sh, carry [".dev"]): the GPU
# tests, and the committed H200 table benched on the 63 shapes.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/final; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
timeout 200 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked|wrong" $OUT/gpu-tests.log | head -30 >>$log
timeout 120 .dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-chained.json | grep -vE "^bf16" >>$log
echo "== end" >>$log
cp $OUT/bench-chained.json $log "$final/"
