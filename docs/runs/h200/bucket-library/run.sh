#!/usr/bin/env bash
# The dispatcher's bucket fallback after 979467a (a row of a library configuration stands
# for the default): Llama-3.1-8B random weights on the 63-shape table at batch 64 (M = 64,
# between the rows of M = 32 and 128; 0.885x the default before) and 16 (M = 16: the
# M = 32 rows, our kernels where they won). One call, .dev carried. Not run yet: no machine
# started after the commit in the twenty-second session.
set -uo pipefail
exec > >(tee -a "$OUT/log.txt") 2>&1
for b in 64 16; do
  echo "== decode-bench llama-3.1-8b batch $b prompt 16"
  .dev/gemmtune decode-bench --config shapes/configs/llama-3.1-8b.json --table tables/h200-llama-63.csv --baseline \
    --batch $b --prompt-len 16 --steps 64 --reps 3 --json "$OUT/decode-8b-b$b.json" 2>&1 | grep -E "^\| (tuned|default)"
done
