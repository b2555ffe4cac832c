#!/usr/bin/env bash
# Builds what the GPU machine runs (it has no Rust): the release binary and the GPU test
# binary, stripped, into .dev/ (ignored by git; pass `.dev` as the device tool's carry).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked
mkdir -p .dev
strip -o .dev/gemmtune target/release/gemmtune
pwd > .dev/built-in  # the tests find their data under this path (CARGO_MANIFEST_DIR)
# The test binaries run there: tests/cuda.rs (backend + runtime), tests/gptq.rs (GPTQ on the
# GPU) and tests/kernels.rs (the CPU kernels on that host's AVX-512 Xeon).
for t in cuda gptq kernels; do
  bin=$(cargo test --release --locked --test $t --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import sys,json
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="'$t'" and m.get("executable"): print(m["executable"])')
  strip -o .dev/$t-tests "$bin"
done
ls -la .dev
