// Decode GEMM whose weights arrive by bulk copy: Y[M,N] = X[M,K] · W[N,K]^T for M <= 32 on
// sm_90+. Appended by the host to kernels/mma.cu (mma16816, zero_acc, store_tile: the same
// tensor-core step and fragment trick) with MMA_BULK and BULK_P defined.
//
// Why: a small decode GEMM (70B TP8's 16-21 MB of weights, 4-5 us at full bandwidth) loses
// 1-3 us to ramp-up and drain when its loads go through registers: a thread holds a few
// 16-byte loads in flight, and the next ones wait for the tensor cores. Here each block
// requests its whole weight slab (MT*16 rows x K/KSPLIT) into shared memory at once with
// cp.async.bulk, before PDL_ENTRY: under a chained launch the copies start as soon as the
// block is resident, while the kernel before still drains, with no limit on bytes in
// flight but the slab. The slab comes in BULK_P pieces along K, one mbarrier each; the
// warps start on a piece as soon as it has landed. Blocks that do not fit at once start
// as earlier ones retire, so the grid itself is the pipeline.
//
// Layout: row r of the slab at r * bulk_stride(K/KSPLIT) bytes, a multiple of 128 plus 64,
// so a quarter warp's 16-byte loads (two rows, 64 bytes each) hit different banks.
// Requirements checked by the host: K % (32 * BULK_P * MMA_KSPLIT) == 0, M <= 8 * MMA_NT,
// dynamic shared memory bulk_smem(...) (src/backend/cuda/custom.rs computes the same).

__device__ __forceinline__ u32 smem_u32(const void* p) { return (u32)__cvta_generic_to_shared(p); }

__device__ __forceinline__ u32 bulk_stride(int kslice) { return (u32)((kslice * 2 + 127) / 128 * 128 + 64); }

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// One arrival that also expects `bytes` of asynchronous copies to complete.
__device__ __forceinline__ void mbar_expect(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    asm volatile(
        "{\n\t.reg .pred done;\n"
        "WAIT:\n\t"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n\t"
        "@!done bra WAIT;\n\t}" ::"r"(bar),
        "r"(parity)
        : "memory");
}
// `bytes` (a multiple of 16) from global `src` to shared `dst`, completing on `bar`.
__device__ __forceinline__ void bulk_copy(u32 dst, const void* src, u32 bytes, u32 bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}
__device__ __forceinline__ uint4 lds128(u32 addr) {
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
    return v;
}

extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)
    bulk_kernel(const u16* __restrict__ x, const u16* __restrict__ w, u16* __restrict__ y, int M, int N, int K,
                float* __restrict__ ws, unsigned* __restrict__ counters) {
    constexpr int MT = MMA_MT, NT = MMA_NT, WARPS = MMA_WARPS, KSPLIT = MMA_KSPLIT, P = BULK_P, ROWS = MT * 16;
    extern __shared__ __align__(128) unsigned char slab[];
    __shared__ __align__(8) u64 full[P];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * ROWS;
    const int kslice = K / KSPLIT, k0 = blockIdx.y * kslice, kpiece = kslice / P;
    const u32 stride = bulk_stride(kslice), base = smem_u32(slab);

    if (threadIdx.x == 0) {
#pragma unroll
        for (int p = 0; p < P; p++) mbar_init(smem_u32(&full[p]), 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    // Warp 0 requests the whole slab, piece by piece, a row per lane (rows past N copy row
    // N - 1: computed, never stored). W is never written by the kernel before a chained
    // GEMM (PDL_ENTRY, common.cuh), so this may run before it.
    if (warp == 0) {
        const u32 bytes = kpiece * 2;
        for (int p = 0; p < P; p++) {
            if (lane == 0) mbar_expect(smem_u32(&full[p]), bytes * ROWS);
            for (int r = lane; r < ROWS; r += 32) {
                const int row = min(row0 + r, N - 1);
                bulk_copy(base + r * stride + p * bytes, w + (size_t)row * K + k0 + p * kpiece, bytes, smem_u32(&full[p]));
            }
        }
    }
    PDL_ENTRY();

    // The warps take the 32-k steps of the slice in turn (block-level split-K); X (written
    // by the kernel before, read after PDL_ENTRY) comes through L2 one step ahead.
    const u16* xrow[NT];
    bool xok[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int m = j * 8 + g;
        xok[j] = m < M;
        xrow[j] = x + (size_t)(xok[j] ? m : 0) * K + k0 + 8 * t;
    }
    auto load_x = [&](int s, uint4 (&xd)[NT]) {
#pragma unroll
        for (int j = 0; j < NT; j++) xd[j] = xok[j] ? __ldg((const uint4*)(xrow[j] + s * 32)) : make_uint4(0, 0, 0, 0);
    };
    float acc[MT][NT][4];
    zero_acc(acc);
    const int steps = kslice / 32;
    uint4 xb[NT];
    int s = warp, landed = -1;
    if (s < steps) load_x(s, xb);
    for (; s < steps; s += WARPS) {
        uint4 xn[NT];
        if (s + WARPS < steps) load_x(s + WARPS, xn);
        const int piece = s * 32 / kpiece;
        while (landed < piece) mbar_wait(smem_u32(&full[++landed]), 0);
#pragma unroll
        for (int i = 0; i < MT; i++) {
            const u32 a = base + (i * 16 + g) * stride + s * 64 + t * 16;
            const uint4 lo = lds128(a), hi = lds128(a + 8 * stride);
#pragma unroll
            for (int j = 0; j < NT; j++) {
                mma16816(acc[i][j], lo.x, hi.x, lo.y, hi.y, xb[j].x, xb[j].y);
                mma16816(acc[i][j], lo.z, hi.z, lo.w, hi.w, xb[j].z, xb[j].w);
            }
        }
#pragma unroll
        for (int j = 0; j < NT; j++) xb[j] = xn[j];
    }

    // Every piece has landed and been read (a warp with no steps waited for none, but the
    // others waited for all): the slab becomes the partial tiles.
    for (int p = landed + 1; p < P; p++) mbar_wait(smem_u32(&full[p]), 0);
    __syncthreads();
    store_tile(acc, reinterpret_cast<float*>(slab), y, M, N, ws, counters);
}
