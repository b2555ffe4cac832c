#!/usr/bin/env bash
# The GPU runtime on the H100 (binary carried in .dev/, see scripts/gpu/build.sh).
# Usage: scripts/gpu/runtime.sh bench|model
#   bench: tune the SmolLM2 bf16 shapes, then decode-bench random-weight models with the
#          Llama-3.1-8B and 70B-TP8-rank shapes (tuned table vs default, interleaved).
#   model: SmolLM2 itself: GPU runtime tests, generate tok/s (batch 1 and 16, tuned vs
#          default), serve under 16 concurrent requests.
# The model file (98 MB) exceeds what one device call carries (64 MiB): it travels as
# models/part.aa and models/part.ab (`split -n 2`) in two calls and is joined here.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=.dev/gemmtune
out=${OUT:-/tmp/out}
mkdir -p "$out"
case "${1:-bench}" in
  bench)
    $bin tune --backend cuda --shapes shapes/smollm2-135m-h100.csv --out "$out/h100-smollm2-135m.csv" --budget-ms 150 -q 2>&1 | tail -3
    $bin table show "$out/h100-smollm2-135m.csv" | tail -45
    for cfg in "llama-3.1-8b.json --tp 1" "llama-3.1-70b.json --tp 8"; do
      set -- $cfg
      $bin decode-bench --backend cuda --config shapes/configs/$1 $2 $3 --table tables/h100-llama-63.csv --baseline \
        --batch 1,16 --prompt-len 128 --steps 64 --reps 5 --json "$out/decode-${1%.json}.json"
    done
    ;;
  model)
    m=models/SmolLM2-135M-Instruct.Q4_1.gguf
    [ -f "$m" ] || cat /root/m/part.aa models/part.ab > "$m"
    sha256sum "$m"
    .dev/cuda-tests --ignored --test-threads 1 2>&1 | grep -E "^test |test result|panicked|agree|correct|candidates" | tail -30
    p="Explain what a matrix multiplication is, in two sentences."
    for t in "--table tables/h100-smollm2-135m.csv" ""; do
      for b in 1 16; do
        echo "== batch $b ${t:-default dispatch}"
        $bin generate --backend cuda --model "$m" $t --chat --prompt "$p" --max-tokens 128 --ignore-eos --batch $b 2>&1 | grep -E "prefill|dispatch|batch"
      done
    done
    ;;
esac
