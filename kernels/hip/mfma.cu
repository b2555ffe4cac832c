// Decode/small-M GEMM on AMD matrix cores (CDNA2/3/4: gfx90a, gfx94x, gfx950):
// Y[M,N] = X[M,K] · W[N,K]^T for M <= 32, bf16/f16 in, f32 accumulate, with
// v_mfma_f32_16x16x16{bf16_1k,f16} (W rows as the A operand, the tokens of X as B). The
// HIP counterpart of kernels/mma.cu (mma.sync is NVIDIA-only, hence its own file);
// #include "common.cuh" is spliced in by the host before compilation.
//
// Operand layout of the 16x16x16 MFMA on a 64-lane wavefront (AMD CDNA3 ISA guide,
// "Matrix Arithmetic Instructions"): lane l holds A[l%16][4(l/16) + i], B[4(l/16) + i][l%16]
// and D[4(l/16) + i][l%16] for i = 0..3.
//
// Fragment trick (as in mma.cu): a dot product may visit k in any order as long as A and
// B agree. Lane l (W row / token r = l%16, group q = l/16) loads 16 contiguous bytes
// (8 values) of W row r and of token r at k0 + 8q: values 0..3 are one MFMA's A (and B)
// fragment, values 4..7 a second MFMA's. So every load is a 16-byte vector load straight
// from global memory, no LDS staging, and a wavefront consumes 32 k per step (32*V with
// V consecutive vectors per lane).
//
// A block owns MT*16 rows of W and NT*16 tokens; its WARPS wavefronts split K (block-level
// split-K) and reduce through LDS. KSPLIT blocks share a tile along K: each writes its
// partial tile to a workspace, the last to arrive (a per-tile counter) sums them and writes
// Y, then resets the counter so graph replays start from zero. The workspace is read with
// agent-scope atomic loads: on MI300 the partials may come from another XCD's L2.
// Host-defined: MFMA_DTYPE (0 bf16, 1 f16), MFMA_MT, MFMA_WARPS, MFMA_V, MFMA_NT (16-token
// tiles), MFMA_KSPLIT, GEMMTUNE_HIP, WARP_SIZE (64). Checked by the host: K % (32*V) == 0,
// M <= 16*NT, the device is gfx90a/gfx94x/gfx950.

typedef float f32x4 __attribute__((ext_vector_type(4)));
typedef short s16x4 __attribute__((ext_vector_type(4)));
typedef _Float16 f16x4 __attribute__((ext_vector_type(4)));
typedef u32 u32x2 __attribute__((ext_vector_type(2)));

// One 16x16x16 MFMA; a0,a1 (b0,b1) hold four consecutive 16-bit values, lowest first.
__device__ __forceinline__ f32x4 mfma16(f32x4 c, u32 a0, u32 a1, u32 b0, u32 b1) {
    const u32x2 a = {a0, a1}, b = {b0, b1};
#if MFMA_DTYPE == 0
    return __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(__builtin_bit_cast(s16x4, a), __builtin_bit_cast(s16x4, b), c, 0, 0, 0);
#else
    return __builtin_amdgcn_mfma_f32_16x16x16f16(__builtin_bit_cast(f16x4, a), __builtin_bit_cast(f16x4, b), c, 0, 0, 0);
#endif
}

extern "C" __global__ void __launch_bounds__(MFMA_WARPS * WARP_SIZE)
    mfma_kernel(const u16* __restrict__ x, const u16* __restrict__ w, u16* __restrict__ y, int M, int N, int K,
                float* __restrict__ ws, unsigned* __restrict__ counters) {
    constexpr int MT = MFMA_MT, NT = MFMA_NT, WARPS = MFMA_WARPS, V = MFMA_V, KSPLIT = MFMA_KSPLIT;
    const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    const int r = lane % 16, q = lane / 16;
    const int tile = blockIdx.x, ks = blockIdx.y;
    const int row0 = tile * (MT * 16);
    const int steps = K / (32 * V);
    int s_begin, s_end;
    split_range(steps, ks, KSPLIT, s_begin, s_end);

    f32x4 acc[MT][NT];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[i][j] = (f32x4){0.f, 0.f, 0.f, 0.f};

    // Rows this lane loads (clamped: rows past N compute values that are never stored).
    const u16* wrow[MT];
#pragma unroll
    for (int i = 0; i < MT; i++) {
        const int row = row0 + i * 16 + r;
        wrow[i] = w + (size_t)(row < N ? row : N - 1) * K + 8 * V * q;
    }
    const u16* xrow[NT];
    bool xok[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int m = j * 16 + r;
        xok[j] = m < M;
        xrow[j] = x + (size_t)(xok[j] ? m : 0) * K + 8 * V * q;
    }

    // Two-stage software pipeline: the loads of step s + WARPS are in flight while the
    // matrix cores work on step s.
    uint4 wa[MT][V], xb[NT][V];
    auto load = [&](int s, uint4 (&wd)[MT][V], uint4 (&xd)[NT][V]) {
        const size_t off = (size_t)s * 32 * V;
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int v = 0; v < V; v++) wd[i][v] = *(const uint4*)(wrow[i] + off + 8 * v);
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int v = 0; v < V; v++) xd[j][v] = xok[j] ? *(const uint4*)(xrow[j] + off + 8 * v) : make_uint4(0, 0, 0, 0);
    };
    int s = s_begin + warp;
    if (s < s_end) load(s, wa, xb);
    for (; s < s_end; s += WARPS) {
        uint4 wn[MT][V], xn[NT][V];
        if (s + WARPS < s_end) load(s + WARPS, wn, xn);
#pragma unroll
        for (int v = 0; v < V; v++)
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    acc[i][j] = mfma16(acc[i][j], wa[i][v].x, wa[i][v].y, xb[j][v].x, xb[j][v].y);
                    acc[i][j] = mfma16(acc[i][j], wa[i][v].z, wa[i][v].w, xb[j][v].z, xb[j][v].w);
                }
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int v = 0; v < V; v++) wa[i][v] = wn[i][v];
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int v = 0; v < V; v++) xb[j][v] = xn[j][v];
    }

    // D fragment: element e of lane (r, q) is W row 4q + e of the tile, token r.
    __shared__ float part[WARPS][MT * 16][NT * 16 + 1];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) part[warp][i * 16 + 4 * q + e][j * 16 + r] = acc[i][j][e];
    __syncthreads();
    finish_tile<WARPS, MT * 16, NT * 16, KSPLIT, MFMA_DTYPE>(&part[0][0][0], y, M, N, ws, counters);
}
