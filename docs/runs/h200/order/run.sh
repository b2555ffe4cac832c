#!/usr/bin/env bash
# Does the measuring order change the 63-shape report? The committed table benched by the
# build before 7a410f7 (file order: each layer's M = 1 row right after the previous layer's
# M = 8192 row) and by 7a410f7 (lightest first), alternated twice on one machine.
# Build: main at dbba94f -> .dev/gemmtune-main, at 7a410f7 -> .dev/gemmtune
# (scripts/gpu/build.sh); carry [".dev"].
set -uo pipefail
cd "$(dirname "$0")/../../../.."
final=${OUT:-/tmp/out}; export OUT=/tmp/order; mkdir -p "$OUT" "$final"
log=$OUT/log.txt
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader >>$log
for r in 1 2; do
  for b in file lightest; do
    bin=.dev/gemmtune; [ $b = file ] && bin=.dev/gemmtune-main
    timeout 120 $bin bench --backend cuda --table tables/h200-llama-63.csv --shapes shapes/llama-h100-63.csv --budget-ms 300 -q --pdl --json $OUT/bench-$b-r$r.json | grep -E "^limits|^M |^32 <|^gate" | sed "s/^/$b r$r: /" >>$log
  done
done
echo "== end" >>$log
cp $OUT/*.json $log "$final/"
