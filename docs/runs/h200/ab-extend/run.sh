#!/usr/bin/env bash
# The 63 shapes re-tuned by the build whose A/B goes on while a median gain's interval still
# reaches 1 (src/tune/mod.rs), then benched; the GPU tests of the same build first.
# One device call, binaries of scripts/gpu/build.sh in .dev/ (carry .dev).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/ab-extend; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,driver_version --format=csv >>$log
timeout 120 .dev/cuda-tests --ignored --test-threads 1 gpu_every_candidate gpu_chained >$OUT/gpu-tests.log 2>&1
grep -E "^test |test result|panicked" $OUT/gpu-tests.log >>$log
timeout 200 .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/h200-llama-63.csv --budget-ms 250 --pdl -v >$OUT/tune.log 2>&1
grep -E "^\[|^tuned " $OUT/tune.log >$OUT/tune-decisions.txt
grep -E "^tuned " $OUT/tune.log >>$log
grep -E "more pairs|within noise" $OUT/tune.log | grep -oE "ratio [0-9.]+, interval [0-9.]+\.\.[0-9.]+|over [0-9]+ pairs" | sort | uniq -c | sort -rn | head -20 >>$log
timeout 200 .dev/gemmtune bench --backend cuda --table $OUT/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-chained.json >>$log 2>&1
echo "== end" >>$log
tar -C "$OUT" --exclude tune.log -czf "$final/results.tgz" . ; cp $log "$final/"
