#!/usr/bin/env bash
# The test command (README, .ci/run): fetches the real model, prepares the Python side of
# the HTTP tests (the official `openai` client), then runs the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
if ! target/pyenv/bin/python -c "import openai" 2>/dev/null; then
  python3 -m venv target/pyenv
  target/pyenv/bin/pip install --quiet openai==3.57.0
fi
export GEMMTUNE_TEST_PYTHON=target/pyenv/bin/python
cargo test --release --locked "$@"
# The CPU performance gate against the committed baseline (reports in target/ci-bench/).
scripts/ci-bench.sh
