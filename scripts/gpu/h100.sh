#!/usr/bin/env bash
# Runs on the GPU machine (no Rust there): the release binary built on the x86-64 dev
# machine is carried in .dev/ (with the GPU test binary: see scripts/gpu/build.sh).
# Usage: scripts/gpu/h100.sh smoke|test|full|all|pdl [budget_ms]
# Outputs are named after the GPU (h100, h200, ...): $OUT/<gpu>.csv, tune-<gpu>.log (every
# candidate's time, -v) and bench-<gpu>.json.
# pdl: our kernels timed chained as the GPU runtime launches them (tune/bench --pdl): the
# chaining GPU tests, the 63-shape tune, its bench chained and unchained, and decode-bench
# of the 8B model on that table; most important first, each writing straight into $OUT
# (a call cut short by its time limit still returns what finished). Figures:
# docs/PERFORMANCE.md, H200 section.
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
  pdl)
    .dev/cuda-tests --ignored --test-threads 1 chained awkward quantized 2>&1 | tee "$out/gpu-tests.log" | grep -E "^test |test result|panicked"
    $bin tune --backend cuda --shapes shapes/llama-h100-63.csv --out "$out/$gpu-llama-63.csv" --budget-ms "${2:-250}" --pdl -v >"$out/tune-$gpu-pdl.log" 2>&1
    grep -E "^tuned|wall" "$out/tune-$gpu-pdl.log" | tail -2
    for how in chained unchained; do
      $bin bench --backend cuda --table "$out/$gpu-llama-63.csv" --shapes shapes/llama-h100-63.csv --budget-ms 300 -q \
        $([ $how = chained ] && echo --pdl) --json "$out/bench-$gpu-$how.json" 2>&1 | tee -a "$out/bench.log"
    done
    $bin decode-bench --backend cuda --config shapes/configs/llama-3.1-8b.json --table "$out/$gpu-llama-63.csv" --baseline --batch 1,16 \
      --prompt-len 128 --steps 64 --reps 5 --json "$out/decode-8b.json" 2>&1 | tee "$out/decode.log" | grep -E '^\|'
    ;;
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
