#!/usr/bin/env bash
# Standalone probes (no gemmtune): does the order of a kernel's weight loads change the HBM
# rate? Built and run on the GPU machine (it has nvcc); one device call each. stream.cu:
# GEMV rows against 8-row fragment tiles and TMA-like boxes; stream2.cu: the tiles with
# more warps and K splits; stream3.cu: the mma kernel's grid with its fragment order
# against whole 128-byte lines. Outputs: stream.txt, stream2.txt, stream3.txt.
set -euo pipefail
cd "$(dirname "$0")"
for p in ${1:-stream stream2 stream3}; do
  nvcc -O3 -std=c++17 -arch=sm_90 $p.cu -o /tmp/$p
  /tmp/$p | tee ${OUT:-/tmp}/$p.txt
done
