// Does the order in which a kernel asks for the bytes of W change how fast HBM delivers
// them? Standalone probe (nvcc -O3 -arch=sm_90 stream.cu -o stream): every kernel reads
// all of a weight matrix W [N][K] of 16-bit values once with 16-byte non-allocating loads,
// the same loads per thread in flight, and folds them into one word per thread (so
// nothing is optimised away); only the mapping of a warp's loads onto W differs:
//   row:  a warp's load covers 512 contiguous bytes of one row (kernels/gemv.cu);
//   tile: a warp's load covers 64 bytes of each of 8 rows (the mma.sync fragment pattern
//         of kernels/mma.cu and the tgv experiment), U such loads back to back along K;
//   box:  64 rows x 128 bytes per block step (a TMA box of kernels/wgmma.cu), the step's
//         8 KiB spread over the block's threads.
// Timed with events over back-to-back launches that rotate over enough copies of W to
// exceed the 50 MB L2 (cold weights), median of 7 samples.
// One program, three probes (one device call each; `stream <1|2|3>`, outputs stream.txt,
// stream2.txt, stream3.txt): 1 the three orders; 2 the tiles with more warps and K
// splits; 3 `cuda:mma`'s grid in fragment order against whole lines (k_mma below).
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>

__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}
__device__ __forceinline__ unsigned fold(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }

// row: block = R rows, 256 threads; thread t reads chunks t, t + 256, ... of each row,
// U chunks of each row in flight.
template <int R, int U>
__global__ void __launch_bounds__(256) k_row(const unsigned short* w, unsigned* out, int N, int K) {
    const int row0 = blockIdx.x * R, chunks = K / 8;
    unsigned acc = 0;
    for (int c0 = threadIdx.x; c0 < chunks; c0 += 256 * U) {
        uint4 v[U][R];
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int c = c0 + u * 256;
                v[u][r] = c < chunks ? ld_stream(w + (size_t)(row0 + r) * K + (size_t)c * 8) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++) acc ^= fold(v[u][r]);
    }
    out[blockIdx.x * 256 + threadIdx.x] = acc;
}

// tile: block = 8·G rows, WARPS warps splitting K in steps of 32·U values; lane (g, t)
// reads row 8i + g at k = step·32U + 32u + 8t (64 bytes of each of 8 rows per load).
template <int G, int U, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) k_tile(const unsigned short* w, unsigned* out, int N, int K) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * 8 * G, steps = K / (32 * U);
    // K split over gridDim.y blocks (1 unless launched with more).
    const int per = steps / gridDim.y, s_begin = blockIdx.y * per, s_end = s_begin + per;
    unsigned acc = 0;
    for (int s = s_begin + warp; s < s_end; s += WARPS) {
        uint4 v[U][G];
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int i = 0; i < G; i++) v[u][i] = ld_stream(w + (size_t)(row0 + 8 * i + g) * K + (size_t)s * 32 * U + 32 * u + 8 * t);
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int i = 0; i < G; i++) acc ^= fold(v[u][i]);
    }
    out[(blockIdx.y * gridDim.x + blockIdx.x) * WARPS * 32 + threadIdx.x] = acc;
}

// box: block = 64 rows, 256 threads; per step a 64 x 64-value box (8 KiB), thread i
// reading 16-byte chunk i % 8 of rows i / 8 and i / 8 + 32; S steps in flight.
template <int S>
__global__ void __launch_bounds__(256) k_box(const unsigned short* w, unsigned* out, int N, int K) {
    const int r = threadIdx.x >> 3, c = threadIdx.x & 7, row0 = blockIdx.x * 64, steps = K / 64;
    unsigned acc = 0;
    for (int s0 = 0; s0 < steps; s0 += S) {
        uint4 v[S][2];
#pragma unroll
        for (int s = 0; s < S; s++)
#pragma unroll
            for (int h = 0; h < 2; h++)
                v[s][h] = s0 + s < steps ? ld_stream(w + (size_t)(row0 + r + 32 * h) * K + (size_t)(s0 + s) * 64 + 8 * c) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int s = 0; s < S; s++) acc ^= fold(v[s][0]) ^ fold(v[s][1]);
    }
    out[blockIdx.x * 256 + threadIdx.x] = acc;
}


// The mma kernel's structure (kernels/mma.cu, V = 2): a block owns 16·MT rows, its WARPS
// warps take 64-value K steps in turn (gridDim.y blocks split K); per step a warp reads
// 16·MT rows x 128 bytes with 4·MT 16-byte loads per thread. LINE = 0: the fragment order
// of mma.cu (lane (g, t): rows g and g + 8, bytes 32t.. and 32t + 16..: every load touches
// 8 rows, half of each of 4 sectors of each); LINE = 1: lane l reads row 4j + l / 8, bytes
// 16 (l % 8).. (every load: 4 whole 128-byte lines).
template <int MT, int WARPS, int LINE>
__global__ void __launch_bounds__(WARPS * 32) k_mma(const unsigned short* w, unsigned* out, int N, int K) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * 16 * MT, steps = K / 64;
    const int per = steps / gridDim.y, s_begin = blockIdx.y * per, s_end = s_begin + per;
    unsigned acc = 0;
    for (int s = s_begin + warp; s < s_end; s += WARPS) {
        uint4 v[MT][4];
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const unsigned short* p = LINE ? w + (size_t)(row0 + 16 * i + 4 * j + (lane >> 3)) * K + (size_t)s * 64 + 8 * (lane & 7)
                                               : w + (size_t)(row0 + 16 * i + g + 8 * (j >> 1)) * K + (size_t)s * 64 + 16 * t + 8 * (j & 1);
                v[i][j] = ld_stream(p);
            }
#pragma unroll
        for (int i = 0; i < MT; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc ^= fold(v[i][j]);
    }
    out[(blockIdx.y * gridDim.x + blockIdx.x) * WARPS * 32 + threadIdx.x] = acc;
}

template <typename F>
static void timeit(const char* name, F launch, const std::vector<unsigned short*>& ws, int N, int K) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    const int reps = 40;
    std::vector<float> ms;
    for (int sample = 0; sample < 8; sample++) {
        cudaEventRecord(a);
        for (int i = 0; i < reps; i++) launch(ws[i % ws.size()]);
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        float t;
        cudaEventElapsedTime(&t, a, b);
        if (sample > 0) ms.push_back(t);  // the first is a warm-up
    }
    std::sort(ms.begin(), ms.end());
    const double us = ms[ms.size() / 2] * 1e3 / reps, bytes = 2.0 * N * K;
    cudaError_t e = cudaGetLastError();
    printf("%-28s N=%6d K=%6d  %8.2f us  %6.3f TB/s  %s\n", name, N, K, us, bytes / us / 1e6, e == cudaSuccess ? "" : cudaGetErrorString(e));
}

int main(int argc, char** argv) {
    const int probe = argc > 1 ? atoi(argv[1]) : 1;
    const int shapes[][2] = {{28672, 4096}, {4096, 14336}, {7168, 8192}, {4096, 4096}, {1280, 8192}, {8192, 1024}};
    unsigned* out;
    cudaMalloc(&out, 256 << 20);
    for (auto& sh : shapes) {
        const int N = sh[0], K = sh[1];
        const size_t bytes = 2ull * N * K;
        const int copies = (int)std::max<size_t>(2, (300ull << 20) / bytes + 1);
        std::vector<unsigned short*> ws(copies);
        for (auto& p : ws) {
            cudaMalloc(&p, bytes);
            cudaMemset(p, 0x3c, bytes);
        }
        auto t = [&](const char* name, auto launch) { timeit(name, launch, ws, N, K); };
        if (probe != 3) t("row r1 u2 (gemv lm_head)", [&](unsigned short* w) { k_row<1, 2><<<N, 256>>>(w, out, N, K); });
        t("row r2 u1 (gemv 4096)", [&](unsigned short* w) { k_row<2, 1><<<N / 2, 256>>>(w, out, N, K); });
        t("row r4 u1 (gemv 1280)", [&](unsigned short* w) { k_row<4, 1><<<N / 4, 256>>>(w, out, N, K); });
        if (probe != 3) {
            t("tile g1 u2 w8", [&](unsigned short* w) { k_tile<1, 2, 8><<<N / 8, 256>>>(w, out, N, K); });
            t("tile g1 u4 w8", [&](unsigned short* w) { k_tile<1, 4, 8><<<N / 8, 256>>>(w, out, N, K); });
            t("tile g2 u2 w8", [&](unsigned short* w) { k_tile<2, 2, 8><<<N / 16, 256>>>(w, out, N, K); });
            t("tile g2 u1 w8", [&](unsigned short* w) { k_tile<2, 1, 8><<<N / 16, 256>>>(w, out, N, K); });
        }
        if (probe == 2) {
            t("tile g1 u1 w8", [&](unsigned short* w) { k_tile<1, 1, 8><<<N / 8, 256>>>(w, out, N, K); });
            t("tile g1 u1 w32", [&](unsigned short* w) { k_tile<1, 1, 32><<<N / 8, 1024>>>(w, out, N, K); });
            t("tile g1 u2 w16", [&](unsigned short* w) { k_tile<1, 2, 16><<<N / 8, 512>>>(w, out, N, K); });
            t("tile g1 u1 w8 ksplit4", [&](unsigned short* w) { k_tile<1, 1, 8><<<dim3(N / 8, 4), 256>>>(w, out, N, K); });
            t("tile g1 u2 w8 ksplit2", [&](unsigned short* w) { k_tile<1, 2, 8><<<dim3(N / 8, 2), 256>>>(w, out, N, K); });
            t("tile g1 u2 w8 ksplit4", [&](unsigned short* w) { k_tile<1, 2, 8><<<dim3(N / 8, 4), 256>>>(w, out, N, K); });
            t("tile g2 u1 w8 ksplit4", [&](unsigned short* w) { k_tile<2, 1, 8><<<dim3(N / 16, 4), 256>>>(w, out, N, K); });
            t("tile g1 u2 w4 ksplit4", [&](unsigned short* w) { k_tile<1, 2, 4><<<dim3(N / 8, 4), 128>>>(w, out, N, K); });
        }
        if (probe != 3) {
            t("box s2", [&](unsigned short* w) { k_box<2><<<N / 64, 256>>>(w, out, N, K); });
            t("box s4", [&](unsigned short* w) { k_box<4><<<N / 64, 256>>>(w, out, N, K); });
        }
        if (probe == 3) {
            t("mma frag mt1 w8", [&](unsigned short* w) { k_mma<1, 8, 0><<<N / 16, 256>>>(w, out, N, K); });
            t("mma line mt1 w8", [&](unsigned short* w) { k_mma<1, 8, 1><<<N / 16, 256>>>(w, out, N, K); });
            t("mma frag mt1 w4", [&](unsigned short* w) { k_mma<1, 4, 0><<<N / 16, 128>>>(w, out, N, K); });
            t("mma line mt1 w4", [&](unsigned short* w) { k_mma<1, 4, 1><<<N / 16, 128>>>(w, out, N, K); });
            t("mma frag mt2 w8", [&](unsigned short* w) { k_mma<2, 8, 0><<<N / 32, 256>>>(w, out, N, K); });
            t("mma line mt2 w8", [&](unsigned short* w) { k_mma<2, 8, 1><<<N / 32, 256>>>(w, out, N, K); });
            t("mma frag mt2 w16", [&](unsigned short* w) { k_mma<2, 16, 0><<<N / 32, 512>>>(w, out, N, K); });
            t("mma line mt2 w16", [&](unsigned short* w) { k_mma<2, 16, 1><<<N / 32, 512>>>(w, out, N, K); });
            t("mma frag mt1 w8 ksplit8", [&](unsigned short* w) { k_mma<1, 8, 0><<<dim3(N / 16, 8), 256>>>(w, out, N, K); });
            t("mma line mt1 w8 ksplit8", [&](unsigned short* w) { k_mma<1, 8, 1><<<dim3(N / 16, 8), 256>>>(w, out, N, K); });
        }
        for (auto p : ws) cudaFree(p);
    }
    return 0;
}
