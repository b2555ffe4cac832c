#!/usr/bin/env bash
# nvcc on a machine without a GPU or a CUDA toolkit: the compiler, its front-end headers,
# the runtime headers and NVVM from their PyPI wheels (the CUDA 13.0 of the GPU hosts),
# fetched into target/nvcc once. For standalone probes (docs/runs/*/access-pattern) that
# are built and run on the GPU machine: check that they compile before spending device
# time. Arguments go to nvcc, e.g.
#   scripts/dev/nvcc.sh -O3 -std=c++17 -arch=sm_90 -c docs/runs/h200/access-pattern/stream.cu -o /tmp/stream.o
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir=$root/target/nvcc
cuda=$dir/nvidia/cu13
if [ ! -x "$cuda/nvvm/bin/cicc" ]; then
  mkdir -p "$dir"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-nvvm==13.0.88
  for w in "$dir"/*.whl; do (cd "$dir" && python3 -m zipfile -e "$(basename "$w")" .); done
  chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/*
fi
exec "$cuda/bin/nvcc" -I"$cuda/include" "$@"
