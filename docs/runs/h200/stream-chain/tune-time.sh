#!/usr/bin/env bash
# On a fresh GPU machine (one call): the 63 shapes tuned from an empty kernel cache by
# this build (compiling ahead now through Modules::precompile, shared with ROCm), its
# table benched, then the GPU tests (they fill the cache, so they run last). Run twice:
# out/4 (compiling ahead shared with ROCm), out/5 (+ one readback per validated candidate).
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
rm -rf ~/.cache/gemmtune
s=$(date +%s%N)
.dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out $OUT/new.csv --budget-ms 250 --pdl -v > $OUT/tune-new.txt 2>&1
echo "wall $(( ($(date +%s%N) - s) / 1000000 )) ms"; tail -1 $OUT/tune-new.txt
.dev/gemmtune bench --backend cuda --table $OUT/new.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-new.json 2>&1 | grep -E "phase|M <=|M <|M >=|gate|limits" | head -12
.dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-committed.json 2>&1 | grep -E "phase|M <=|M <|M >=|gate" | sed 's/^/committed: /' | head -12
.dev/cuda-tests --ignored --test-threads 1 --skip runtime:: 2>&1 | grep -E "^test |test result|panicked" | head -40
