// The non-GEMM operations of the Llama forward pass on the GPU (src/model/cuda.rs); every
// linear layer goes through the tuned dispatcher instead. #include "common.cuh" is spliced
// in by the host before compilation.
//
// Host-defined: LL_DTYPE (0 bf16, 1 f16) — the storage type of weights, activations fed to
// GEMMs and the KV cache. The residual stream and all reductions stay f32.
//
// Per forward call the host uploads one u32 array of row metadata: the token, position and
// KV-cache slot of every new row, and for every sequence the row of its last new token.
// Kernels read lengths and positions from it, so a captured decode graph stays valid from
// one step to the next.

#define DT LL_DTYPE
// -infinity without math headers (NVRTC gets no include path).
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Block-wide sum or max; every thread gets the result. `red` holds 32 floats.
template <bool MAX> __device__ float block_reduce(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();  // `red` may still be read by a previous reduction
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = lane < nw ? red[lane] : (MAX ? NEG_INF : 0.f);
    return MAX ? warp_max(r) : warp_sum(r);
}

// x[r, :] = embedding row of token r (f32 residual stream).
extern "C" __global__ void embed_rows(const u32* tok, const u16* table, float* x, int H) {
    PDL_ENTRY();
    const int r = blockIdx.x;
    const u16* src = table + (size_t)tok[r] * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) x[(size_t)r * H + i] = to_f32<DT>(src[i]);
}

// out[r, :] = RMSNorm(x[rows[r] or r, :]) * w, stored in the GEMM dtype.
extern "C" __global__ void rmsnorm_rows(const float* x, const u32* rows, const float* w, u16* out, int H, float eps) {
    PDL_ENTRY();
    __shared__ float red[32];
    const int r = blockIdx.x;
    const float* xr = x + (size_t)(rows ? rows[r] : r) * H;
    float ss = 0.f;
#pragma unroll 4
    for (int i = threadIdx.x; i < H; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_reduce<false>(ss, red);
    const float inv = rsqrtf(ss / H + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[(size_t)r * H + i] = from_f32<DT>(xr[i] * inv * w[i]);
}

// RoPE on the q and k parts of each fused qkv row (adjacent pairs (2i, 2i+1) rotated by
// pos * inv_freq[i], inv_freq[i] = theta^(-2i/d) computed on the host in double, angles in
// double as on the CPU path), then k and v into the row's cache slot at its position.
// Cache layout per layer: [slot][ctx][kv_heads * d]. Grid (rows, blocks per row): the
// pairs of one row are spread over several blocks so a single decode row is not serial.
extern "C" __global__ void rope_store(u16* qkv, const u32* pos, const u32* slot, u16* kc, u16* vc, int heads,
                                      int kvh, int hd, const double* inv_freq, int ctx) {
    PDL_ENTRY();
    const int r = blockIdx.x;
    const int p = pos[r];
    const int qn = heads * hd, kvn = kvh * hd;
    u16* row = qkv + (size_t)r * (qn + 2 * kvn);
    const size_t at = ((size_t)slot[r] * ctx + p) * kvn;
    const int half = hd / 2;
    const int first = blockIdx.y * blockDim.x + threadIdx.x, stride = gridDim.y * blockDim.x;
    for (int j = first; j < (heads + kvh) * half; j += stride) {
        const int head = j / half, i = j % half;
        double s, c;
        sincos(p * inv_freq[i], &s, &c);
        const int e = head * hd + 2 * i;
        const float a = to_f32<DT>(row[e]), b = to_f32<DT>(row[e + 1]);
        const u16 ra = from_f32<DT>((float)(a * c - b * s)), rb = from_f32<DT>((float)(a * s + b * c));
        row[e] = ra;
        row[e + 1] = rb;
        if (e >= qn) {
            kc[at + e - qn] = ra;
            kc[at + e - qn + 1] = rb;
        }
    }
    for (int j = first; j < kvn; j += stride) vc[at + j] = row[qn + kvn + j];
}

// Causal grouped-query attention of row r, head h over positions 0..pos[r] of its slot.
// Warps take positions round-robin, four at a time so four loads are in flight per lane
// (a decode row is one block per head: latency, not bandwidth, bounds it); each lane holds
// head_dim/32 dimensions of q and of the output. Dynamic shared memory: ctx scores, then
// one partial output row per warp. head_dim a multiple of 32, at most 256.
#define ATT_U 4
extern "C" __global__ void attention(const u16* qkv, const u32* pos, const u32* slot, const u16* kc, const u16* vc,
                                     u16* out, int heads, int kvh, int hd, int ctx, float scale) {
    PDL_ENTRY();
    extern __shared__ float sm[];
    __shared__ float red[32];
    const int r = blockIdx.x, h = blockIdx.y;
    const int len = pos[r] + 1;
    const int qn = heads * hd, kvn = kvh * hd, g = h / (heads / kvh);
    const u16* q = qkv + (size_t)r * (qn + 2 * kvn) + h * hd;
    const u16* kb = kc + (size_t)slot[r] * ctx * kvn + g * hd;
    const u16* vb = vc + (size_t)slot[r] * ctx * kvn + g * hd;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int per = hd / 32;
    float qv[8];
#pragma unroll
    for (int e = 0; e < 8; e++) qv[e] = e < per ? to_f32<DT>(q[lane + 32 * e]) : 0.f;
    float mx = NEG_INF;
    for (int t0 = warp; t0 < len; t0 += ATT_U * nw) {
        float kv[ATT_U][8];
#pragma unroll
        for (int u = 0; u < ATT_U; u++) {
            const int t = min(t0 + u * nw, len - 1);  // clamped loads; extra scores unused
#pragma unroll
            for (int e = 0; e < 8; e++) kv[u][e] = e < per ? to_f32<DT>(kb[(size_t)t * kvn + lane + 32 * e]) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < ATT_U; u++) {
            float sc = 0.f;
#pragma unroll
            for (int e = 0; e < 8; e++) sc += qv[e] * kv[u][e];
            sc = warp_sum(sc) * scale;
            const int t = t0 + u * nw;
            if (t < len) {
                if (lane == 0) sm[t] = sc;
                mx = fmaxf(mx, sc);
            }
        }
    }
    mx = block_reduce<true>(mx, red);  // synchronizes: all scores are written
    float sum = 0.f;
    for (int t = threadIdx.x; t < len; t += blockDim.x) {
        const float e = __expf(sm[t] - mx);
        sm[t] = e;
        sum += e;
    }
    sum = block_reduce<false>(sum, red);
    float acc[8];
#pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = 0.f;
    for (int t0 = warp; t0 < len; t0 += ATT_U * nw) {
        float vv[ATT_U][8], p[ATT_U];
#pragma unroll
        for (int u = 0; u < ATT_U; u++) {
            const int t = t0 + u * nw;
            p[u] = t < len ? sm[t] : 0.f;
            const int tc = min(t, len - 1);
#pragma unroll
            for (int e = 0; e < 8; e++) vv[u][e] = e < per ? to_f32<DT>(vb[(size_t)tc * kvn + lane + 32 * e]) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < ATT_U; u++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[e] += p[u] * vv[u][e];
    }
    float* part = sm + ctx;
#pragma unroll
    for (int e = 0; e < 8; e++)
        if (e < per) part[warp * hd + lane + 32 * e] = acc[e];
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.f;
        for (int w = 0; w < nw; w++) o += part[w * hd + d];
        out[(size_t)r * qn + h * hd + d] = from_f32<DT>(o / sum);
    }
}

// a[r, i] = silu(g) * u for the fused gate_up output row [g (I) | u (I)].
extern "C" __global__ void silu_mul(const u16* gu, u16* a, int I, u64 n) {
    PDL_ENTRY();
    for (u64 j = blockIdx.x * (u64)blockDim.x + threadIdx.x; j < n; j += (u64)gridDim.x * blockDim.x) {
        const u64 r = j / I, i = j % I;
        const float g = to_f32<DT>(gu[r * 2 * I + i]), u = to_f32<DT>(gu[r * 2 * I + I + i]);
        a[j] = from_f32<DT>(g / (1.f + __expf(-g)) * u);
    }
}

// x += y, then out = RMSNorm(x) * w: the residual add of a GEMM output fused with the
// norm that feeds the next GEMM (one launch instead of two, x read once).
extern "C" __global__ void add_rmsnorm(float* x, const u16* y, const float* w, u16* out, int H, float eps) {
    PDL_ENTRY();
    __shared__ float red[32];
    float* xr = x + (size_t)blockIdx.x * H;
    const u16* yr = y + (size_t)blockIdx.x * H;
    float ss = 0.f;
#pragma unroll 4
    for (int i = threadIdx.x; i < H; i += blockDim.x) {
        const float v = xr[i] + to_f32<DT>(yr[i]);
        xr[i] = v;
        ss += v * v;
    }
    ss = block_reduce<false>(ss, red);
    const float inv = rsqrtf(ss / H + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[(size_t)blockIdx.x * H + i] = from_f32<DT>(xr[i] * inv * w[i]);
}

// out[r] = the index of row r's largest logit (the first on ties, like torch.argmax; NaN
// never wins): greedy decoding without copying the logits to the host.
extern "C" __global__ void argmax_rows(const u16* logits, int V, u32* out) {
    PDL_ENTRY();
    __shared__ float bv[32];
    __shared__ int bi[32];
    const u16* l = logits + (size_t)blockIdx.x * V;
    float best = NEG_INF;
    int idx = 0x7fffffff;
#pragma unroll 8
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        const float v = to_f32<DT>(l[i]);
        if (v > best) {  // strided ascending: the first maximum of this thread's share
            best = v;
            idx = i;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > best || (ov == best && oi < idx)) {
            best = ov;
            idx = oi;
        }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        bv[warp] = best;
        bi[warp] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < nw; k++)
            if (bv[k] > best || (bv[k] == best && bi[k] < idx)) {
                best = bv[k];
                idx = bi[k];
            }
        out[blockIdx.x] = idx == 0x7fffffff ? 0 : idx;
    }
}

// x += y (residual add of a GEMM output).
extern "C" __global__ void add_residual(float* x, const u16* y, u64 n) {
    PDL_ENTRY();
    for (u64 j = blockIdx.x * (u64)blockDim.x + threadIdx.x; j < n; j += (u64)gridDim.x * blockDim.x)
        x[j] += to_f32<DT>(y[j]);
}

// Random weights for synthetic models: uniform in [-scale, scale) from the same generator
// as the tuner's operands (never zeros), so decode benchmarks stream real-looking bytes.
extern "C" __global__ void fill_scaled(u16* p, u64 n, u64 seed, float scale) {
    PDL_ENTRY();
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        p[i] = from_f32<DT>(rand_value(seed, i) * scale);
    }
}

// Random int4 weights in the planar layout of src/quant.rs (`planar`) for decode
// benchmarks: uniform nibbles, and per block of G parameters (f16) that map them onto
// [-scale, scale]: q4_1 d·q + m with d = 2·scale/15, m = −scale; g128 s·(q − z) with
// s = 2·scale/15, z = 7.5.
extern "C" __global__ void fill_planar(unsigned char* w, u64 rows, int K, int G, int g128, u64 seed, float scale) {
    PDL_ENTRY();
    const u64 words = rows * (u64)K / 8, blocks = rows * (u64)(K / G);
    u32* nib = (u32*)w;
    u32* par = (u32*)(w + rows * (u64)(K / 2));
    const u32 a = f32_to_f16(2.f * scale / 15.f), b = f32_to_f16(g128 ? 7.5f : -scale);
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < words + blocks; i += (u64)gridDim.x * blockDim.x) {
        if (i < words) nib[i] = (u32)mix(seed ^ mix(i));
        else par[i - words] = a | (b << 16);
    }
}
