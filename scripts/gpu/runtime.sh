#!/usr/bin/env bash
# The GPU runtime on the H100 (binary carried in .dev/, see scripts/gpu/build.sh).
# Usage: scripts/gpu/runtime.sh tune|bench|profile|model|ab
#   tune:  tune the SmolLM2 bf16 shapes (chained, as the runtime launches) into $TABLE.
#   bench: decode-bench random-weight models of the SmolLM2, Llama-3.1-8B and 70B-TP8-rank
#          shapes (tuned table vs default, interleaved), and transformers on the same shapes.
#   model: SmolLM2 itself: GPU runtime tests, generate tok/s (batch 1 and 16, tuned vs
#          default), serve under 16 concurrent requests.
# The model file (98 MB) exceeds what one device call carries (64 MiB with the tree): it
# travels as models/part.a? (`split -b 47000000`: aa, ab, ac) in calls on one warm machine
# (the first carries part.aa with .dev/gemmtune, .dev/cuda-tests and .dev/built-in, the
# next part.ab and part.ac; carried files stay between calls) and is joined here
# (docs/runs/h200/runtime/log.txt).
set -uo pipefail
cd "$(dirname "$0")/../.."
bin=.dev/gemmtune
out=${OUT:-/tmp/out}
mkdir -p "$out"
case "${1:-bench}" in
  ab)
    # Two builds of the runtime, alternated: decode-bench of the 8B and 70B-TP8-rank shapes
    # at batch 1 on one table. Usage: runtime.sh ab <binary A> <binary B> <table> [rounds]
    a=$2 b=$3 table=$4
    for round in $(seq "${5:-2}"); do
      for c in "llama-3.1-8b 1" "llama-3.1-70b 8"; do
        set -- $c
        for bin in "$a" "$b"; do
          printf '%s %s tp%s round %s: ' "$(basename "$bin")" "$1" "$2" "$round"
          $bin decode-bench --backend cuda --config shapes/configs/$1.json --tp $2 --table "$table" --batch 1 \
            --prompt-len 128 --steps 64 --reps 5 --json "$out/ab-$(basename "$bin")-$1-r$round.json" 2>&1 | grep '^| tuned' | cut -d'|' -f5,7
        done
      done
    done
    ;;
  tune)
    # Into $TABLE (default $OUT/smollm2-135m.csv), for the `model` step after it.
    $bin tune --backend cuda --shapes shapes/smollm2-135m-h100.csv --out "${TABLE:-$out/smollm2-135m.csv}" --budget-ms 150 -q --pdl 2>&1 | tail -3
    ;;
  bench)
    # The serving table: the 63-shape set plus the decode batch buckets (M = 2, 4, 16).
    if [ ! -f tables/h100-llama-serving.csv ]; then
      $bin tune --backend cuda --shapes shapes/llama-h100-decode-buckets.csv --out /tmp/buckets.csv --budget-ms 150 -q 2>&1 | tail -2
      $bin table merge tables/h100-llama-63.csv /tmp/buckets.csv --out tables/h100-llama-serving.csv
      cp tables/h100-llama-serving.csv "$out/"
    fi
    for run in "smollm2-135m 1 h100-smollm2-135m" "llama-3.1-8b 1 h100-llama-serving" "llama-3.1-70b 8 h100-llama-serving"; do
      set -- $run
      $bin decode-bench --backend cuda --config shapes/configs/$1.json --tp $2 --table tables/$3.csv --baseline \
        --batch 1,16 --prompt-len 128 --steps 64 --reps 5 --json "$out/decode-$1-tp$2.json"
    done
    # Hugging Face transformers (eager generate) on the same GPU and shapes.
    [ "${HF:-1}" = 1 ] && for c in smollm2-135m llama-3.1-8b; do
      python3 scripts/reference/hf_decode.py shapes/configs/$c.json > "$out/hf-$c.log" 2>&1
      grep "^transformers" "$out/hf-$c.log" || tail -5 "$out/hf-$c.log"
    done
    ;;
  profile)
    # Where a decode step's time goes: every kernel of the captured graph, summed.
    nsys profile --cuda-graph-trace=node -o /tmp/decode --force-overwrite true $bin decode-bench --backend cuda \
      --config shapes/configs/llama-3.1-8b.json --table tables/h100-llama-63.csv --batch 1 --prompt-len 128 --steps 32 --reps 1 >/dev/null 2>&1
    nsys stats --report cuda_gpu_kern_sum --format csv /tmp/decode.nsys-rep 2>/dev/null | python3 -c '
import csv, sys
rows = list(csv.DictReader(l for l in sys.stdin if l.count(",") > 3))
T, N, A, NAME = "Total Time (ns)", "Instances", "Avg (ns)", "Name"
tot = sum(float(r[T]) for r in rows)
print("total kernel time %.2f ms over %d launches" % (tot / 1e6, sum(int(r[N]) for r in rows)))
for r in rows[:25]:
    print("%8.2f ms %6d x %8.2f us  %s" % (float(r[T]) / 1e6, int(r[N]), float(r[A]) / 1e3, r[NAME][:90]))
'
    ;;
  model)
    # TABLE: the SmolLM2 table for this GPU (default: the H100's; `tune` writes one).
    table=${TABLE:-tables/h100-smollm2-135m.csv}
    m=models/SmolLM2-135M-Instruct.Q4_1.gguf
    [ -f "$m" ] || cat models/part.a? > "$m"
    sha256sum "$m"
    # The test binary finds the model and its test data under the path it was built in
    # (CARGO_MANIFEST_DIR); the device runs a copy of the tree elsewhere.
    built=$(cat .dev/built-in 2>/dev/null)
    [ -n "$built" ] && [ ! -e "$built" ] && mkdir -p "$(dirname "$built")" && ln -s "$PWD" "$built"
    .dev/cuda-tests --ignored --test-threads 1 runtime:: 2>&1 | grep -E "^test |test result|panicked|agree|correct|candidates" | tail -30
    p="Explain what a matrix multiplication is, in two sentences."
    for t in "--table $table" ""; do
      for b in 1 16; do
        echo "== batch $b ${t:-default dispatch}"
        $bin generate --backend cuda --model "$m" $t --chat --prompt "$p" --max-tokens 128 --ignore-eos --batch $b 2>&1 | grep -E "prefill|dispatch|batch"
      done
    done
    # serve on the GPU under 16 concurrent requests (curl; the device has no openai client)
    $bin serve --backend cuda --model "$m" --table "$table" --port 18080 --max-batch 16 2>/tmp/serve.log &
    pid=$!
    for i in $(seq 60); do curl -sf localhost:18080/health >/dev/null && break; sleep 0.5; done
    start=$(date +%s.%N)
    for i in $(seq 16); do
      curl -s -o /tmp/r$i.json -w "%{http_code}\n" localhost:18080/v1/completions \
        -d "{\"model\":\"SmolLM2-135M-Instruct\",\"prompt\":\"Request $i: the sky is\",\"max_tokens\":64}" &
    done | sort | uniq -c
    wait_end=$(date +%s.%N)
    python3 -c "
import json
r=[json.load(open(f'/tmp/r{i}.json')) for i in range(1,17)]
print('16 concurrent completions:', sum(x['usage']['completion_tokens'] for x in r), 'tokens; first:', repr(r[0]['choices'][0]['text'][:60]))"
    echo "wall $(python3 -c "print(round($wait_end-$start,2))") s"
    curl -s localhost:18080/metrics | grep -E "gemm_calls_total|tokens_total" | head -6
    kill $pid; wait $pid 2>/dev/null
    ;;
esac
