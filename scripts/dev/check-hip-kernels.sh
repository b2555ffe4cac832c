#!/usr/bin/env bash
# Compiles our HIP kernels (kernels/common.cuh + gemv.cu, util.cu, hip/mfma.cu) for AMD
# targets with a stock clang, the way hipRTC sees them (header-free, __HIPCC_RTC__), to
# catch compile errors without an AMD GPU. Not a test: needs clang with the AMDGPU target
# (e.g. Debian's clang-19) and the HIP headers of a ROCm install or of the ROCm/HIP +
# ROCm/clr sources (`include/hip` and `hipamd/include/hip` merged into one `hip/`).
#
#   scripts/dev/check-hip-kernels.sh /opt/rocm/include [clang-19]
#
# Prints, per variant and target, "ok" with VGPR count, spills and LDS bytes.
set -euo pipefail
inc=${1:?usage: $0 <dir holding hip/hip_runtime.h> [clang]}
cc=${2:-clang-19}
root="$(cd "$(dirname "$0")/../.." && pwd)"
k="$root/kernels"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# What hipRTC provides before the program: sized integer types, the device runtime.
cat > "$work/prelude.h" <<'H'
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;
typedef long long int64_t; typedef unsigned long long uint64_t; typedef int int32_t;
typedef unsigned int uint32_t; typedef unsigned short uint16_t; typedef short int16_t;
typedef unsigned char uint8_t; typedef signed char int8_t; typedef unsigned int uint;
H
# hip/hip_version.h is generated when ROCm is built: a source checkout lacks it, so a stub
# stands behind the given include directory (a real one there wins).
mkdir -p "$work/fallback/hip"
printf '#pragma once\n#define HIP_VERSION_MAJOR 7\n#define HIP_VERSION_MINOR 0\n#define HIP_VERSION_PATCH 0\n#define HIP_VERSION (HIP_VERSION_MAJOR * 10000000 + HIP_VERSION_MINOR * 100000 + HIP_VERSION_PATCH)\n' \
  > "$work/fallback/hip/hip_version.h"
pre=(-include "$work/prelude.h" -include __clang_hip_runtime_wrapper.h -include hip/hip_runtime.h
     -include hip/amd_detail/device_library_decls.h -include hip/amd_detail/amd_hip_atomic.h
     -include hip/amd_detail/amd_warp_functions.h -include hip/amd_detail/amd_device_functions.h)

check() { # name arch source defines...
  local name=$1 arch=$2 src=$3; shift 3
  local f="$work/$name.hip"
  : > "$f"
  for d in "$@"; do echo "#define ${d%%=*} ${d#*=}" >> "$f"; done
  cat "$k/common.cuh" "$src" >> "$f"
  if "$cc" -x hip --cuda-device-only --offload-arch="$arch" -nogpulib -nogpuinc -D__HIPCC_RTC__ -I"$inc" -I"$work/fallback" \
      "${pre[@]}" -O3 -std=c++17 -S -o "$work/$name.s" "$f" 2> "$work/$name.log"; then
    local v s l
    v=$(grep -m1 '\.vgpr_count:' "$work/$name.s" | awk '{print $2}')
    s=$(grep -m1 '\.vgpr_spill_count:' "$work/$name.s" | awk '{print $2}')
    l=$(grep -m1 '\.group_segment_fixed_size:' "$work/$name.s" | awk '{print $2}')
    echo "ok    $name ($arch): vgprs $v, spills $s, LDS $l bytes"
  else
    echo "FAIL  $name ($arch)"; cat "$work/$name.log"; exit 1
  fi
}

for arch in gfx90a gfx942; do
  check util_$arch $arch "$k/util.cu" GEMMTUNE_HIP=1 WARP_SIZE=64
  for dt in 0 1; do
    check gemv_small_${dt}_$arch $arch "$k/gemv.cu" GEMMTUNE_HIP=1 WARP_SIZE=64 GEMV_DTYPE=$dt GEMV_ROWS=1 GEMV_THREADS=128 GEMV_UNROLL=1 GEMV_MAXM=1
    check gemv_large_${dt}_$arch $arch "$k/gemv.cu" GEMMTUNE_HIP=1 WARP_SIZE=64 GEMV_DTYPE=$dt GEMV_ROWS=4 GEMV_THREADS=256 GEMV_UNROLL=4 GEMV_MAXM=4
    check mfma_small_${dt}_$arch $arch "$k/hip/mfma.cu" GEMMTUNE_HIP=1 WARP_SIZE=64 MFMA_DTYPE=$dt MFMA_MT=1 MFMA_WARPS=2 MFMA_V=1 MFMA_NT=1 MFMA_KSPLIT=1
    check mfma_large_${dt}_$arch $arch "$k/hip/mfma.cu" GEMMTUNE_HIP=1 WARP_SIZE=64 MFMA_DTYPE=$dt MFMA_MT=2 MFMA_WARPS=8 MFMA_V=4 MFMA_NT=2 MFMA_KSPLIT=8
  done
done
# RDNA (wave32): the GEMV and the helpers only.
check util_gfx1100 gfx1100 "$k/util.cu" GEMMTUNE_HIP=1 WARP_SIZE=32
check gemv_gfx1100 gfx1100 "$k/gemv.cu" GEMMTUNE_HIP=1 WARP_SIZE=32 GEMV_DTYPE=0 GEMV_ROWS=4 GEMV_THREADS=256 GEMV_UNROLL=4 GEMV_MAXM=4
