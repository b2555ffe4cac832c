#!/usr/bin/env bash
# Builds what the GPU machine runs (it has no Rust): the release binary and the GPU test
# binary, stripped, into .dev/ (ignored by git; pass `.dev` as the device tool's carry).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked
mkdir -p .dev
strip -o .dev/gemmtune target/release/gemmtune
test_bin=$(cargo test --release --locked --test cuda --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="cuda" and m.get("executable"): print(m["executable"])')
strip -o .dev/cuda-tests "$test_bin"
ls -la .dev
