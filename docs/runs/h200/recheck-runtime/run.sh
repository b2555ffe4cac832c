#!/usr/bin/env bash
# The GPU runtime after the twenty-first session's changes (decode-bench max_rows, the
# attention shared-memory attribute always set, eager fallback when a capture fails, the
# chunked prefill synchronizing between chunks, token checks before the first pass), on
# one warm machine in two calls, since the binaries and the model exceed one call's 64 MiB:
#   stage1 (carry .gpu: xz'd gemmtune and cuda-tests, built-in, first part of the xz'd
#          model): backends, decode-bench of random-weight models, a batch larger than
#          the prompt (the max_rows case);
#   stage2 (carry .gpu2: the model's second part): the runtime GPU tests with the real
#          model, generate tuned vs default, serve under 16 concurrent requests.
# Made here by: xz -6 of .dev/{gemmtune,cuda-tests}; xz -1 of the model, split -b 46000000.
set -uo pipefail
exec > >(tee -a "$OUT/log-${1}.txt") 2>&1
case "$1" in
  stage1)
    mkdir -p .dev
    for f in gemmtune cuda-tests; do xz -dc .gpu/$f.xz > .dev/$f && chmod +x .dev/$f; done
    cp .gpu/built-in .dev/
    # A carried path leaves with the next call that does not name it; models/ stays.
    mkdir -p models && cp .gpu/model.xz.aa models/
    [ "${2:-}" = copy-only ] && exit 0
    nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
    .dev/gemmtune backends
    for run in "smollm2-135m 1 h200-smollm2-135m 1,16 128" "smollm2-135m 1 h200-smollm2-135m 64 16" \
               "llama-3.1-8b 1 h200-llama-63 1,32 128" "llama-3.1-70b 8 h200-llama-63 1,8,32 128"; do
      set -- $run
      echo "== decode-bench $1 tp$2 batch $4 prompt $5"
      .dev/gemmtune decode-bench --config shapes/configs/$1.json --tp $2 --table tables/$3.csv --baseline \
        --batch $4 --prompt-len $5 --steps 64 --reps 5 --json "$OUT/decode-$1-tp$2-b${4//,/_}.json" 2>&1 | grep -vE "^\s*$"
    done
    ;;
  stage2)
    m=models/SmolLM2-135M-Instruct.Q4_1.gguf
    mkdir -p models && cat models/model.xz.aa .gpu2/model.xz.ab | xz -dc > "$m" && sha256sum "$m"
    TABLE=tables/h200-smollm2-135m.csv scripts/gpu/runtime.sh model
    ;;
esac
