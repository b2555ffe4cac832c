#!/usr/bin/env bash
# The GPU runtime's prompts packed into full passes (`plan_passes`, twenty-second session):
# two calls on one warm machine, as docs/runs/h200/recheck-runtime/run.sh (same .gpu/.gpu2
# carries: xz'd binaries, the model in two xz'd parts).
#   a: the 63 shapes tuned with the finer phases of -v; decode-bench where the batch exceeds the prompt (the packed case: before, one
#      pass a prompt), tuned vs default, against the numbers of recheck-runtime/out;
#   b: the runtime GPU tests with the real model, the new packed-pass test among them.
set -uo pipefail
exec > >(tee -a "$OUT/log-${1}.txt") 2>&1
case "$1" in
  a)
    mkdir -p .dev models
    for f in gemmtune cuda-tests; do xz -dc .gpu/$f.xz > .dev/$f && chmod +x .dev/$f; done
    cp .gpu/built-in .dev/ && cp .gpu/model.xz.aa models/
    for run in "smollm2-135m h200-smollm2-135m" "llama-3.1-8b h200-llama-63"; do
      set -- $run
      echo "== decode-bench $1 batch 64 prompt 16"
      .dev/gemmtune decode-bench --config shapes/configs/$1.json --table tables/$2.csv --baseline \
        --batch 64 --prompt-len 16 --steps 64 --reps 5 --json "$OUT/decode-$1-b64-p16.json" 2>&1 | grep -vE "^\s*$"
    done
    # Where a tune's wall time goes, by the finer phases of `tune -v` (fresh kernel cache).
    rm -rf ~/.cache/gemmtune
    .dev/gemmtune tune --backend cuda --shapes shapes/llama-h100-63.csv --out /tmp/t.csv --budget-ms 250 --pdl --seed 7 -v 2>&1 \
      | grep -E "^\[[0-9]+/63\]|^tuned " > "$OUT/tune-phases.txt"; tail -1 "$OUT/tune-phases.txt"
    ;;
  b)
    m=models/SmolLM2-135M-Instruct.Q4_1.gguf
    cat models/model.xz.aa .gpu2/model.xz.ab | xz -dc > "$m" && sha256sum "$m"
    built=$(cat .dev/built-in)
    [ ! -e "$built" ] && mkdir -p "$(dirname "$built")" && ln -s "$PWD" "$built"
    .dev/cuda-tests --ignored --test-threads 1 runtime:: 2>&1 | grep -E "^test |test result|panicked|differ"
    ;;
esac
