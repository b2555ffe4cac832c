// Shared helpers for gemmtune's run-time compiled kernels (NVRTC for CUDA, hipRTC for
// ROCm). Header-free on purpose: NVRTC in CUDA 13.0 does not find cuda_bf16.h /
// cuda_fp16.h without the toolkit's include path, and hipRTC gets no standard headers, so
// 16-bit values travel as raw `unsigned short` and are converted by hand (round to
// nearest even, like the host side). The host defines GEMMTUNE_HIP (and WARP_SIZE, the
// device's wavefront width) when compiling with hipRTC; the few spots where CUDA and HIP
// differ are the macros below, each kernel file is otherwise the same for both.
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#if defined(GEMMTUNE_HIP)
#ifndef WARP_SIZE
#error "the host defines WARP_SIZE (64 on CDNA, 32 on RDNA)"
#endif
__device__ __forceinline__ float bf16_to_f32(u16 v) { return __uint_as_float(((u32)v) << 16); }
__device__ __forceinline__ float f16_to_f32(u16 v) { return (float)__builtin_bit_cast(_Float16, v); }
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
    return (u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ u16 f32_to_f16(float f) { return __builtin_bit_cast(u16, (_Float16)f); }
#define SHFL_XOR(v, o) __shfl_xor((v), (o))
#define LDG(p) (*(p))
#define PDL_ENTRY()
#else
#define WARP_SIZE 32
__device__ __forceinline__ float bf16_to_f32(u16 v) { return __uint_as_float(((u32)v) << 16); }
__device__ __forceinline__ float f16_to_f32(u16 v) {
    float f;
    asm("{ .reg .b16 h; mov.b16 h, %1; cvt.f32.f16 %0, h; }" : "=f"(f) : "h"(v));
    return f;
}
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u16 r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
    return r;
}
__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 r;
    asm("{ .reg .b16 h; cvt.rn.f16.f32 h, %1; mov.b16 %0, h; }" : "=h"(r) : "f"(f));
    return r;
}

#define SHFL_XOR(v, o) __shfl_xor_sync(0xffffffffu, (v), (o))
#define LDG(p) __ldg(p)
// Programmatic dependent launch (sm_90+): wait until the kernel before this one on the
// stream has finished and its writes are visible, then let the next kernel be scheduled
// (its blocks in turn wait here). A no-op for kernels launched without the PDL attribute.
// Every kernel of ours starts with it, since the host may launch any of them with PDL.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PDL_ENTRY() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PDL_ENTRY()
#endif
#endif

// DT selects the 16-bit storage type: 0 = bf16, 1 = f16.
template <int DT> __device__ __forceinline__ float to_f32(u16 v) { return DT == 0 ? bf16_to_f32(v) : f16_to_f32(v); }
template <int DT> __device__ __forceinline__ u16 from_f32(float f) { return DT == 0 ? f32_to_bf16(f) : f32_to_f16(f); }

// SplitMix64 finaliser and the value mapping of src/random.rs, bit for bit: element i
// of an operand drawn with `seed` is uniform in [-1, 1) from 24 random bits.
__device__ __forceinline__ u64 mix(u64 z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
__device__ __forceinline__ float rand_value(u64 seed, u64 i) {
    u32 bits = (u32)(mix(seed ^ mix(i)) >> 40);
    return (float)bits * (1.0f / 8388608.0f) - 1.0f;
}
