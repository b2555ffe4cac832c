// Weight-only int4 decode GEMM on tensor cores: Y[M,N] = X[M,K] · dequant(W)[N,K]^T for
// M <= 16, W packed 4 bits per weight in the planar layout of src/quant.rs (`planar`):
// the nibble plane (row r, element e: byte r·K/2 + e/2, low nibble for even e), then one
// 32-bit word per block of parameters, f16 (d, m) for q4_1 (d·q + m, blocks of 32) or
// f16 (s, z) for g128 (s·(q − z), groups of 128). Appended by the host to kernels/mma.cu
// (mma16816, ld_stream, store_tile) with QMMA_FORMAT = 0 (q4_1) or 1 (g128).
//
// Decode streams W once from HBM, so 4-bit weights move a quarter of bf16's bytes; the
// work per byte quadruples, and on CUDA cores the nibble unpacking plus FMAs would make the
// kernel issue-bound. Here each weight costs about two packed 16-bit operations: a LOP3
// turns two nibbles into the 16-bit values 128 + q (bf16) or 1024 + q (f16) ("magic
// number" conversion), one FMA removes the bias exactly, one FMA applies the block's scale
// and offset (rounding the weight once to the 16-bit type, as dequantize-then-GEMM does);
// the tensor cores do the multiply-accumulate in f32.
//
// Fragment trick (see mma.cu): thread (g = lane/4, t = lane%4) owns 32 consecutive k of its
// rows (one 16-byte chunk of nibbles). A 32-bit word of 8 nibbles yields the pairs of
// elements (j, j+4), j = 0..3, which serve as the A fragment's k-pairs of two mma; the
// thread's token row of X is loaded 8 values at a time and paired the same way with PRMT.
// A warp step covers 4·V chunks of 32 k; warps of a block split K, blocks of a tile may
// split K further (KSPLIT, as in mma.cu); each warp keeps QMMA_DEPTH steps of loads in
// flight. A chunk past K (K % 128 != 0) reads as zero.

#if MMA_DTYPE == 0
#define QMAGIC 0x43004300u     // bf16 pair (128 + q, 128 + q')
#define QONE 0x3f803f80u       // bf16 pair (1, 1)
#define QNEG_BIAS 0xc300c300u  // bf16 pair (-128, -128)
#else
#define QMAGIC 0x64006400u     // f16 pair (1024 + q, 1024 + q')
#define QONE 0x3c003c00u
#define QNEG_BIAS 0xe400e400u  // f16 pair (-1024, -1024)
#endif

__device__ __forceinline__ u32 hfma2(u32 a, u32 b, u32 c) {
    u32 d;
#if MMA_DTYPE == 0
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#else
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#endif
    return d;
}

__device__ __forceinline__ u32 prmt(u32 a, u32 b, u32 sel) {
    u32 r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
    return r;
}

__device__ __forceinline__ u32 pack2(float v) {
    const u32 h = from_f32<MMA_DTYPE>(v);
    return h | (h << 16);
}

// A block's parameter word as the packed pairs (a, a), (b, b) with weight = q·a + b.
__device__ __forceinline__ void block_params(u32 word, u32& a2, u32& b2) {
    const float a = f16_to_f32((u16)(word & 0xffff)), b = f16_to_f32((u16)(word >> 16));
#if QMMA_FORMAT == 0
    a2 = pack2(a), b2 = pack2(b);        // d·q + m
#else
    a2 = pack2(a), b2 = pack2(-a * b);   // s·q − s·z
#endif
}

// The 4 weight pairs of one word of 8 nibbles: pair j holds elements (j, j + 4).
__device__ __forceinline__ void dequant_word(u32 w, u32 a2, u32 b2, u32 (&p)[4]) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
        u32 h;
        asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(h) : "r"(w >> (4 * j)), "r"(0x000f000fu), "r"(QMAGIC));
        p[j] = hfma2(hfma2(h, QONE, QNEG_BIAS), a2, b2);
    }
}

extern "C" __global__ void __launch_bounds__(MMA_WARPS * 32)
    qmma_kernel(const u16* __restrict__ x, const unsigned char* __restrict__ w, u16* __restrict__ y, int M, int N,
                int K, float* __restrict__ ws, unsigned* __restrict__ counters) {
    constexpr int MT = MMA_MT, NT = MMA_NT, WARPS = MMA_WARPS, V = MMA_V, KSPLIT = MMA_KSPLIT;
    constexpr int G = QMMA_FORMAT == 0 ? 32 : 128;  // elements per parameter word
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * (MT * 16), ks = blockIdx.y;
    const int chunks = K / 32;
    const int steps = (chunks + 4 * V - 1) / (4 * V);
    int s_begin, s_end;
    split_range(steps, ks, KSPLIT, s_begin, s_end);
    const u32* params = (const u32*)(w + (size_t)N * (K / 2));

    float acc[MT][NT][4];
    zero_acc(acc);

    // Rows this thread loads (clamped: rows past N compute values that are never stored).
    const unsigned char* wrow[MT][2];
    const u32* prow[MT][2];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int r = min(row0 + i * 16 + g + 8 * h, N - 1);
            wrow[i][h] = w + (size_t)r * (K / 2);
            prow[i][h] = params + (size_t)r * (K / G);
        }
    const u16* xrow[NT];
    bool xok[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int m = j * 8 + g;
        xok[j] = m < M;
        xrow[j] = x + (size_t)(xok[j] ? m : 0) * K;
    }

    // W, its parameters and the matching values of X are loaded QMMA_DEPTH steps ahead
    // into registers: those loads are in flight while this step dequantizes and multiplies
    // (X loaded only when used left every word waiting on an L2 round trip). A chunk past
    // K loads zero nibbles, a zero parameter word (exact zero weights) and zero X.
    constexpr int D = QMMA_DEPTH;
    struct Stage {
        uint4 w[MT][2][V];
        u32 p[MT][2][V];
        uint4 x[NT][V][4];
    };
    Stage st[D + 1];  // constant indices only (loops unrolled): registers, not local memory
    // W and its parameters of the first D steps are requested before PDL_ENTRY: under a
    // chained launch they stream in while the kernel before this one drains (X, written
    // by that kernel, only after it; see PDL_ENTRY, common.cuh).
    auto load_w = [&](int s, Stage& d) {
#pragma unroll
        for (int v = 0; v < V; v++) {
            const int c = (4 * s + t) * V + v;
            const bool ok = c < chunks;
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    d.w[i][h][v] = ok ? ld_stream(wrow[i][h] + (size_t)c * 16) : make_uint4(0, 0, 0, 0);
                    d.p[i][h][v] = ok ? __ldg(prow[i][h] + c * 32 / G) : 0u;
                }
        }
    };
    auto load_x = [&](int s, Stage& d) {
#pragma unroll
        for (int v = 0; v < V; v++) {
            const int c = (4 * s + t) * V + v;
            const bool ok = c < chunks;
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int u = 0; u < 4; u++)
                    d.x[j][v][u] = ok && xok[j] ? __ldg((const uint4*)(xrow[j] + (size_t)c * 32 + 8 * u)) : make_uint4(0, 0, 0, 0);
        }
    };
    int s = s_begin + warp;
#pragma unroll
    for (int k = 0; k < D; k++)
        if (s + k * WARPS < s_end) load_w(s + k * WARPS, st[k]);
    PDL_ENTRY();
#pragma unroll
    for (int k = 0; k < D; k++)
        if (s + k * WARPS < s_end) load_x(s + k * WARPS, st[k]);
    for (; s < s_end; s += WARPS) {
        if (s + D * WARPS < s_end) load_w(s + D * WARPS, st[D]), load_x(s + D * WARPS, st[D]);
        const Stage& cur = st[0];
#pragma unroll
        for (int v = 0; v < V; v++) {
            u32 a2[MT][2], b2[MT][2];
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int h = 0; h < 2; h++) block_params(cur.p[i][h][v], a2[i][h], b2[i][h]);
#pragma unroll
            for (int u = 0; u < 4; u++) {  // word u of the chunk: elements 8u .. 8u + 7
                u32 q[MT][2][4];
#pragma unroll
                for (int i = 0; i < MT; i++)
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        const uint4 d = cur.w[i][h][v];
                        const u32 word = u == 0 ? d.x : u == 1 ? d.y : u == 2 ? d.z : d.w;
                        dequant_word(word, a2[i][h], b2[i][h], q[i][h]);
                    }
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    const uint4 xv = cur.x[j][v][u];
                    const u32 x04 = prmt(xv.x, xv.z, 0x5410), x15 = prmt(xv.x, xv.z, 0x7632);
                    const u32 x26 = prmt(xv.y, xv.w, 0x5410), x37 = prmt(xv.y, xv.w, 0x7632);
#pragma unroll
                    for (int i = 0; i < MT; i++) {
                        mma16816(acc[i][j], q[i][0][0], q[i][1][0], q[i][0][1], q[i][1][1], x04, x15);
                        mma16816(acc[i][j], q[i][0][2], q[i][1][2], q[i][0][3], q[i][1][3], x26, x37);
                    }
                }
            }
        }
#pragma unroll
        for (int k = 0; k < D; k++) st[k] = st[k + 1];
    }

    store_tile(acc, y, M, N, ws, counters);
}
