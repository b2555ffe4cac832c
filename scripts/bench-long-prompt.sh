#!/usr/bin/env bash
# Prefill speed of long prompts on the CPU (docs/PERFORMANCE.md, "Long prompts"): SmolLM2
# with the committed CPU table, prompts of 300, 1000 and 3000 words ("hello " repeated,
# 301 / 1001 / 3001 tokens), one generated token, twice each; then the device limits of the
# same machine (`bench --limits`) for the floor. BIN=<binary> times another build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
bin=${BIN:-target/release/gemmtune}
[ -n "${BIN:-}" ] || cargo build --release --locked -q
for run in 1 2; do
  for n in 300 1000 3000; do
    prompt=$(python3 -c "print('hello ' * $n)")
    echo "run $run, $n words: $("$bin" generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --table tables/cpu-smollm2-135m.csv --prompt "$prompt" --max-tokens 1 2>&1 | grep prefill)"
  done
done
"$bin" bench --limits
