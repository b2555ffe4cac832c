// Operand fill and output inspection kernels (the tuner's side, not candidates).
// #include "common.cuh" is spliced in by the host before compilation.

extern "C" __global__ void fill_random_f32(float* p, u64 n, u64 seed) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        p[i] = rand_value(seed, i);
}
extern "C" __global__ void fill_random_bf16(u16* p, u64 n, u64 seed) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        p[i] = f32_to_bf16(rand_value(seed, i));
}
extern "C" __global__ void fill_random_f16(u16* p, u64 n, u64 seed) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        p[i] = f32_to_f16(rand_value(seed, i));
}

// Counts non-finite elements (NaN poison left unwritten, or NaN/Inf produced) and
// records the first one's index. out[0] = count, out[1] = first index (init ~0).
template <int DT>
__device__ void count_nonfinite(const void* p, u64 n, u64* out) {
    u64 local = 0, first = ~0ull;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        float v = DT == 2 ? ((const float*)p)[i] : to_f32<DT>(((const u16*)p)[i]);
        if ((__float_as_uint(v) & 0x7f800000u) == 0x7f800000u) {  // NaN or Inf
            local++;
            if (i < first) first = i;
        }
    }
    if (local) {
        atomicAdd(&out[0], local);
        atomicMin(&out[1], first);
    }
}
extern "C" __global__ void nonfinite_bf16(const void* p, u64 n, u64* out) { count_nonfinite<0>(p, n, out); }
extern "C" __global__ void nonfinite_f16(const void* p, u64 n, u64* out) { count_nonfinite<1>(p, n, out); }
extern "C" __global__ void nonfinite_f32(const void* p, u64 n, u64* out) { count_nonfinite<2>(p, n, out); }

// Gathers p[idx[j]] as f32.
template <int DT>
__device__ void gather(const void* p, const u64* idx, float* out, u64 n) {
    for (u64 j = blockIdx.x * (u64)blockDim.x + threadIdx.x; j < n; j += (u64)gridDim.x * blockDim.x)
        out[j] = DT == 2 ? ((const float*)p)[idx[j]] : to_f32<DT>(((const u16*)p)[idx[j]]);
}
extern "C" __global__ void gather_bf16(const void* p, const u64* idx, float* out, u64 n) { gather<0>(p, idx, out, n); }
extern "C" __global__ void gather_f16(const void* p, const u64* idx, float* out, u64 n) { gather<1>(p, idx, out, n); }
extern "C" __global__ void gather_f32(const void* p, const u64* idx, float* out, u64 n) { gather<2>(p, idx, out, n); }

// Counts the bytes of a guard region that are no longer 0xff (a kernel wrote past the end
// of its output, which was filled with 0xff up to the guard's end).
extern "C" __global__ void guard_changed(const unsigned char* p, u64 n, u64* out) {
    u64 local = 0;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) local += p[i] != 0xff;
    if (local) atomicAdd(out, local);
}
