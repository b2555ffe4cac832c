#!/usr/bin/env bash
# Compiles every CUDA kernel source gemmtune builds at run time (all variants of our GEMM
# families, both 16-bit types, both int4 formats, the runtime's and utility kernels) for
# sm_90 with NVRTC, on a machine without a GPU: NVRTC needs no driver. Uses the NVRTC of
# the `nvidia-cuda-nvrtc` wheel (the version the H100/H200 hosts run), fetched from PyPI
# into target/nvrtc once. Not part of the test command (CI has no network beyond the
# registries' packages it builds with, and no CUDA); run it before a GPU session.
# NVRTC_CHECK_ONLY=<substring> compiles only the modules whose name contains it.
# NVRTC_PTXAS_INFO=1 prints each module's registers, spills and shared memory (ptxas -v).
set -euo pipefail
cd "$(dirname "$0")/../.."
ver=${NVRTC_VERSION:-13.0.88}
lib=target/nvrtc/$ver/nvidia/cu13/lib
if [ ! -e "$lib/libnvrtc.so.13" ]; then
  mkdir -p "target/nvrtc/$ver"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "target/nvrtc/$ver" "nvidia-cuda-nvrtc==$ver"
  (cd "target/nvrtc/$ver" && python3 -m zipfile -e nvidia_cuda_nvrtc-*.whl .)
  ln -sf libnvrtc.so.13 "$lib/libnvrtc.so"
fi
LD_LIBRARY_PATH="$PWD/$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  cargo test --release --locked --lib nvrtc_compiles_every_kernel_for_sm90 -- --ignored --nocapture
