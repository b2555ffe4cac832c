#!/usr/bin/env bash
# Compiles every CUDA kernel source gemmtune builds at run time (all variants of our GEMM
# families, both 16-bit types, both int4 formats, the runtime's and utility kernels) for
# sm_90 with NVRTC, on a machine without a GPU: NVRTC needs no driver. Uses the NVRTC of
# the `nvidia-cuda-nvrtc` wheel (the version the H100/H200 hosts run), fetched from PyPI
# into target/nvrtc once. Not part of the test command (CI has no network beyond the
# registries' packages it builds with, and no CUDA); run it before a GPU session.
# NVRTC_CHECK_ONLY=<substring> compiles only the modules whose name contains it.
# NVRTC_PTXAS_INFO=1 prints each module's registers, spills and shared memory (ptxas -v).
# NVRTC_CUBIN_DIR=<dir> writes each module's CUBIN there; with NVRTC_SASS=1 also its SASS
# (<name>.sass, by cuobjdump/nvdisasm from their PyPI wheels, fetched into target/nvrtc).
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
if [ -n "${NVRTC_SASS:-}" ] && [ -n "${NVRTC_CUBIN_DIR:-}" ]; then
  tools=target/nvrtc/tools
  if [ ! -x "$tools/nvidia/cu13/bin/nvdisasm" ]; then
    mkdir -p "$tools"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tools" nvidia-cuda-cuobjdump==13.2.86 nvidia-cuda-nvdisasm==13.5.37
    for w in "$tools"/*.whl; do (cd "$tools" && python3 -m zipfile -e "$(basename "$w")" .); done
    chmod +x "$tools"/nvidia/cu13/bin/*
  fi
  for c in "$NVRTC_CUBIN_DIR"/*.cubin; do
    PATH="$PWD/$tools/nvidia/cu13/bin:$PATH" cuobjdump -sass "$c" >"${c%.cubin}.sass"
  done
  echo "SASS written next to the CUBINs in $NVRTC_CUBIN_DIR"
fi
