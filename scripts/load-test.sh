#!/usr/bin/env bash
# Load and abuse test of `gemmtune serve` on loopback (docs/PERFORMANCE.md has the figures):
# starts a server on a free port, runs tests/py/load_test.py against it, stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh
cargo build --release --locked -q
log=$(mktemp)
target/release/gemmtune serve --model models/SmolLM2-135M-Instruct.Q4_1.gguf --table tables/cpu-smollm2-135m.csv \
  --port 0 --max-batch 16 --queue 32 2> "$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "on http://" "$log" && break; sleep 0.1; done
addr=$(grep -o "http://[0-9.:]*" "$log" | head -1 | sed 's#http://##')
python3 tests/py/load_test.py "${addr%:*}" "${addr##*:}" SmolLM2-135M-Instruct "$pid"
