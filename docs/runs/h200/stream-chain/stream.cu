// How fast can a short chained call stream W at all? Pure loads, no arithmetic, chained
// as `bench --pdl` times our kernels: 48 calls captured in a graph with programmatic
// dependent launch, rotating over operand sets larger than 5x the L2 (cold weights).
// The seventeenth session's timeline saw the GEMV's body on 1 x 1280 x 8192 (21 MB)
// stream at ~3.5 TB/s with every block resident early, where large shapes reach 4.6:
// this asks whether that is the GEMV's (its grid, its bytes in flight) or any kernel's.
//
// Kernel: G blocks of T threads; block b reads bytes [b*S, (b+1)*S) of W (S = bytes / G),
// thread t the 16-byte chunks t, t + T, ...; D chunks in flight per step, and with PIPE
// the next step's D requested before the current step is folded (2D in flight). Like
// kernels/gemv.cu: the first step is requested before `griddepcontrol.wait`, loads are
// non-allocating, one word per thread is written (nothing is optimised away).
// Also in the same run: a device-to-device copy (the roofline's bandwidth, as
// `bench --limits`), one long pure-load kernel, and a chained call that loads nothing.
//
// Usage: stream [sizes MB...]   (default: the decode weights of the 63 Llama shapes)
//        stream hint           (probe 2: L2 prefetch sizes, row and mma-fragment order)
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <string>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); exit(1); } } while (0)

__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}
// The same load with an L2 prefetch size (probe 2: `stream hint`).
template <int H> __device__ __forceinline__ uint4 ld_hint(const void* p) {
    if (H == 0) return ld_stream(p);
    uint4 v;
    if (H == 1)
        asm volatile("ld.global.nc.L1::no_allocate.L2::128B.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    else
        asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}
__device__ __forceinline__ unsigned fold(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }

// FRAG: the mma.sync fragment order of kernels/mma.cu: a warp's load covers 64 bytes of
// each of 8 "rows" 2 KiB apart (lane l: row l / 4, 16 bytes l % 4) instead of 512
// contiguous bytes; a bijection on each whole group of 8 rows (16 KiB).
__device__ __forceinline__ long long frag_index(long long c, long long chunks) {
    if ((c | 1023) >= chunks) return c;
    const long long i = c >> 5, l = c & 31;
    return (c & ~1023LL) + (l >> 2) * 128 + (i & 31) * 4 + (l & 3);
}

template <int D, bool PIPE, int H = 0, bool FRAG = false>
__global__ void __launch_bounds__(512) k_stream(const uint4* __restrict__ w, unsigned* out, long long chunks_per_block) {
    const uint4* base = w + (long long)blockIdx.x * chunks_per_block;
    const int T = blockDim.x;
    const long long step = (long long)T * D;
    unsigned acc = 0;
    uint4 v[D], nx[D];
    auto load = [&](uint4* dst, long long c0) {
#pragma unroll
        for (int u = 0; u < D; u++) {
            const long long c = c0 + (long long)u * T;
            dst[u] = c < chunks_per_block ? ld_hint<H>(base + (FRAG ? frag_index(c, chunks_per_block) : c)) : make_uint4(0, 0, 0, 0);
        }
    };
    load(v, threadIdx.x);
    asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory");
    for (long long c0 = threadIdx.x; c0 < chunks_per_block; c0 += step) {
        if (PIPE) {
            if (c0 + step < chunks_per_block) load(nx, c0 + step);
#pragma unroll
            for (int u = 0; u < D; u++) acc ^= fold(v[u]);
#pragma unroll
            for (int u = 0; u < D; u++) v[u] = nx[u];
        } else {
            if (c0 != (long long)threadIdx.x) load(v, c0);
#pragma unroll
            for (int u = 0; u < D; u++) acc ^= fold(v[u]);
        }
    }
    out[blockIdx.x * T + threadIdx.x] = acc;
}

__global__ void fill(uint4* p, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = make_uint4((unsigned)i * 2654435761u, (unsigned)(i >> 7) ^ 0x9e3779b9u, (unsigned)i + 17u, 0x3f803f80u);
}

typedef void (*Kern)(const uint4*, unsigned*, long long);
struct Variant { int d; bool pipe; Kern k; };
static const Variant variants[] = {
    {1, false, k_stream<1, false>}, {2, false, k_stream<2, false>}, {4, false, k_stream<4, false>}, {8, false, k_stream<8, false>},
    {1, true, k_stream<1, true>},   {2, true, k_stream<2, true>},   {4, true, k_stream<4, true>},
};

static cudaStream_t st;
static unsigned* out;

// Median per-call time (us) of `calls` chained calls in one graph, 7 replays after 3.
static double time_graph(cudaGraphExec_t ge, int calls) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(ge, st));
    std::vector<float> per;
    for (int r = 0; r < 7; r++) {
        CK(cudaEventRecord(a, st));
        CK(cudaGraphLaunch(ge, st));
        CK(cudaEventRecord(b, st));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        per.push_back(ms * 1000 / calls);
    }
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    std::sort(per.begin(), per.end());
    return per[3];
}

static double chained(Kern k, const char* wall, size_t bytes, int sets, int G, int T, bool pdl, int calls = 48) {
    const long long cpb = (long long)(bytes / 16 / G);
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int c = 0; c < calls; c++) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(G), cfg.blockDim = dim3(T), cfg.stream = st;
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = at, cfg.numAttrs = pdl ? 1 : 0;
        const uint4* w = (const uint4*)(wall + bytes * (c % sets));
        CK(cudaLaunchKernelEx(&cfg, k, w, out, cpb));
    }
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    const double t = time_graph(ge, calls);
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    return t;
}

int main(int argc, char** argv) {
    // W bytes of the decode shapes: 8192x1024, 1280x8192, 4096x4096, 6144x4096, 8192x3584,
    // 4096x14336 / 7168x8192, 28672x4096.
    std::vector<double> mb = {16.78, 20.97, 33.55, 50.33, 58.72, 117.4, 234.9};
    const bool hint = argc > 1 && std::string(argv[1]) == "hint";
    if (argc > 1 && !hint) {
        mb.clear();
        for (int i = 1; i < argc; i++) mb.push_back(atof(argv[i]));
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const int sms = prop.multiProcessorCount;
    printf("%s, %d SMs, L2 %d MB\n", prop.name, sms, prop.l2CacheSize >> 20);
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    const size_t pool = (size_t)2 << 30;
    char* wall;
    CK(cudaMalloc(&wall, pool));
    CK(cudaMalloc(&out, 64 << 20));
    fill<<<4096, 256>>>((uint4*)wall, pool / 16);
    CK(cudaDeviceSynchronize());

    // Warm clocks, then the limits of this run.
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    {
        float ms = 0;
        CK(cudaEventRecord(a, st));
        while (ms < 400) {
            for (int i = 0; i < 10; i++) CK(cudaMemcpyAsync(wall + (pool >> 1), wall, pool >> 1, cudaMemcpyDeviceToDevice, st));
            CK(cudaEventRecord(b, st));
            CK(cudaEventSynchronize(b));
            CK(cudaEventElapsedTime(&ms, a, b));
        }
    }
    {
        std::vector<float> v;
        const size_t half = (size_t)512 << 20;
        for (int r = 0; r < 9; r++) {
            CK(cudaEventRecord(a, st));
            CK(cudaMemcpyAsync(wall + half, wall, half, cudaMemcpyDeviceToDevice, st));
            CK(cudaEventRecord(b, st));
            CK(cudaEventSynchronize(b));
            float ms;
            CK(cudaEventElapsedTime(&ms, a, b));
            v.push_back(ms);
        }
        std::sort(v.begin(), v.end());
        printf("copy 512 MiB d2d: %.3f TB/s (read + write, median of 9)\n", 2.0 * half / (v[4] * 1e-3) / 1e12);
    }
    {
        // One long read: 1 GiB, a few grids.
        for (int G : {sms * 4, sms * 8, sms * 16}) {
            const double t = chained(k_stream<4, true>, wall, (size_t)1 << 30, 1, G, 256, true, 4);
            printf("one 1 GiB read, G=%d T=256 D=4 pipe: %.1f us, %.3f TB/s\n", G, t, (double)(1 << 30) / (t * 1e-6) / 1e12);
        }
    }
    for (int G : {sms, sms * 2})
        for (int T : {32, 256})
            printf("chained empty call (G=%d T=%d, 16 B per block): %.3f us\n", G, T, chained(k_stream<1, false>, wall, (size_t)16 * G, 8, G, T, true));

    if (hint) {
        // Probe 2: the L2 prefetch size (none / 128 B / 256 B) in row and fragment order.
        struct H { const char* name; Kern k; };
        const H hs[] = {{"row  none", k_stream<4, false, 0, false>}, {"row  128B", k_stream<4, false, 1, false>}, {"row  256B", k_stream<4, false, 2, false>},
                        {"frag none", k_stream<4, false, 0, true>},  {"frag 128B", k_stream<4, false, 1, true>},  {"frag 256B", k_stream<4, false, 2, true>},
                        {"row  none D8", k_stream<8, false, 0, false>}, {"row  256B D8", k_stream<8, false, 2, false>},
                        {"frag none D8", k_stream<8, false, 0, true>},  {"frag 256B D8", k_stream<8, false, 2, true>}};
        for (double m : mb) {
            size_t bytes = (size_t)(m * 1e6);
            bytes -= bytes % ((size_t)16 * 8 * 512 * 4);
            const int sets = std::max<int>(8, (int)((300u << 20) / bytes) + 1);
            printf("\n== %.2f MB (%d sets), chained (PDL), T=256, us per call (TB/s)\n", bytes / 1e6, sets);
            for (int G : {320, 528, 1056}) {
                printf("  G=%4d:", G);
                for (auto& h : hs) {
                    const double t = chained(h.k, wall, bytes, sets, G, 256, true);
                    printf("  %s %.2f (%.2f)", h.name, t, bytes / (t * 1e-6) / 1e12);
                }
                printf("\n");
            }
        }
        return 0;
    }
    for (double m : mb) {
        size_t bytes = (size_t)(m * 1e6);
        bytes -= bytes % ((size_t)16 * 8 * 512 * 4);  // whole steps for every grid below... nearly
        const int sets = std::max<int>(8, (int)((300u << 20) / bytes) + 1);
        if ((size_t)sets * bytes > pool) { printf("%.1f MB: pool too small\n", m); continue; }
        printf("\n== %.2f MB (%d sets), roofline at the copy rate above; per call (us) and TB/s, chained (PDL)\n", bytes / 1e6, sets);
        struct R { double t; int G, T, d; bool pipe; };
        std::vector<R> all;
        for (int mult : {1, 2, 3, 4, 6, 8, 12, 16}) {
            const int G = sms * mult;
            for (int T : {128, 256, 512})
                for (auto& v : variants) {
                    if ((long long)bytes / 16 / G < (long long)T) continue;
                    const double t = chained(v.k, wall, bytes, sets, G, T, true);
                    all.push_back({t, G, T, v.d, v.pipe});
                }
        }
        // The GEMV's own grids: 320 (r4 on 1280 rows) and N / 2 blocks of 256 threads.
        for (int G : {320, 640, 2048, 3072})
            for (auto& v : variants) {
                if ((long long)bytes / 16 / G < 256) continue;
                all.push_back({chained(v.k, wall, bytes, sets, G, 256, true), G, 256, v.d, v.pipe});
            }
        std::sort(all.begin(), all.end(), [](const R& p, const R& q) { return p.t < q.t; });
        for (size_t i = 0; i < all.size(); i++) {
            const R& r = all[i];
            if (i < 12 || (r.G == 320 && r.T == 256 && r.d == 4 && !r.pipe) || (r.G == 640 && r.T == 256 && r.d == 2 && !r.pipe))
                printf("  #%-3zu G=%5d (%5.2f/SM) T=%3d D=%d%s  %7.3f us  %.3f TB/s\n", i + 1, r.G, r.G / (double)sms, r.T, r.d, r.pipe ? " pipe" : "     ",
                       r.t, bytes / (r.t * 1e-6) / 1e12);
        }
        // Best per grid size (what a kernel with that grid could reach).
        printf("  best per G:");
        for (int mult : {1, 2, 3, 4, 6, 8, 12, 16}) {
            double best = 1e30;
            for (auto& r : all) if (r.G == sms * mult) best = std::min(best, r.t);
            printf(" %dx %.2f", mult, best);
        }
        printf("\n  unchained, best config above: %.3f us\n", chained(
            [&] { for (auto& v : variants) if (v.d == all[0].d && v.pipe == all[0].pipe) return v.k; return variants[0].k; }(),
            wall, bytes, sets, all[0].G, all[0].T, false));
    }
    return 0;
}
