#!/usr/bin/env bash
# CI performance gate on the CPU: tune a few SmolLM2 shapes on this machine, bench them and
# compare the tuned/default speedups (ratios measured within one run, robust to a machine
# that is uniformly slower or faster) with the committed baseline report. A real regression
# of the CPU kernels (e.g. the decode kernel losing its SIMD path) fails; noise does not.
# Reports (Markdown, JSON, JUnit, SVG) land in target/ci-bench/.
# Regenerate the baseline: scripts/ci-bench.sh --update-baseline
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
g=target/release/gemmtune
out=target/ci-bench
mkdir -p "$out"
$g tune --shapes shapes/ci-bench.csv --out "$out/table.csv" --force --budget-ms 150 -q
if [ "${1:-}" = "--update-baseline" ]; then
  $g bench --table "$out/table.csv" --shapes shapes/ci-bench.csv --budget-ms 300 -q --json docs/ci/bench-baseline.json
  exit 0
fi
$g bench --table "$out/table.csv" --shapes shapes/ci-bench.csv --budget-ms 300 -q \
  --baseline docs/ci/bench-baseline.json --gate-on speedup --max-regression 40% \
  --format md,json,junit,svg --out "$out"
