// Decode/small-M GEMM on tensor cores: Y[M,N] = X[M,K] · W[N,K]^T for M <= 32,
// bf16/f16 in, f32 accumulate, with mma.sync.m16n8k16 (W rows as the A operand, the
// tokens of X as B). #include "common.cuh" is spliced in by the host.
//
// Why not CUDA cores: at M = 8 each loaded weight needs 8 FMAs plus conversions and the
// kernel becomes issue-bound (shared/reference/h100-baseline.md); one mma does 16x8x16.
//
// Fragment trick: a dot product may visit k in any order as long as A and B agree. Thread
// (g = lane/4, t = lane%4) loads 16 contiguous bytes (8 values) of W row g (and g+8) and of
// token g at k0 + 8t. Registers 0,1 of that load serve as the A fragment's k-pairs
// (2t, 2t+1) and (2t+8, 2t+9) of one mma, registers 2,3 those of a second mma, and X's
// load is split the same way for B. So every load is a 16-byte vector load straight from
// global memory, no shared-memory staging, and a warp consumes 32 k per step.
//
// A block owns MT*16 rows of W; its WARPS warps split K (block-level split-K). Per step a
// thread loads V consecutive 16-byte vectors of each of its rows (32*V values of k per
// warp step: long contiguous runs per row for DRAM locality, V loads in flight), feeding
// 2*V mma. For shapes with few row tiles (N = 1280 fills 80 of 132 SMs), KSPLIT blocks
// share a tile along K: each writes its partial tile to a workspace, and the last to
// arrive (a per-tile counter) sums them and writes Y, then resets the counter so graph
// replays start from zero.
// Host-defined: MMA_DTYPE (0 bf16, 1 f16), MMA_MT, MMA_WARPS, MMA_V, MMA_NT (n-tiles of 8
// tokens), MMA_KSPLIT. Requirements checked by the host: K % (32*V) == 0, M <= 8*MMA_NT.

// Not `volatile`: the loads are side-effect free, so the compiler may hoist the next
// step's loads above the current step's mma (volatile asm keeps program order).
__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

__device__ __forceinline__ void mma16816(float* c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
#if MMA_DTYPE == 0
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
#else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
#endif
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// The warps' partial tiles through shared memory into `finish_tile` (common.cuh).
__device__ __forceinline__ void store_tile(const float (&acc)[MMA_MT][MMA_NT][4], u16* __restrict__ y, int M, int N,
                                           float* __restrict__ ws, unsigned* __restrict__ counters) {
    constexpr int MT = MMA_MT, NT = MMA_NT, WARPS = MMA_WARPS;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    // C fragment: c0,c1 = (row g, tokens 2t, 2t+1), c2,c3 = (row g+8, same tokens).
    __shared__ float part[WARPS][MT * 16][NT * 8 + 1];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) {
            part[warp][i * 16 + g][j * 8 + 2 * t] = acc[i][j][0];
            part[warp][i * 16 + g][j * 8 + 2 * t + 1] = acc[i][j][1];
            part[warp][i * 16 + g + 8][j * 8 + 2 * t] = acc[i][j][2];
            part[warp][i * 16 + g + 8][j * 8 + 2 * t + 1] = acc[i][j][3];
        }
    __syncthreads();
    finish_tile<WARPS, MT * 16, NT * 8, MMA_KSPLIT, MMA_DTYPE>(&part[0][0][0], y, M, N, ws, counters);
}

// Zeroed accumulator tiles (mma_kernel and qmma_kernel).
__device__ __forceinline__ void zero_acc(float (&acc)[MMA_MT][MMA_NT][4]) {
#pragma unroll
    for (int i = 0; i < MMA_MT; i++)
#pragma unroll
        for (int j = 0; j < MMA_NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;
}

#if !defined(QMMA_FORMAT) && !defined(MMA_LINE)
extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)
    mma_kernel(const u16* __restrict__ x, const u16* __restrict__ w, u16* __restrict__ y, int M, int N, int K,
               float* __restrict__ ws, unsigned* __restrict__ counters) {
    constexpr int MT = MMA_MT, NT = MMA_NT, WARPS = MMA_WARPS, V = MMA_V, KSPLIT = MMA_KSPLIT;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x, ks = blockIdx.y;
    const int row0 = tile * (MT * 16);
    const int steps = K / (32 * V);
    int s_begin, s_end;
    split_range(steps, ks, KSPLIT, s_begin, s_end);

    float acc[MT][NT][4];
    zero_acc(acc);

    // Rows this thread loads (clamped: rows past N compute values that are never stored).
    const u16* wrow[MT][2];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = row0 + i * 16 + g + 8 * h;
            wrow[i][h] = w + (size_t)(r < N ? r : N - 1) * K + 8 * V * t;
        }
    const u16* xrow[NT];
    bool xok[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        int m = j * 8 + g;
        xok[j] = m < M;
        xrow[j] = x + (size_t)(xok[j] ? m : 0) * K + 8 * V * t;
    }

    // Two-stage software pipeline: the loads of step s + WARPS are in flight while the
    // tensor cores work on step s. The first step's weights are requested before
    // PDL_ENTRY: under a chained launch they stream in while the kernel before this one
    // drains (X, written by that kernel, only after it; see PDL_ENTRY, common.cuh).
    uint4 wa[MT][2][V], xb[NT][V];
    auto load_w = [&](int s, uint4 (&wd)[MT][2][V]) {
        const size_t off = (size_t)s * 32 * V;
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int v = 0; v < V; v++) wd[i][h][v] = ld_stream(wrow[i][h] + off + 8 * v);
    };
    auto load_x = [&](int s, uint4 (&xd)[NT][V]) {
        const size_t off = (size_t)s * 32 * V;
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int v = 0; v < V; v++)
                xd[j][v] = xok[j] ? __ldg((const uint4*)(xrow[j] + off + 8 * v)) : make_uint4(0, 0, 0, 0);
    };
    int s = s_begin + warp;
    if (s < s_end) load_w(s, wa);
    PDL_ENTRY();
    if (s < s_end) load_x(s, xb);
    for (; s < s_end; s += WARPS) {
        uint4 wn[MT][2][V], xn[NT][V];
        if (s + WARPS < s_end) load_w(s + WARPS, wn), load_x(s + WARPS, xn);
#pragma unroll
        for (int v = 0; v < V; v++)
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    mma16816(acc[i][j], wa[i][0][v].x, wa[i][1][v].x, wa[i][0][v].y, wa[i][1][v].y, xb[j][v].x, xb[j][v].y);
                    mma16816(acc[i][j], wa[i][0][v].z, wa[i][1][v].z, wa[i][0][v].w, wa[i][1][v].w, xb[j][v].z, xb[j][v].w);
                }
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int v = 0; v < V; v++) wa[i][h][v] = wn[i][h][v];
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int v = 0; v < V; v++) xb[j][v] = xn[j][v];
    }

    store_tile(acc, y, M, N, ws, counters);
}
#endif  // kernels/qmma.cu or kernels/mmal.cu follows when the host defines QMMA_FORMAT or MMA_LINE
