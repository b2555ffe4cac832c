#!/usr/bin/env bash
# Per-candidate times of our own kernels vs the best library kernel on the smoke shapes
# (runs on the GPU machine; see h100.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/out}; mkdir -p "$out"
.dev/gemmtune tune --backend cuda --shapes scripts/gpu/smoke.csv --out "$out/k.csv" --budget-ms 400 --seed 2 -v > "$out/kernels.log" 2>&1
grep -E "^\[|cuda:(mma|gemv)|cublas:default|decision|tuned:|kept" "$out/kernels.log" | sed 's/\(cuda:cublaslt:[0-9]*:[^:]*\):[0-9a-f.]*/\1/' | sort -t' ' -k1,1 -s | head -150
