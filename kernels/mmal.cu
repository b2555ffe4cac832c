// The tensor-core decode GEMM of mma.cu with the weights read in whole 128-byte lines
// (`cuda:mmal`; kernels/mma.cu is spliced in before this file, the host defines MMA_LINE).
//
// Why: mma_kernel loads W straight into fragment order, so each 16-byte load of a warp
// touches 8 rows, 64 bytes (half a line) of each. Measured with pure loads in mma_kernel's
// grid (docs/runs/h200/access-pattern/stream.cu, probe 3), the same bytes read as whole lines (a
// warp's load: 4 rows x 128 bytes) stream mostly 4-14 % faster from HBM (24 of 30 pairs). So here a warp reads its
// step in line order into registers (the same two-stage register pipeline, the first
// step's weights before PDL_ENTRY), stores it to its own swizzled shared-memory tile and
// takes the fragments with ldmatrix; X goes the same way. No block barrier: each warp
// only touches its own tile (__syncwarp).
//
// A warp step is 32·V values of K (V >= 2: 64·V bytes per row, CH = 4·V chunks of 16
// bytes); chunk c of row r sits at chunk (c & ~7) | ((c ^ r) & 7) of the row (conflict-free
// stores of whole rows and ldmatrix of 8 rows at one chunk). Offered at M <= 8 (one n8
// tile): with more tokens the per-warp X tiles and fragments cost more than the lines
// gain (twice as slow as `cuda:wgt` at M = 32, docs/PERFORMANCE.md).

__device__ __forceinline__ void ldsm_x4(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];" : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x2(u32 addr, u32& r0, u32& r1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];" : "=r"(r0), "=r"(r1) : "r"(addr));
}

extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)
    mmal_kernel(const u16* __restrict__ x, const u16* __restrict__ w, u16* __restrict__ y, int M, int N, int K,
                float* __restrict__ ws, unsigned* __restrict__ counters) {
    constexpr int MT = MMA_MT, NT = MMA_NT, WARPS = MMA_WARPS, V = MMA_V, KSPLIT = MMA_KSPLIT;
    constexpr int CH = 4 * V, WROWS = 16 * MT, XROWS = 8 * NT;
    constexpr int WL = WROWS * CH / 32, XL = XROWS * CH / 32;  // 16-byte loads per lane and step
    static_assert(V >= 2 && WL * 32 == WROWS * CH && XL * 32 == XROWS * CH, "whole lines per step");
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = blockIdx.x * WROWS;
    const int steps = K / (32 * V);
    int s_begin, s_end;
    split_range(steps, blockIdx.y, KSPLIT, s_begin, s_end);

    float acc[MT][NT][4];
    zero_acc(acc);

    // This lane's rows and chunks: load e covers flat chunk 32e + lane of the step's tile.
    // Dynamic shared memory (the host opts in beyond 48 KiB): WARPS tiles of
    // (WROWS + XROWS) x CH chunks.
    extern __shared__ uint4 tiles[];
    const u32 tile = smem_addr(tiles + warp * (WROWS + XROWS) * CH);
    auto slot = [](int r, int c) { return (u32)(r * CH + ((c & ~7) | ((c ^ r) & 7))) * 16; };
    const u16* wp[WL];
    u32 wdst[WL];
#pragma unroll
    for (int e = 0; e < WL; e++) {
        const int f = 32 * e + lane, r = f / CH, c = f % CH, row = row0 + r;
        wp[e] = w + (size_t)(row < N ? row : N - 1) * K + 8 * c;
        wdst[e] = tile + slot(r, c);
    }
    const u16* xp[XL];
    bool xok[XL];
    u32 xdst[XL];
#pragma unroll
    for (int e = 0; e < XL; e++) {
        const int f = 32 * e + lane, m = f / CH, c = f % CH;
        xok[e] = m < M;
        xp[e] = x + (size_t)(xok[e] ? m : 0) * K + 8 * c;
        xdst[e] = tile + slot(WROWS + m, c);
    }
    // ldmatrix addresses: lane l gives row l % 8 of matrix l / 8. A (W, per m16 tile i and
    // k16 slice q): matrices (rows +0, chunk 2q), (rows +8, 2q), (rows +0, 2q + 1), (rows +8,
    // 2q + 1) = a0..a3. B (X, per n8 tile j and slice q): (tokens, 2q), (tokens, 2q + 1).
    const int lr = lane & 7, lm = lane >> 3;

    uint4 wa[WL], xa[XL];
    auto load_w = [&](int s, uint4 (&d)[WL]) {
        const size_t off = (size_t)s * 32 * V;
#pragma unroll
        for (int e = 0; e < WL; e++) d[e] = ld_stream(wp[e] + off);
    };
    auto load_x = [&](int s, uint4 (&d)[XL]) {
        const size_t off = (size_t)s * 32 * V;
#pragma unroll
        for (int e = 0; e < XL; e++) d[e] = xok[e] ? __ldg((const uint4*)(xp[e] + off)) : make_uint4(0, 0, 0, 0);
    };
    int s = s_begin + warp;
    if (s < s_end) load_w(s, wa);
    PDL_ENTRY();
    if (s < s_end) load_x(s, xa);
    for (; s < s_end; s += WARPS) {
        uint4 wn[WL], xn[XL];
        if (s + WARPS < s_end) load_w(s + WARPS, wn), load_x(s + WARPS, xn);
#pragma unroll
        for (int e = 0; e < WL; e++)
            asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};" ::"r"(wdst[e]), "r"(wa[e].x), "r"(wa[e].y), "r"(wa[e].z), "r"(wa[e].w) : "memory");
#pragma unroll
        for (int e = 0; e < XL; e++)
            asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};" ::"r"(xdst[e]), "r"(xa[e].x), "r"(xa[e].y), "r"(xa[e].z), "r"(xa[e].w) : "memory");
        __syncwarp();
#pragma unroll
        for (int q = 0; q < CH / 2; q++) {
            u32 b[NT][2];
#pragma unroll
            for (int j = 0; j < NT; j++) ldsm_x2(tile + slot(WROWS + 8 * j + lr, 2 * q + (lm & 1)), b[j][0], b[j][1]);
#pragma unroll
            for (int i = 0; i < MT; i++) {
                u32 a0, a1, a2, a3;
                ldsm_x4(tile + slot(16 * i + 8 * (lm & 1) + lr, 2 * q + (lm >> 1)), a0, a1, a2, a3);
#pragma unroll
                for (int j = 0; j < NT; j++) mma16816(acc[i][j], a0, a1, a2, a3, b[j][0], b[j][1]);
            }
        }
        __syncwarp();  // every lane's ldmatrix is done before the next step's stores
#pragma unroll
        for (int e = 0; e < WL; e++) wa[e] = wn[e];
#pragma unroll
        for (int e = 0; e < XL; e++) xa[e] = xn[e];
    }

    store_tile(acc, y, M, N, ws, counters);
}
