// Dequantization of packed weights to dense 16-bit rows (DQ_DTYPE: 0 bf16, 1 f16), for
// the "dequantize, then a library GEMM" candidates of quantized problems (prefill, where
// one dequantization is amortized over many tokens). Each value is computed in f32 and
// rounded once, like the CPU's dequantization. #include "common.cuh" is spliced in.

__device__ __forceinline__ uint4 pack8(const float* v) {
    u32 r[4];
#pragma unroll
    for (int i = 0; i < 4; i++) r[i] = (u32)from_f32<DQ_DTYPE>(v[2 * i]) | ((u32)from_f32<DQ_DTYPE>(v[2 * i + 1]) << 16);
    return make_uint4(r[0], r[1], r[2], r[3]);
}

// The planar q4_1 / g128 layout of src/quant.rs (`planar`): `rows × K/2` bytes of nibbles,
// then one word of f16 parameters (a, b) per block of G elements of a row. One thread per
// 8 elements (a 32-bit word of nibbles, one 16-byte store).
template <int G>
__device__ void dequant_planar(const unsigned char* __restrict__ w, u16* __restrict__ out, u64 rows, int K) {
    const u32* nib = (const u32*)w;
    const u32* params = (const u32*)(w + rows * (u64)(K / 2));
    const u64 n8 = rows * (u64)K / 8;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n8; i += (u64)gridDim.x * blockDim.x) {
        const u64 e = i * 8, r = e / K;
        const int k = (int)(e % K);
        const u32 word = nib[i], pw = params[r * (K / G) + k / G];
        const float a = f16_to_f32((u16)(pw & 0xffff)), b = f16_to_f32((u16)(pw >> 16));
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float q = (float)((word >> (4 * j)) & 15u);
            v[j] = G == 32 ? a * q + b : (q - b) * a;
        }
        ((uint4*)out)[i] = pack8(v);
    }
}

extern "C" __global__ void dequant_q4_1(const unsigned char* w, u16* out, u64 rows, int K) {
    PDL_ENTRY();
    dequant_planar<32>(w, out, rows, K);
}
extern "C" __global__ void dequant_g128(const unsigned char* w, u16* out, u64 rows, int K) {
    PDL_ENTRY();
    dequant_planar<128>(w, out, rows, K);
}

// GGUF q8_0 rows as stored: blocks of 34 bytes (f16 d, 32 × i8), value d·q. One thread
// per block (2-byte aligned, so bytes are read one by one).
extern "C" __global__ void dequant_q8_0(const unsigned char* __restrict__ w, u16* __restrict__ out, u64 rows, int K) {
    PDL_ENTRY();
    const u64 blocks = rows * (u64)K / 32;
    for (u64 b = blockIdx.x * (u64)blockDim.x + threadIdx.x; b < blocks; b += (u64)gridDim.x * blockDim.x) {
        const unsigned char* p = w + b * 34;
        const float d = f16_to_f32((u16)(p[0] | (p[1] << 8)));
#pragma unroll
        for (int c = 0; c < 4; c++) {
            float v[8];
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] = d * (float)(signed char)p[2 + 8 * c + j];
            ((uint4*)out)[b * 4 + c] = pack8(v);
        }
    }
}
