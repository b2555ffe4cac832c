#!/usr/bin/env bash
# The test command (README, .ci/run): builds and runs the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
cargo test --release --locked "$@"
