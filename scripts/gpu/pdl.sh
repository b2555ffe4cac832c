#!/usr/bin/env bash
# Chained launches on the GPU machine (binary carried in .dev/, scripts/gpu/build.sh): the
# GPU tests of chaining, the 63-shape tune with our kernels timed as the GPU runtime
# launches them (--pdl), its bench chained and unchained, and decode-bench of the 8B model
# on that table. Steps run most important first and write straight into $OUT (a call cut
# short by its time limit still returns what finished).
# Usage: scripts/gpu/pdl.sh   (docs/PERFORMANCE.md, H200 section, has the figures)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/out}
mkdir -p "$out"
bin=.dev/gemmtune
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oiE 'H[0-9]{3}' | tr A-Z a-z)
gpu=${gpu:-gpu}
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit,temperature.gpu --format=csv
stamp tests
.dev/cuda-tests --ignored --test-threads 1 chained awkward quantized 2>&1 | tee "$out/gpu-tests.log" | grep -E "^test |test result|panicked"
stamp tune
$bin tune --backend cuda --shapes shapes/llama-h100-63.csv --out "$out/$gpu-llama-63.csv" --budget-ms 250 --pdl -v >"$out/tune-$gpu-pdl.log" 2>&1
grep -E "^tuned|wall" "$out/tune-$gpu-pdl.log" | tail -2
for how in chained unchained; do
  stamp bench $how
  $bin bench --backend cuda --table "$out/$gpu-llama-63.csv" --shapes shapes/llama-h100-63.csv --budget-ms 300 -q \
    $([ $how = chained ] && echo --pdl) --json "$out/bench-$gpu-$how.json" 2>&1 | tee -a "$out/bench.log"
done
stamp decode 8b
$bin decode-bench --backend cuda --config shapes/configs/llama-3.1-8b.json --table "$out/$gpu-llama-63.csv" --baseline --batch 1,16 \
  --prompt-len 128 --steps 64 --reps 5 --json "$out/decode-8b.json" 2>&1 | tee "$out/decode.log" | grep -E '^\|'
stamp done
