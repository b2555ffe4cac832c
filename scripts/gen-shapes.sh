#!/usr/bin/env bash
# Regenerates the shipped shape files from shapes/configs/ (each file records this command).
set -euo pipefail
cd "$(dirname "$0")/.."
g=${GEMMTUNE:-target/release/gemmtune}
$g profile --model shapes/configs/llama-3.1-8b.json --tp 1 --out shapes/llama-3.1-8b-tp1.csv
$g profile --model shapes/configs/llama-3.1-70b.json --tp 8 --out shapes/llama-3.1-70b-tp8.csv
$g profile --model shapes/configs/llama-3.1-405b.json --tp 8 --out shapes/llama-3.1-405b-tp8.csv
$g profile --model shapes/configs/mistral-7b-v0.3.json --tp 1 --out shapes/mistral-7b-v0.3.csv
$g profile --model shapes/configs/qwen2.5-7b.json --tp 1 --out shapes/qwen2.5-7b.csv
$g profile --model shapes/configs/mixtral-8x7b.json --tp 2 --out shapes/mixtral-8x7b-tp2.csv
# The CPU runtime's shapes: f32, GGUF layout (separate q/k/v and gate/up), small batches.
$g profile --model shapes/configs/smollm2-135m.json --fuse separate --dtype f32 --device cpu --max-batch 8 --prompt-len 16,128,512 --out shapes/smollm2-135m.csv
