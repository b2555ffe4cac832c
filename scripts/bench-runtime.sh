#!/usr/bin/env bash
# SmolLM2-135M on the CPU runtime: prefill and decode tok/s at batch 1 and 16, default
# dispatch vs the tuned table, 3 runs each (the figures in docs/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
cargo build --release --locked -q
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
P="Write a short story about a robot who learns to paint. It should be about three paragraphs long and have a happy ending."
for table in "" "--table tables/cpu-smollm2-135m.csv"; do
  name=default; [ -n "$table" ] && name=tuned
  for b in 1 16; do
    for run in 1 2 3; do
      echo "dispatch=$name batch=$b run=$run: $(target/release/gemmtune generate --model $M $table --prompt "$P" --max-tokens 40 --ignore-eos --batch $b 2>&1 >/dev/null | grep -E '^(prefill|batch)')"
    done
  done
done
