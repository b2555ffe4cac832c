#!/usr/bin/env bash
# Standalone probe (no gemmtune): does the order of a kernel's weight loads change the HBM
# rate? Built and run on the GPU machine (it has nvcc). Output: stream.txt.
set -euo pipefail
cd "$(dirname "$0")"
nvcc -O3 -std=c++17 -arch=sm_90 stream.cu -o /tmp/stream
/tmp/stream | tee ${OUT:-/tmp}/stream.txt
