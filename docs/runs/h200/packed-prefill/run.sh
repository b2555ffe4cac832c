#!/usr/bin/env bash
# The GPU runtime's prompts packed into full passes (`plan_passes`, twenty-second session),
# one call with .dev carried (scripts/gpu/build.sh):
#   1. the GPU test of packed passes (random SmolLM2-shaped weights: passes of 7 rows
#      against each prompt in one pass, then batched decode steps);
#   2. decode-bench where the batch exceeds the prompt (before: one pass a prompt),
#      tuned vs default, against the numbers of recheck-runtime/out;
#   3. the 63 shapes tuned with the finer phases of `tune -v` (fresh kernel cache).
set -uo pipefail
exec > >(tee -a "$OUT/log.txt") 2>&1
.dev/cuda-tests --ignored --test-threads 1 gpu_prompts_packed 2>&1 | grep -E "^test |test result|panicked|differ"
for run in "smollm2-135m h200-smollm2-135m" "llama-3.1-8b h200-llama-63"; do
  set -- $run
  echo "== decode-bench $1 batch 64 prompt 16"
  .dev/gemmtune decode-bench --config shapes/configs/$1.json --table tables/$2.csv --baseline \
    --batch 64 --prompt-len 16 --steps 64 --reps 5 --json "$OUT/decode-$1-b64-p16.json" 2>&1 | grep -vE "^\s*$"
done
rm -rf ~/.cache/gemmtune
.dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out /tmp/t.csv --budget-ms 250 --pdl --seed 7 -v 2>&1 \
  | grep -E "^\[[0-9]+/63\]|^tuned " > "$OUT/tune-phases.txt"; tail -1 "$OUT/tune-phases.txt"
