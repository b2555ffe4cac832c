#!/usr/bin/env bash
# Two builds of gemmtune re-timing the same table on the same shapes, alternated (A B A B
# ...), our kernels chained (--pdl): a kernel change measured against the build before it
# within one call, so clock and run-to-run drift hit both alike.
# Usage: scripts/gpu/ab-bench.sh <binary A> <binary B> <table> <shapes> [rounds] [extra bench flags]
# Writes $OUT/ab-<A>-r<round>.json and $OUT/ab-<B>-r<round>.json (A, B: the binaries' file
# names) and prints each run's group lines; `scripts/dev/decode-fit.py` reads the JSONs.
set -uo pipefail
cd "$(dirname "$0")/../.."
a=${1:?binary A} b=${2:?binary B} table=${3:?table} shapes=${4:?shapes}
rounds=${5:-2}; shift 5 2>/dev/null || shift $#
out=${OUT:-/tmp/out}; mkdir -p "$out"
for round in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    name=$(basename "$bin")
    echo "== $name round $round"
    timeout 120 "$bin" bench --backend cuda --table "$table" --shapes "$shapes" --budget-ms 200 -q --pdl "$@" \
      --json "$out/ab-$name-r$round.json" 2>&1 | grep -E "shapes:|gate"
  done
done
