#!/usr/bin/env bash
# On the GPU machine (one call): the chained pure-load probe (stream.cu, built on the dev
# machine with scripts/dev/nvcc.sh into .dev/stream-chain), then the committed table's 27
# decode rows benched on the same host, so the probe's floor and the kernels compare.
set -uo pipefail
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader
.dev/stream-chain | tee $OUT/stream.txt
.dev/gemmtune bench --backend cuda --table tables/h200-llama-63.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $OUT/dec.json 2>&1 | tail -40
