#!/usr/bin/env bash
# Weight-only int4 on the H100 (binary carried in .dev/, see scripts/gpu/build.sh).
# Usage: scripts/gpu/int4.sh test|tune|bench|model
#   test:  the int4 GPU tests (every candidate correct; tuned winners on fresh draws).
#   tune:  tune shapes/llama-h100-int4.csv (8B and 70B-TP8 layers in g128 and q4_1) and
#          report tuned vs default with % of roofline (packed bytes / measured bandwidth);
#          tune the SmolLM2 Q4_1 layer shapes.
#   bench: decode-bench 8B and 70B-TP8-rank models with int4 layers (g128, q4_1) on the
#          int4 table merged with the dense serving table (lm_head), tuned vs default
#          dispatch, and the dense bf16 8B model in the same run.
#   model: SmolLM2 from its GGUF with the Q4_1 layers packed on the GPU (--weights native)
#          vs dequantized to bf16: runtime tests, generate tok/s at batch 1 and 16.
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=.dev/gemmtune
out=${OUT:-/tmp/out}
mkdir -p "$out"
case "${1:-test}" in
  test)
    .dev/cuda-tests --ignored --test-threads 1 quantized tuned_winners 2>&1 | grep -v "^$" | tail -60
    ;;
  tune)
    # Tables are written under /tmp and copied: a table's lock file next to it would take
    # one of the few file slots the device tool brings back from $OUT.
    /usr/bin/time -f "tune wall %e s" $bin tune --backend cuda --shapes shapes/llama-h100-int4.csv --out /tmp/h100-llama-int4.csv --budget-ms 150 -q 2>&1 | tail -4
    $bin bench --backend cuda --table /tmp/h100-llama-int4.csv --shapes shapes/llama-h100-int4.csv --json "$out/bench-int4.json" -q 2>&1 | tee "$out/bench-int4.log" | tail -64
    $bin tune --backend cuda --shapes shapes/smollm2-135m-h100-q4_1.csv --out /tmp/sq.csv --budget-ms 100 -q 2>&1 | tail -2
    rm -f tables/h100-smollm2-135m-q4_1.csv
    $bin table merge tables/h100-smollm2-135m.csv /tmp/sq.csv --out tables/h100-smollm2-135m-q4_1.csv
    cp /tmp/h100-llama-int4.csv tables/  # for a `bench` in the same call
    cp tables/h100-llama-int4.csv tables/h100-smollm2-135m-q4_1.csv "$out/"
    ;;
  bench)
    $bin table merge tables/h100-llama-serving.csv tables/h100-llama-int4.csv --out /tmp/int4-serving.csv
    for run in "llama-3.1-8b 1" "llama-3.1-70b 8"; do
      set -- $run
      for q in g128 q4_1; do
        $bin decode-bench --backend cuda --config shapes/configs/$1.json --tp $2 --table /tmp/int4-serving.csv --baseline --quant $q \
          --batch 1,16 --prompt-len 128 --steps 64 --reps 5 --json "$out/decode-$1-tp$2-$q.json" 2>&1 | grep -v "^|---"
      done
    done
    $bin decode-bench --backend cuda --config shapes/configs/llama-3.1-8b.json --table tables/h100-llama-serving.csv \
      --batch 1,16 --prompt-len 128 --steps 64 --reps 5 --json "$out/decode-llama-3.1-8b-tp1-bf16.json" 2>&1 | grep -v "^|---"
    ;;
  model)
    m=models/SmolLM2-135M-Instruct.Q4_1.gguf
    [ -f "$m" ] || cat /root/m/part.aa models/part.ab > "$m"
    sha256sum "$m"
    .dev/cuda-tests --ignored --test-threads 1 runtime 2>&1 | grep -E "^test |test result|panicked|agree" | tail -20
    p="Explain what a matrix multiplication is, in two sentences."
    for w in "--weights native --table tables/h100-smollm2-135m-q4_1.csv" "--weights native" "--table tables/h100-smollm2-135m.csv"; do
      for b in 1 16; do
        echo "== batch $b $w"
        $bin generate --backend cuda --model "$m" $w --chat --prompt "$p" --max-tokens 128 --ignore-eos --batch $b 2>&1 | grep -E "prefill|dispatch|batch"
      done
    done
    ;;
esac
