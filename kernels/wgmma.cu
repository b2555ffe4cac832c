// Small- and mid-M GEMM on Hopper's warpgroup tensor cores: Y[M,N] = X[M,K] · W[N,K]^T for
// M <= 128, bf16/f16 in, f32 accumulate, with wgmma.mma_async (sm_90a). W rows are
// the instruction's M side (64 per instruction, WG_MT of them per warpgroup), the tokens
// of X its N side (WG_N >= M, one instruction covers all of them), both read from shared
// memory. #include "common.cuh" is spliced in by the host.
//
// Why: at M = 8-128 the weights still dominate the bytes, but mma.sync fed from
// registers (mma.cu) re-reads X per warp, and the flops of M = 128 are as long as the
// weight stream (AI 128 flop/byte against a ridge of ~190) at a rate mma.sync does not
// reach. Measured on the H200 (docs/PERFORMANCE.md): it wins most M = 32 shapes; at
// M = 128 it stays 5-15 % behind cuBLASLt (TMA copies instead of cp.async were tried and
// were no faster; what is left is named there).
//
// Two copy engines: cp.async by every thread with a block barrier per step (below; the
// `cuda:wg` family), or, with WG_TMA = 1 (`cuda:wgt`), a producer warp issuing TMA boxes
// and consumer warpgroups synchronised per buffer by mbarriers (see the kernel). The TMA
// form keeps every stage in flight with no cap from cp.async.wait_group's 3-bit count, so
// it offers 12 and 16 stages: at M <= 32 a block's copy stream is latency-bound and deeper
// is faster (docs/PERFORMANCE.md, tenth session).
//
// Pipeline: the block loads 64-wide K steps of its W rows and of X into STAGES shared
// buffers with cp.async (16 bytes per thread and request, coalesced 128-byte rows), laid
// out in the 128-byte swizzle the wgmma descriptors name (16-byte chunk c of row r at
// chunk c ^ (r % 8), 8-row groups 1024 bytes apart). STAGES - 2 steps are in flight while
// the tensor cores work on one and the previous one's wgmma may still read its buffer.
// Rows past N and tokens past M are zero-filled.
//
// Split K: the gridDim.y blocks of a tile form one thread-block cluster (the host
// launches clusters of 1 x gridDim.y), each sums its part of K, leaves its partial tile in
// its shared memory, and after a cluster barrier each block sums a 1/gridDim.y slice of
// the tile over all blocks' shared memory (distributed shared memory) and writes it. No
// global workspace, no atomics, and the reduction is spread over all the blocks instead
// of one last-arriving block reading every partial. Without a split (gridDim.y = 1) each
// thread writes its accumulators straight to Y: the shared-memory pass and the two cluster
// barriers cost 0.7 us of a 6.4 us call (docs/PERFORMANCE.md, eleventh session).
// Host-defined: WG_DTYPE (0 bf16, 1 f16), WG_N (tokens per instruction: 16, 32, 64, 128),
// WG_WGS (warpgroups per block), WG_MT (64-row tiles per warpgroup), WG_STAGES. Checked
// by the host: K % 64 == 0, M <= WG_N, the dynamic shared memory (custom.rs `wg_smem`).

#ifndef WG_TMA
#define WG_TMA 0
#endif

#if WG_DTYPE == 0
#define WG_AB "bf16.bf16"
#else
#define WG_AB "f16.f16"
#endif

constexpr int WG_ROWS = 64 * WG_MT * WG_WGS;                          // W rows per block
constexpr int WG_STAGE_BYTES = (WG_ROWS + WG_N) * 128;                 // one K step of W and X
constexpr int WG_LD = WG_ROWS + 4;  // partial tile [token][row]: float4 rows, no bank conflicts

// 16 bytes global -> shared, bypassing L1; `bytes` < 16 zero-fills the rest.
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// N < 8: the instruction's immediate has 3 bits (more stages fault at run time).
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

// Copies of K steps of `ROWS` rows of 64 values (row r at src + r·K) into swizzled tiles;
// rows at or past `valid` become zeros. Thread i copies 16-byte chunk c = i % 8 of rows
// i / 8 + j·STEP: as STEP is a multiple of 8, that chunk's swizzled column is the same for
// every j. Each chunk's source pointer is computed once, so a copy costs a 64-bit add and
// the cp.async: a block has only 4-8 warps, and the loop is issue-bound without this.
template <int ROWS>
struct Rows {
    static constexpr int THREADS = WG_WGS * 128, STEP = THREADS / 8, CH = (ROWS + STEP - 1) / STEP;
    const u16* src[CH];
    int bytes[CH];
    u32 col;  // the chunk's offset in its row group: row % 8 · 128 + swizzled column · 16

    __device__ __forceinline__ Rows(const u16* base, int valid, int K) {
        const int r0 = threadIdx.x >> 3, c = threadIdx.x & 7;
        col = (r0 & 7) * 128 + ((c ^ (r0 & 7)) << 4) + (r0 >> 3) * 1024;
#pragma unroll
        for (int j = 0; j < CH; j++) {
            const int r = r0 + j * STEP;
            const bool ok = r < valid && r < ROWS;
            src[j] = ok ? base + (size_t)r * K + 8 * c : base;
            bytes[j] = ok ? 16 : 0;
        }
    }

    // K step `step` (64 values from the base) into the tile at `dst`.
    __device__ __forceinline__ void load(u32 dst, int step) const {
        const size_t off = (size_t)step * 64;
#pragma unroll
        for (int j = 0; j < CH; j++)
            if (ROWS % STEP == 0 || (int)(threadIdx.x >> 3) + j * STEP < ROWS) cp_async16(dst + col + j * STEP * 128, src[j] + off, bytes[j]);
    }
};

// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes
// apart (the leading offset is unused by this layout).
__device__ __forceinline__ u64 wg_desc(u32 addr) {
    return (u64)((addr & 0x3FFFF) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

// d += A(64 x 16, desc da) · B(16 x WG_N, desc db) for this warpgroup.
__device__ __forceinline__ void wgmma(float (&d)[WG_N / 2], u64 da, u64 db) {
#if WG_N == 16
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32." WG_AB " {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "l"(da), "l"(db), "r"(1) : "memory");
#elif WG_N == 32
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32." WG_AB " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "l"(da), "l"(db), "r"(1) : "memory");
#elif WG_N == 64
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." WG_AB " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db), "r"(1) : "memory");
#elif WG_N == 128
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." WG_AB " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                 : "l"(da), "l"(db), "r"(1) : "memory");
#else
#error "WG_N must be 16, 32, 64 or 128"
#endif
}

// One 64-wide K step of this warpgroup's tiles from the stage buffer at `b`: the wgmma of
// its four k16 slices, committed, then a wait until the previous step's have retired (so
// that step's buffer may be refilled). Descriptors hold the address in 16-byte units in
// their low bits: the k16 slices (32 bytes apart) and the 64-row tiles (8 KiB apart) are
// added to one.
__device__ __forceinline__ void wg_step(float (&acc)[WG_MT][WG_N / 2], u32 b, int wg) {
    const u64 da = wg_desc(b + wg * WG_MT * 64 * 128), db = wg_desc(b + WG_ROWS * 128);
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int t = 0; t < WG_MT; t++) wgmma(acc[t], da + t * (64 * 128 / 16) + 2 * kk, db + 2 * kk);
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
}

#if WG_TMA
// A CUtensorMap, encoded on the host for each operand pointer (custom.rs) and passed by
// value: the TMA unit copies a whole box (64 values x rows) per instruction, swizzled as
// the descriptors expect, zero-filling rows outside the tensor.
struct __align__(64) TmaMap {
    u64 v[16];
};

__device__ __forceinline__ void mbar_init(u32 bar, int count) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory"); }
__device__ __forceinline__ void mbar_arrive(u32 bar) { asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory"); }
// One arrival that also expects `bytes` of copies to complete this phase.
__device__ __forceinline__ void mbar_expect(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
    asm volatile("{\n.reg .pred p;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT;\n}" ::"r"(bar), "r"(parity) : "memory");
}
// Rows [row, row + box) x values [k, k + 64) of the map's tensor into `dst`.
__device__ __forceinline__ void tma_load(u32 dst, const TmaMap& map, int k, int row, u32 bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
                 ::"r"(dst), "l"((u64)&map), "r"(k), "r"(row), "r"(bar) : "memory");
}
#define WG_MAPS , const __grid_constant__ TmaMap wmap, const __grid_constant__ TmaMap xmap
#else
#define WG_MAPS
#endif

extern "C" __global__ void __launch_bounds__(WG_WGS * 128 + 32 * WG_TMA)
    wg_kernel(const u16* __restrict__ x, const u16* __restrict__ w, u16* __restrict__ y, int M, int N, int K WG_MAPS) {
    constexpr int STAGES = WG_STAGES, MT = WG_MT;
    extern __shared__ unsigned char dyn[];
    // The descriptors' swizzle repeats every 1024 bytes: align the buffers to it (the host
    // adds 1024 bytes for this).
    const u32 base0 = smem_addr(dyn);
    const u32 base = (base0 + 1023) & ~1023u;
    const int wg = threadIdx.x >> 7;
    const int row0 = blockIdx.x * WG_ROWS;
    int s_begin, s_end;
    split_range(K / 64, blockIdx.y, gridDim.y, s_begin, s_end);
    const int steps = max(0, s_end - s_begin);

    float acc[MT][WG_N / 2];
#pragma unroll
    for (int t = 0; t < MT; t++)
#pragma unroll
        for (int i = 0; i < WG_N / 2; i++) acc[t][i] = 0.f;

#if WG_TMA
    // Warp-specialized: the warp after the consumer warpgroups produces. Its first lane
    // issues one TMA box per operand and step into STAGES buffers (all of them in flight),
    // completing on the buffer's `full` barrier; each consumer warpgroup waits on `full`,
    // runs its wgmma and, once that has retired, arrives on the buffer's `empty` barrier,
    // which the producer waits on before refilling it. No block-wide barrier per step, so
    // a warpgroup may run a step ahead of the other.
    __shared__ __align__(8) u64 bars[2 * STAGES];  // full[STAGES], then empty[STAGES]
    const u32 full0 = smem_addr(bars), empty0 = full0 + 8 * STAGES;
    constexpr int CONSUMERS = WG_WGS * 128;
    if (threadIdx.x == 0) {
        for (int i = 0; i < STAGES; i++) {
            mbar_init(full0 + 8 * i, 1);
            mbar_init(empty0 + 8 * i, WG_WGS);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x >= CONSUMERS) {
        if (threadIdx.x == CONSUMERS) {
            const int first = min(STAGES, steps);
            // Weights before PDL_ENTRY (see the cp.async path), X after.
            for (int s = 0; s < first; s++) {
                mbar_expect(full0 + 8 * s, WG_STAGE_BYTES);
                tma_load(base + s * WG_STAGE_BYTES, wmap, (s_begin + s) * 64, row0, full0 + 8 * s);
            }
            PDL_ENTRY();
            for (int s = 0; s < first; s++)
                tma_load(base + s * WG_STAGE_BYTES + WG_ROWS * 128, xmap, (s_begin + s) * 64, 0, full0 + 8 * s);
            int stage = 0;
            u32 phase = 0;  // of the `empty` barrier of `stage`, for step s
            for (int s = STAGES; s < steps; s++) {
                mbar_wait(empty0 + 8 * stage, phase);
                const u32 b = base + stage * WG_STAGE_BYTES;
                mbar_expect(full0 + 8 * stage, WG_STAGE_BYTES);
                tma_load(b, wmap, (s_begin + s) * 64, row0, full0 + 8 * stage);
                tma_load(b + WG_ROWS * 128, xmap, (s_begin + s) * 64, 0, full0 + 8 * stage);
                if (++stage == STAGES) stage = 0, phase ^= 1;
            }
        } else {
            PDL_ENTRY();
        }
    } else {
        PDL_ENTRY();  // before Y is written (the kernel before may still read it)
        const bool leader = (threadIdx.x & 127) == 0;
        int stage = 0, prev = STAGES - 1;
        u32 phase = 0;  // of the `full` barrier of `stage`
        for (int s = 0; s < steps; s++) {
            mbar_wait(full0 + 8 * stage, phase);
            wg_step(acc, base + stage * WG_STAGE_BYTES, wg);
            // The previous step's wgmma has retired: its buffer may be refilled.
            if (s > 0 && leader) mbar_arrive(empty0 + 8 * prev);
            prev = stage;
            if (++stage == STAGES) stage = 0, phase ^= 1;
        }
        asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    }
    __syncthreads();
#else
    // Prologue: the first STAGES - 2 steps; their weights before PDL_ENTRY (they stream in
    // while a chained predecessor drains; W is never its output, common.cuh), X after.
    const Rows<WG_ROWS> wr(w + (size_t)row0 * K + (size_t)s_begin * 64, N - row0, K);
    const Rows<WG_N> xr(x + (size_t)s_begin * 64, M, K);
#pragma unroll
    for (int s = 0; s < STAGES - 2; s++)
        if (s < steps) wr.load(base + s * WG_STAGE_BYTES, s);
    PDL_ENTRY();
#pragma unroll
    for (int s = 0; s < STAGES - 2; s++) {
        if (s < steps) xr.load(base + s * WG_STAGE_BYTES + WG_ROWS * 128, s);
        cp_async_commit();
    }

    // Buffers of step s and of step s + STAGES - 2 (rotating indices, no modulo).
    int cur = 0, fill = STAGES - 2;
    for (int s = 0; s < steps; s++) {
        // Step s has landed for this thread; make it visible to the tensor cores (async
        // proxy) and wait for every thread's part. Past this barrier every warpgroup has
        // also retired the wgmma of step s - 2, so its buffer can be refilled.
        cp_async_wait<STAGES - 3>();
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        __syncthreads();
        const int next = s + STAGES - 2;
        if (next < steps) {
            const u32 b = base + fill * WG_STAGE_BYTES;
            wr.load(b, next);
            xr.load(b + WG_ROWS * 128, next);
        }
        cp_async_commit();
        const u32 b = base + cur * WG_STAGE_BYTES;
        cur = cur == STAGES - 1 ? 0 : cur + 1;
        fill = fill == STAGES - 1 ? 0 : fill + 1;
        wg_step(acc, b, wg);
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    cp_async_wait<0>();
    __syncthreads();
#endif

    // Accumulator layout (per warp of the warpgroup, as mma.sync's C per 8 tokens):
    // acc[t][4j + e] holds W row 16·warp + g (+8 for e >= 2) of tile t, token
    // 8j + 2q + (e & 1).
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
    const int g = lane >> 2, q = lane & 3;
    if (gridDim.y == 1) {
        // No K split: the accumulators straight to Y, without the shared-memory pass and
        // the cluster barriers below.
        if (threadIdx.x < WG_WGS * 128) {
#pragma unroll
            for (int t = 0; t < MT; t++) {
                const int r = row0 + (wg * MT + t) * 64 + warp * 16 + g;
#pragma unroll
                for (int j = 0; j < WG_N / 8; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int m = 8 * j + 2 * q + (e & 1), rr = r + 8 * (e >> 1);
                        if (m < M && rr < N) y[(size_t)m * N + rr] = from_f32<WG_DTYPE>(acc[t][4 * j + e]);
                    }
            }
        }
        return;
    }
    // The partial tile into shared memory, [token][row].
    float* part = (float*)(dyn + (base - base0));
#pragma unroll
    for (int t = 0; t < MT; t++) {
        if (WG_TMA && threadIdx.x >= WG_WGS * 128) break;  // the producer warp holds no tile
        const int r = (wg * MT + t) * 64 + warp * 16 + g;
#pragma unroll
        for (int j = 0; j < WG_N / 8; j++) {
            const int m = 8 * j + 2 * q;
            part[m * WG_LD + r] = acc[t][4 * j];
            part[(m + 1) * WG_LD + r] = acc[t][4 * j + 1];
            part[m * WG_LD + r + 8] = acc[t][4 * j + 2];
            part[(m + 1) * WG_LD + r + 8] = acc[t][4 * j + 3];
        }
    }
    // Every block of the cluster has its partial in place (for a cluster of one, a plain
    // block barrier).
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
    u32 rank, ranks;
    asm("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    asm("mov.u32 %0, %%cluster_nctarank;" : "=r"(ranks));
    // This block's slice of the tile's float4 groups, summed over the cluster's blocks.
    constexpr int GROUPS = WG_N * WG_ROWS / 4, THREADS = WG_WGS * 128;
    const int per = (GROUPS + ranks - 1) / ranks;
    const int o_end = min(GROUPS, (int)(rank + 1) * per);
    const u32 mine = base;
    for (int o = rank * per + threadIdx.x; o < o_end && threadIdx.x < THREADS; o += THREADS) {
        const int m = o / (WG_ROWS / 4), r = 4 * (o % (WG_ROWS / 4));
        if (m >= M) continue;
        const u32 off = mine + (u32)(m * WG_LD + r) * 4;
        float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);
        for (u32 p0 = 0; p0 < ranks; p0 += 4) {
            float4 v[4];  // four peers' loads in flight before the first add
#pragma unroll
            for (u32 i = 0; i < 4; i++) {
                v[i] = make_float4(0.f, 0.f, 0.f, 0.f);
                if (p0 + i < ranks) {
                    u32 a;
                    asm("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(a) : "r"(off), "r"(p0 + i));
                    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
                                 : "=f"(v[i].x), "=f"(v[i].y), "=f"(v[i].z), "=f"(v[i].w) : "r"(a) : "memory");
                }
            }
#pragma unroll
            for (int i = 0; i < 4; i++) sum.x += v[i].x, sum.y += v[i].y, sum.z += v[i].z, sum.w += v[i].w;
        }
        u16* out = y + (size_t)m * N + row0 + r;
        const int left = N - row0 - r;
        if (left > 0) out[0] = from_f32<WG_DTYPE>(sum.x);
        if (left > 1) out[1] = from_f32<WG_DTYPE>(sum.y);
        if (left > 2) out[2] = from_f32<WG_DTYPE>(sum.z);
        if (left > 3) out[3] = from_f32<WG_DTYPE>(sum.w);
    }
    // No block may leave while the others still read its shared memory.
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
