#!/usr/bin/env bash
# Standalone probes (no gemmtune): does the order of a kernel's weight loads change the HBM
# rate? Built and run on the GPU machine (it has nvcc); each probe was one device call
# (stream.cu says what each times). Outputs: stream.txt, stream2.txt, stream3.txt.
set -euo pipefail
cd "$(dirname "$0")"
nvcc -O3 -std=c++17 -arch=sm_90 stream.cu -o /tmp/stream
for p in ${1:-1 2 3}; do
  /tmp/stream $p | tee ${OUT:-/tmp}/stream$([ $p = 1 ] || echo $p).txt
done
