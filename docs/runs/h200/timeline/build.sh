#!/usr/bin/env bash
# Builds one timeline binary per kernel variant into .dev/timeline$SUFFIX (on the dev
# machine, with scripts/dev/nvcc.sh; the GPU machine runs them: run.sh). KERNELS=<dir>
# builds against another tree's kernels/ (e.g. a worktree of main) to compare versions.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../../.." && pwd)"
out=$root/.dev/timeline${SUFFIX:-}
kdir=${KERNELS:-$root/kernels}
mkdir -p "$out"
lib=$root/target/nvcc/nvidia/cu13/lib
build() {  # name, defines...
  local name=$1; shift
  "$root/scripts/dev/nvcc.sh" -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -L"$lib" -I"$kdir" "$@" "$root/docs/runs/h200/timeline/timeline.cu" -o "$out/$name" -Xptxas -v 2>&1 | grep -E "Used [0-9]+ registers" | grep -v "Used 12 reg" | sed "s/^/$name: /"
}
build gemv_r4_t256_u1 -DFAMILY=1 -DGEMV_ROWS=4 -DGEMV_THREADS=256 -DGEMV_UNROLL=1 -DGEMV_MAXM=1 &
build gemv_r4_t256_u2 -DFAMILY=1 -DGEMV_ROWS=4 -DGEMV_THREADS=256 -DGEMV_UNROLL=2 -DGEMV_MAXM=1 &
build gemv_r2_t256_u1 -DFAMILY=1 -DGEMV_ROWS=2 -DGEMV_THREADS=256 -DGEMV_UNROLL=1 -DGEMV_MAXM=1 &
build mma_mt1_w8_v1_k8 -DFAMILY=2 -DMMA_MT=1 -DMMA_WARPS=8 -DMMA_V=1 -DMMA_NT=1 -DMMA_KSPLIT=8 &
wait
build mmal_mt1_w16_k1 -DFAMILY=3 -DMMA_MT=1 -DMMA_WARPS=16 -DMMA_V=2 -DMMA_NT=1 -DMMA_KSPLIT=1 &
build mmal_mt2_w8_k2 -DFAMILY=3 -DMMA_MT=2 -DMMA_WARPS=8 -DMMA_V=2 -DMMA_NT=1 -DMMA_KSPLIT=2 &
build mmal_mt1_w8_k1 -DFAMILY=3 -DMMA_MT=1 -DMMA_WARPS=8 -DMMA_V=2 -DMMA_NT=1 -DMMA_KSPLIT=1 &
build mmal_mt1_w8_k4 -DFAMILY=3 -DMMA_MT=1 -DMMA_WARPS=8 -DMMA_V=2 -DMMA_NT=1 -DMMA_KSPLIT=4 &
wait
build wgt_n32_s16_k4 -DFAMILY=5 -DWG_N=32 -DWG_WGS=1 -DWG_MT=1 -DWG_STAGES=16 -DCLUSTER_K=4 &
build wgt_n32_s16_k2 -DFAMILY=5 -DWG_N=32 -DWG_WGS=1 -DWG_MT=1 -DWG_STAGES=16 -DCLUSTER_K=2 &
build wgt_n32_s12_k1 -DFAMILY=5 -DWG_N=32 -DWG_WGS=1 -DWG_MT=1 -DWG_STAGES=12 -DCLUSTER_K=1 &
build wg_n32_s8_k8 -DFAMILY=4 -DWG_N=32 -DWG_WGS=1 -DWG_MT=1 -DWG_STAGES=8 -DCLUSTER_K=8 &
wait
