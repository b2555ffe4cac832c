// Decode GEMV: Y[M,N] = X[M,K] · W[N,K]^T for small M (<= 8), bf16/f16 in, f32 accumulate.
// #include "common.cuh" is spliced in by the host before compilation.
//
// Decode is bound by streaming W from HBM once. Each block owns ROWS consecutive rows of
// W; its threads split K (block-level split-K: always beat splitting K across blocks on
// the H100, see shared/reference/h100-baseline.md), each streaming 16-byte chunks with
// non-allocating read-only loads, UNROLL chunks in flight per thread. The MAXM token rows
// of X are read through the read-only path (they stay in L1/L2). Partial sums are reduced
// with warp shuffles, then across warps in shared memory.
//
// Requirements checked by the host: K % 8 == 0, 16-byte aligned rows, M <= MAXM.

__device__ __forceinline__ uint4 ld_stream(const void* p) {
#if defined(GEMMTUNE_HIP)
    return *(const uint4*)p;
#else
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
#endif
}

template <int DT>
__device__ __forceinline__ void unpack8(uint4 v, float* f) {
    u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = to_f32<DT>((u16)(w[i] & 0xffff));
        f[2 * i + 1] = to_f32<DT>((u16)(w[i] >> 16));
    }
}

template <int DT, int ROWS, int THREADS, int UNROLL, int MAXM>
__device__ __forceinline__ void gemv(const u16* __restrict__ x, const u16* __restrict__ w,
                                     u16* __restrict__ y, int M, int N, int K) {
    const int row0 = blockIdx.x * ROWS;
    const int chunks = K / 8;
    float acc[ROWS][MAXM];
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int m = 0; m < MAXM; m++) acc[r][m] = 0.f;

    // The first step's weights are requested before PDL_ENTRY: under a chained launch they
    // stream in while the kernel before this one drains (see PDL_ENTRY, common.cuh).
    uint4 wv[UNROLL][ROWS];
    auto load = [&](int c0) {
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * THREADS;
#pragma unroll
            for (int r = 0; r < ROWS; r++)
                wv[u][r] = (c < chunks && row0 + r < N) ? ld_stream(w + (size_t)(row0 + r) * K + (size_t)c * 8)
                                                       : make_uint4(0, 0, 0, 0);
        }
    };
    load(threadIdx.x);
    PDL_ENTRY();
    for (int c0 = threadIdx.x; c0 < chunks; c0 += THREADS * UNROLL) {
        if (c0 != (int)threadIdx.x) load(c0);
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * THREADS;
            if (c >= chunks) break;
            float wf[ROWS][8];
#pragma unroll
            for (int r = 0; r < ROWS; r++) unpack8<DT>(wv[u][r], wf[r]);
#pragma unroll
            for (int m = 0; m < MAXM; m++) {
                if (m < M) {
                    float xf[8];
                    unpack8<DT>(LDG((const uint4*)(x + (size_t)m * K + (size_t)c * 8)), xf);
#pragma unroll
                    for (int r = 0; r < ROWS; r++)
#pragma unroll
                        for (int i = 0; i < 8; i++) acc[r][m] = fmaf(wf[r][i], xf[i], acc[r][m]);
                }
            }
        }
    }

    // Reduce: within each warp by shuffles, then across warps through shared memory.
    constexpr int WARPS = THREADS / WARP_SIZE;
    __shared__ float part[WARPS][ROWS * MAXM];
    const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
#pragma unroll
    for (int r = 0; r < ROWS; r++)
#pragma unroll
        for (int m = 0; m < MAXM; m++) {
            float v = acc[r][m];
#pragma unroll
            for (int o = WARP_SIZE / 2; o > 0; o >>= 1) v += SHFL_XOR(v, o);
            if (lane == 0) part[warp][r * MAXM + m] = v;
        }
    __syncthreads();
    for (int t = threadIdx.x; t < ROWS * MAXM; t += THREADS) {
        const int r = t / MAXM, m = t % MAXM;
        if (m < M && row0 + r < N) {
            float s = 0.f;
#pragma unroll
            for (int i = 0; i < WARPS; i++) s += part[i][t];
            y[(size_t)m * N + row0 + r] = from_f32<DT>(s);
        }
    }
}

// One variant per compilation: the host defines GEMV_DTYPE (0 bf16, 1 f16), GEMV_ROWS,
// GEMV_THREADS, GEMV_UNROLL and GEMV_MAXM, and compiles the variants in parallel.
extern "C" __global__ void __launch_bounds__(GEMV_THREADS)
    gemv_kernel(const u16* x, const u16* w, u16* y, int M, int N, int K) {
    gemv<GEMV_DTYPE, GEMV_ROWS, GEMV_THREADS, GEMV_UNROLL, GEMV_MAXM>(x, w, y, M, N, K);
}
