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
// Another block's split-K partials: agent-scope loads (on MI300 they may sit in another
// XCD's L2).
#define LD_PARTIAL(p) __hip_atomic_load((p), __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_AGENT)
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
#define LD_PARTIAL(p) __ldcg(p)  // another block's split-K partials: past the (incoherent) L1
// A generic pointer into shared memory as the 32-bit shared-window address that
// ldmatrix, cp.async, mbarrier and wgmma descriptors take.
__device__ __forceinline__ u32 smem_addr(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
// Programmatic dependent launch (sm_90+): wait until the kernel before this one on the
// stream has finished and its writes are visible, then let the next kernel be scheduled
// (its blocks in turn wait here). A no-op for kernels launched without the PDL attribute.
// Every kernel of ours passes it before touching anything the kernel before may write.
// The GEMM kernels (gemv, mma, qmma) request their first weights before it, so the weight
// stream starts while the predecessor drains. The contract that makes this safe: W is
// never written by the kernel right before a chained GEMM. Weights are constant in the
// runtime; the tuner's fills synchronize the stream (cuda/mod.rs `fill_random`); a
// dequantized scratch W is read by an unchained launch (`Kind::Dequant`). (An L2 bulk
// prefetch of the whole weight slice before it was tried and was slower;
// docs/PERFORMANCE.md, H200 section.)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PDL_ENTRY() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PDL_ENTRY()
#endif
#endif

// DT selects the 16-bit storage type: 0 = bf16, 1 = f16.
template <int DT> __device__ __forceinline__ float to_f32(u16 v) { return DT == 0 ? bf16_to_f32(v) : f16_to_f32(v); }
template <int DT> __device__ __forceinline__ u16 from_f32(float f) { return DT == 0 ? f32_to_bf16(f) : f32_to_f16(f); }

// The k steps of split `ks` (blockIdx.y) out of `steps` split `ksplit` ways.
__device__ __forceinline__ void split_range(int steps, int ks, int ksplit, int& s_begin, int& s_end) {
    const int per = (steps + ksplit - 1) / ksplit;
    s_begin = ks * per;
    s_end = min(steps, s_begin + per);
}

// The end of the tensor-core decode kernels (mma.cu, qmma.cu, hip/mfma.cu), whose warps
// split K inside a block and whose KSPLIT blocks of a tile split it further: `part` holds
// each warp's partial tile, [WARPS][ROWS][COLS + 1] floats, W row r and token m at [r][m]
// (rows from row0 = blockIdx.x · ROWS). Sums the warps' partials and writes Y; with
// KSPLIT > 1 each block writes its sum to its workspace slot, and the last block of the
// tile to arrive (a per-tile counter) sums all slots into Y and resets the counter so
// graph replays start from zero. Call after the block's __syncthreads.
template <int WARPS, int ROWS, int COLS, int KSPLIT, int DT>
__device__ __forceinline__ void finish_tile(const float* part, u16* __restrict__ y, int M, int N,
                                            float* __restrict__ ws, unsigned* __restrict__ counters) {
    constexpr int TILE = ROWS * COLS, THREADS = WARPS * WARP_SIZE, LD = COLS + 1;
    const int tile = blockIdx.x, ks = blockIdx.y;
    const int row0 = tile * ROWS;
    __shared__ int last;
    if (KSPLIT == 1) {
        for (int o = threadIdx.x; o < TILE; o += THREADS) {
            const int r = o % ROWS, m = o / ROWS;
            if (m < M && row0 + r < N) {
                float sum = 0.f;
#pragma unroll
                for (int q = 0; q < WARPS; q++) sum += part[(q * ROWS + r) * LD + m];
                y[(size_t)m * N + row0 + r] = from_f32<DT>(sum);
            }
        }
        return;
    }
    float* mine = ws + ((size_t)tile * KSPLIT + ks) * TILE;
    for (int o = threadIdx.x; o < TILE; o += THREADS) {
        const int r = o % ROWS, m = o / ROWS;
        float sum = 0.f;
#pragma unroll
        for (int q = 0; q < WARPS; q++) sum += part[(q * ROWS + r) * LD + m];
        mine[o] = sum;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&counters[tile], 1u) == KSPLIT - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    const float* all = ws + (size_t)tile * KSPLIT * TILE;
    for (int o = threadIdx.x; o < TILE; o += THREADS) {
        const int r = o % ROWS, m = o / ROWS;
        if (m < M && row0 + r < N) {
            float sum = 0.f;
#pragma unroll
            for (int q = 0; q < KSPLIT; q++) sum += LD_PARTIAL(all + (size_t)q * TILE + o);
            y[(size_t)m * N + row0 + r] = from_f32<DT>(sum);
        }
    }
    if (threadIdx.x == 0) counters[tile] = 0;
}

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
