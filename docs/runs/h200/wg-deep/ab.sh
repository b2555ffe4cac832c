#!/usr/bin/env bash
# The decode-27 A/B of the same session (three calls on one warm machine, run by hand as
# below): each build tunes the 27 decode shapes, then each build benches its own table,
# alternated over two rounds. .dev/gemmtune: main at 1b249ee; .dev/gemmtune-wgpp: branch
# wg-pingpong at a429588 (TMA form with 12 and 16 stages). Tables: d27-main.csv, d27-wgpp.csv.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
out=${OUT:-/tmp/out}; d=docs/runs/h200/wg-deep
.dev/gemmtune tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $out/d27-main.csv --budget-ms 250 --pdl -q
.dev/gemmtune-wgpp tune --backend cuda --shapes scripts/gpu/decode-27.csv --out $out/d27-wgpp.csv --budget-ms 250 --pdl -q
for r in 1 2; do
  .dev/gemmtune bench --backend cuda --table $d/d27-main.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl | grep "^M <= 32"
  .dev/gemmtune-wgpp bench --backend cuda --table $d/d27-wgpp.csv --shapes scripts/gpu/decode-27.csv --budget-ms 200 -q --pdl --json $out/bench-d27-wgpp-r$r.json | grep "^M <= 32"
done
