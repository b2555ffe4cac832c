#!/usr/bin/env bash
# Builds llama-cpp-python (the llama.cpp reference of scripts/bench-int4-cpu.sh) from its
# PyPI source distribution into a venv under .bench/ (git-ignored). Idempotent.
# Only the CPU backend is built (native ISA, OpenMP threads, no tools/tests/server), which
# keeps the build to a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
VENV=.bench/llama-cpp-venv
# Native ISA but no AMX: on the AMX-capable Xeon VM of 2026-12-04 ggml's AMX matmul
# (`ggml_backend_amx_mul_mat`) crashed with SIGSEGV on the first evaluation; -march=native
# would compile it in, so the AMX extensions are switched off explicitly.
NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DGGML_OPENMP=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_MTMD=OFF '-DCMAKE_C_FLAGS=$NOAMX' '-DCMAKE_CXX_FLAGS=$NOAMX'"
# Rebuild when the version or the build options changed.
STAMP="$VENV/.gemmtune-build"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION $CMAKE_ARGS" ] &&
  "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
export CMAKE_BUILD_PARALLEL_LEVEL=2
"$VENV/bin/pip" install --force-reinstall --no-binary llama-cpp-python --no-cache-dir "llama-cpp-python==$VERSION" numpy
"$VENV/bin/python" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'built')"
echo "$VERSION $CMAKE_ARGS" >"$STAMP"
