#!/usr/bin/env bash
# The main job end to end on the embedded CPU backend: tune the SmolLM2-135M shapes with a
# short budget, write a table, show it, and run every shape through the dispatcher
# (outputs checked against the f64 reference), including batch sizes the table lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
bin=target/release/gemmtune
table=${GEMMTUNE_DEMO_TABLE:-target/demo/smollm2-135m-cpu.csv}
mkdir -p "$(dirname "$table")"
"$bin" backends
"$bin" tune --shapes shapes/smollm2-135m.csv --out "$table" --budget-ms "${GEMMTUNE_DEMO_BUDGET_MS:-60}" --force
"$bin" table show "$table"
"$bin" dispatch --table "$table" --shapes shapes/smollm2-135m.csv --extra-m 3,6,16 --record target/demo/unseen.csv
