#!/usr/bin/env bash
# SmolLM2-135M-Instruct (Q4_1 GGUF) on this CPU: prefill + 40 greedy tokens with
#   gemmtune --weights native (packed Q4_1/Q8_0, tuned table tables/cpu-smollm2-135m-q.csv),
#   gemmtune --weights f32    (weights dequantized at load, table tables/cpu-smollm2-135m.csv),
#   llama.cpp                 (llama-cpp-python from PyPI, built from source here),
# same GGUF, same 25-token prompt (no chat template, no BOS), same thread count, end of
# turn ignored so every run decodes exactly 40 tokens. Reports prompt tok/s, decode tok/s
# (39 decode steps after the prefill's token, as `generate` counts) and the wall time of
# prefill + decode, median of $RUNS runs. gemmtune native and f32 must produce the same
# 40 token ids; how far llama.cpp's (8-bit activations) follow them is reported.
#
# Runs are interleaved (round r: gemmtune native, gemmtune f32, llama.cpp, each a fresh
# process), so drifting load from other processes hits all three alike. Each process
# generates once untimed before its timed generation (gemmtune: `--warmup 1`), so both
# are timed warm; with --cold gemmtune's timed generation is its process's first
# (thread pool, scratch buffers and page mappings start cold: 15-25 ms more prefill
# here), as in the runs before 2026-11-25 12:30 UTC, while llama.cpp keeps its warm-up.
#
# Threads: all CPUs for both (gemmtune's kernels use the thread counts its table names).
# When tables/cpu-smollm2-135m.csv or -q.csv was tuned on another machine (its rows do
# not fit here), that run uses a table tuned here first into .bench/ (git-ignored).
#
# Usage: scripts/bench-int4-cpu.sh [--runs N] [--cold]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5
WARMUP=1
THREADS=$(nproc)
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --cold) WARMUP=0; shift ;;
    *) echo "usage: $0 [--runs N] [--cold]" >&2; exit 2 ;;
  esac
done
scripts/fetch-model.sh
scripts/llama-cpp-setup.sh
cargo build --release --locked -q
M=models/SmolLM2-135M-Instruct.Q4_1.gguf
P="Write a short story about a robot who learns to paint. It should be about three paragraphs long and have a happy ending."
PY=.bench/llama-cpp-venv/bin/python
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, threads $THREADS, load $(cut -d' ' -f1-3 /proc/loadavg), gemmtune warm-up generations $WARMUP"

# A committed table whose rows do not fit this machine (tuned on another CPU) would leave
# every GEMM on the default: tune one here first instead.
table_here() { # committed-table shapes-file name
  if target/release/gemmtune table validate --strict "$1" >/dev/null 2>&1; then
    echo "$1"
  else
    echo "$1 does not fit this machine: tuning .bench/$3" >&2
    target/release/gemmtune tune --shapes "$2" --out ".bench/$3" -q >&2
    echo ".bench/$3"
  fi
}
mkdir -p .bench
F32_TABLE=$(table_here tables/cpu-smollm2-135m.csv shapes/smollm2-135m.csv cpu-smollm2-135m-here.csv)
Q_TABLE=$(table_here tables/cpu-smollm2-135m-q.csv shapes/smollm2-135m-q.csv cpu-smollm2-135m-q-here.csv)

# gemmtune: `generate` prints the timings on stderr.
gemmtune_run() { # name weights table run
  target/release/gemmtune generate --model $M --weights "$2" --table "$3" \
    --prompt "$P" --max-tokens 40 --ignore-eos --ids --warmup $WARMUP >"$OUT/$1.$4.ids" 2>"$OUT/$1.$4.err"
  line=$(grep '^prefill:' "$OUT/$1.$4.err")
  # prefill: 25 tokens in 0.092 s (272.6 tok/s); decode: 40 tokens in 1.263 s (30.9 tok/s)
  echo "$line" | sed -E 's/^prefill: ([0-9]+) tokens in ([0-9.]+) s.*decode: ([0-9]+) tokens in ([0-9.]+) s.*/\1 \2 \3 \4/' >>"$OUT/$1.times"
  echo "$1 run $4: $line"
}

# llama.cpp through llama-cpp-python: the same prompt tokens, greedy argmax, 40 tokens.
cat >"$OUT/llama.py" <<'PYEOF'
import sys, time
import numpy as np
import llama_cpp
from llama_cpp import Llama
model, prompt, threads, run, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=512, n_batch=512, verbose=False)
toks = llm.tokenize(prompt.encode(), add_bos=False, special=False)
vocab = llm.n_vocab()

def last_logits():
    # Without logits_all, llama-cpp-python 0.3.x keeps only the context's last logits.
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))

def generate():
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(toks)
    t1 = time.perf_counter()
    ids = []
    while True:
        nxt = int(np.argmax(last_logits()))
        ids.append(nxt)
        if len(ids) == 40:
            break
        llm.eval([nxt])
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, ids

generate()  # warm-up
pre, dec, ids = generate()
with open(f"{out}/llama.cpp.times", "a") as f:
    f.write(f"{len(toks)} {pre:.6f} 40 {dec:.6f}\n")
with open(f"{out}/llama.cpp.{run}.ids", "w") as g:
    g.write(" ".join(map(str, ids)) + " \n")
print(f"llama.cpp run {run}: prefill: {len(toks)} tokens in {pre:.3f} s ({len(toks) / pre:.1f} tok/s); "
      f"decode: 40 tokens in {dec:.3f} s ({39 / dec:.1f} tok/s)")
PYEOF

for run in $(seq "$RUNS"); do
  gemmtune_run gemmtune-native native $Q_TABLE "$run"
  gemmtune_run gemmtune-f32 f32 $F32_TABLE "$run"
  "$PY" "$OUT/llama.py" "$M" "$P" "$THREADS" "$run" "$OUT"
done

# gemmtune native and f32 must produce the same tokens (the weights dequantize exactly);
# llama.cpp quantizes activations to 8 bits, so it follows them only for a while.
ref=$(cat "$OUT/gemmtune-f32.1.ids")
for f in "$OUT"/gemmtune-*.ids; do
  if [ "$(cat "$f")" != "$ref" ]; then
    echo "token ids differ: $(basename "$f"): $(cat "$f") vs gemmtune-f32: $ref" >&2
    exit 1
  fi
done
python3 - "$ref" "$(cat "$OUT/llama.cpp.1.ids")" <<'PYEOF'
import sys
a, b = sys.argv[1].split(), sys.argv[2].split()
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"tokens: gemmtune native = gemmtune f32 (all 40); llama.cpp matches them for the first {same}")
PYEOF
echo
printf '%-16s %8s %14s %14s %16s\n' runtime runs "prompt tok/s" "decode tok/s" "prefill+40 (s)"
for name in gemmtune-native gemmtune-f32 llama.cpp; do
  python3 - "$OUT/$name.times" "$name" <<'PYEOF'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = statistics.median
prompt = med(r[0] / r[1] for r in rows)
decode = med((r[2] - 1) / r[3] for r in rows)
total = med(r[1] + r[3] for r in rows)
print(f"{sys.argv[2]:<16} {len(rows):>8} {prompt:>14.1f} {decode:>14.1f} {total:>16.3f}")
PYEOF
done
# Round by round (each round runs the three back to back, so they see the same load).
python3 - "$OUT/gemmtune-native.times" "$OUT/llama.cpp.times" <<'PYEOF'
import sys
t = [[float(l.split()[1]) + float(l.split()[3]) for l in open(f) if l.strip()] for f in sys.argv[1:]]
wins = sum(a < b for a, b in zip(*t))
print(f"rounds where gemmtune native (prefill+40) beat llama.cpp: {wins} of {len(t[0])}")
PYEOF
