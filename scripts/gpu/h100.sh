#!/usr/bin/env bash
# Runs on the GPU machine (no Rust there): the release binary built on the x86-64 dev
# machine is carried in .dev/ (with the GPU test binary: see scripts/gpu/build.sh).
# Usage: scripts/gpu/h100.sh smoke|test|full|all [budget_ms]
# Outputs are named after the GPU (h100, h200, ...): $OUT/<gpu>.csv, tune-<gpu>.log (every
# candidate's time, -v) and bench-<gpu>.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=.dev/gemmtune
out=${OUT:-/tmp/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit,temperature.gpu --format=csv
$bin backends
mode=${1:-smoke}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oiE 'H[0-9]{3}' | tr A-Z a-z)
gpu=${gpu:-gpu}
if [ "$mode" = test ] || [ "$mode" = all ]; then
    .dev/cuda-tests --ignored --test-threads 1 2>&1 | tee "$out/gpu-tests.log" | tail -30
fi
case "$mode" in
  smoke)
    $bin tune --backend cuda --shapes scripts/gpu/smoke.csv --out "$out/smoke.csv" --budget-ms "${2:-200}" --seed 1 -v 2>&1 | tail -c 20000
    ;;
  full|all)
    /usr/bin/time -v $bin tune --backend cuda --shapes shapes/llama-h100-63.csv --out "$out/$gpu.csv" --budget-ms "${2:-250}" -v \
      > "$out/tune-$gpu.log" 2>&1
    grep -E "^(tuned|Elapsed|  Maximum resident)|wall" "$out/tune-$gpu.log" | tail -5
    $bin bench --backend cuda --table "$out/$gpu.csv" --shapes shapes/llama-h100-63.csv --json "$out/bench-$gpu.json" -q 2>&1 | tee "$out/bench-$gpu.log"
    ;;
esac
