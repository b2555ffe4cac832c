// Where a chained decode call's time goes: a timeline of every block of 48 chained calls
// (programmatic dependent launch, captured in a graph, rotating over operand sets larger
// than L2, as `bench --pdl` times them), for the real kernels of kernels/*.cu.
//
// The kernels are included unchanged; only PDL_ENTRY (common.cuh) is redefined, to a local
// object whose constructor stamps %globaltimer before and after `griddepcontrol.wait` and
// whose destructor stamps the block's end (thread 0 of each block). One binary per variant:
// the kernel family and its parameters are -D defines (run.sh builds them):
//   FAMILY=1 gemv (GEMV_ROWS, GEMV_THREADS, GEMV_UNROLL, GEMV_MAXM)
//   FAMILY=2 mma, FAMILY=3 mmal (MMA_MT, MMA_WARPS, MMA_V, MMA_NT, MMA_KSPLIT)
//   FAMILY=4 wg, FAMILY=5 wgt (WG_N, WG_WGS, WG_MT, WG_STAGES; the K split CLUSTER_K is the
//   cluster size). In wgt thread 0 is a consumer: its end stamp is the end of its
//   main loop, before the epilogue (the same in every call, so periods still compare).
// Arguments: M N K [calls]. Prints the per-call summary (steady state: calls 8..) and writes
// the raw records to $OUT/<name>.csv when OUT is set.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include <string>

// The kernels come from the include path: build.sh passes -I<repo>/kernels, or another
// tree's kernels/ to compare two versions.
#define MMA_DTYPE 0
#define GEMV_DTYPE 0
#define WG_DTYPE 0
#if FAMILY == 5
#define WG_TMA 1
#endif
#if FAMILY == 3
#define MMA_LINE 1
#endif
#include "common.cuh"

struct Rec {
    unsigned long long t0, t1, t2;
    unsigned smid, bx, by, call;
};
__device__ Rec tl_rec[1 << 16];
__device__ unsigned tl_n;
__device__ unsigned long long tl_wbase, tl_wstride;

__device__ __forceinline__ unsigned long long gtimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

struct Stamp {
    unsigned slot;
    __device__ Stamp(const void* w) {
        const unsigned long long t0 = gtimer();
        asm volatile("griddepcontrol.wait;" ::: "memory");
        const unsigned long long t1 = gtimer();
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
        if (threadIdx.x == 0) {
            slot = atomicAdd(&tl_n, 1u) & 0xffff;
            unsigned smid;
            asm("mov.u32 %0, %%smid;" : "=r"(smid));
            Rec& r = tl_rec[slot];
            r.t0 = t0, r.t1 = t1, r.t2 = 0, r.smid = smid, r.bx = blockIdx.x, r.by = blockIdx.y;
            r.call = (unsigned)(((unsigned long long)w - tl_wbase) / tl_wstride);
        }
    }
    __device__ ~Stamp() {
        if (threadIdx.x == 0) tl_rec[slot].t2 = gtimer();
    }
};
#ifndef NO_STAMP
#undef PDL_ENTRY
#define PDL_ENTRY() Stamp _stamp(w)
#endif

#if FAMILY == 1
#include "gemv.cu"
#define KERNEL gemv_kernel
#elif FAMILY >= 4
#include "wgmma.cu"
#define KERNEL wg_kernel
#else
#include "mma.cu"
#if FAMILY == 3
#include "mmal.cu"
#define KERNEL mmal_kernel
#else
#define KERNEL mma_kernel
#endif
#endif

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); exit(1); } } while (0)

__global__ void fill(u16* p, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = f32_to_bf16(rand_value(seed, i) * 0.5f);
}

int main(int argc, char** argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s M N K [calls]\n", argv[0]); return 2; }
    const int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
    const int calls = argc > 4 ? atoi(argv[4]) : 48;
    const size_t wbytes = (size_t)N * K * 2;
    // Operand sets: together more than 5x the 50 MB L2 (at least 8), as bench does.
    const int sets = std::max<int>(8, (int)((300u << 20) / wbytes) + 1);
    char* wall;
    CK(cudaMalloc(&wall, wbytes * sets));
    fill<<<1024, 256>>>((u16*)wall, wbytes / 2 * sets, 7);
    std::vector<u16*> xs(sets), ys(sets);
    for (int s = 0; s < sets; s++) {
        CK(cudaMalloc(&xs[s], (size_t)M * K * 2));
        CK(cudaMalloc(&ys[s], (size_t)M * N * 2));
        fill<<<64, 256>>>(xs[s], (size_t)M * K, 100 + s);
    }
    float* ws;
    unsigned* counters;
    CK(cudaMalloc(&ws, 16 << 20));
    CK(cudaMalloc(&counters, 4 << 16));
    CK(cudaMemset(counters, 0, 4 << 16));
    unsigned long long base = (unsigned long long)wall, stride = wbytes;
    CK(cudaMemcpyToSymbol(tl_wbase, &base, 8));
    CK(cudaMemcpyToSymbol(tl_wstride, &stride, 8));

#if FAMILY == 1
    dim3 grid((N + GEMV_ROWS - 1) / GEMV_ROWS), block(GEMV_THREADS);
    size_t smem = 0;
    char name[128];
    snprintf(name, sizeof name, "gemv_r%d_t%d_u%d_m%d", GEMV_ROWS, GEMV_THREADS, GEMV_UNROLL, GEMV_MAXM);
#elif FAMILY >= 4
    dim3 grid((N + WG_ROWS - 1) / WG_ROWS, CLUSTER_K), block(WG_WGS * 128 + 32 * (FAMILY == 5));
    // Enough for either version of the split's ending (partials in the pipeline buffers, or
    // slice slots after them).
    size_t smem = (size_t)WG_STAGES * WG_STAGE_BYTES + (size_t)WG_N * (WG_ROWS + 4) * 4 + 16 * CLUSTER_K + 1024;
    CK(cudaFuncSetAttribute(KERNEL, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    CK(cudaFuncSetAttribute(KERNEL, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    char name[128];
    snprintf(name, sizeof name, "%s_n%d_g%d_t%d_s%d_k%d", FAMILY == 5 ? "wgt" : "wg", WG_N, WG_WGS, WG_MT, WG_STAGES, CLUSTER_K);
#else
    dim3 grid((N + 16 * MMA_MT - 1) / (16 * MMA_MT), MMA_KSPLIT), block(32 * MMA_WARPS);
    size_t smem = 0;
#if FAMILY == 3
    smem = (size_t)MMA_WARPS * (16 * MMA_MT + 8 * MMA_NT) * 4 * MMA_V * 16;
    CK(cudaFuncSetAttribute(KERNEL, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
#endif
    char name[128];
    snprintf(name, sizeof name, "%s_mt%d_w%d_v%d_n%d_k%d", FAMILY == 3 ? "mmal" : "mma", MMA_MT, MMA_WARPS, MMA_V, MMA_NT, MMA_KSPLIT);
#endif
#if FAMILY == 5
    // TMA maps of every operand set (as custom.rs: boxes of 64 values x the block's rows / WG_N tokens).
    PFN_cuTensorMapEncodeTiled_v12000 encode;
    cudaDriverEntryPointQueryResult q;
    CK(cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", (void**)&encode, cudaEnableDefault, &q));
    auto tmap = [&](const void* ptr, int rows, unsigned box_rows) {
        CUtensorMap m;
        cuuint64_t dims[2] = {(cuuint64_t)K, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)K * 2};
        cuuint32_t boxes[2] = {64, box_rows}, unit[2] = {1, 1};
        if (encode(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void*)ptr, dims, strides, boxes, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                   CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
            fprintf(stderr, "cuTensorMapEncodeTiled failed\n");
            exit(1);
        }
        TmaMap t;
        memcpy(&t, &m, sizeof t);
        return t;
    };
    std::vector<TmaMap> wmaps(sets), xmaps(sets);
    for (int s = 0; s < sets; s++) wmaps[s] = tmap(wall + wbytes * s, N, WG_ROWS), xmaps[s] = tmap(xs[s], M, WG_N);
#endif
    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, KERNEL, block.x, smem));
    cudaFuncAttributes fa;
    CK(cudaFuncGetAttributes(&fa, KERNEL));
    const int blocks = grid.x * grid.y;
    printf("== %s  M=%d N=%d K=%d: %d blocks of %d threads, %d regs, %zu B dyn smem, %d blocks/SM fit (%.2f per SM in the grid)\n",
           name, M, N, K, blocks, block.x, fa.numRegs, smem, per_sm, blocks / 132.0);

    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    auto graph_of = [&](bool pdl) {
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        for (int c = 0; c < calls; c++) {
            const int s = c % sets;
            cudaLaunchConfig_t cfg = {};
            cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = st;
            cudaLaunchAttribute at[2];
            at[0].id = cudaLaunchAttributeClusterDimension;
            at[0].val.clusterDim.x = 1, at[0].val.clusterDim.y = FAMILY >= 4 ? grid.y : 1, at[0].val.clusterDim.z = 1;
            at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
            at[1].val.programmaticStreamSerializationAllowed = 1;
            cfg.attrs = at, cfg.numAttrs = pdl ? 2 : 1;
            const u16* x = xs[s];
            const u16* w = (const u16*)(wall + wbytes * s);
            u16* y = ys[s];
#if FAMILY == 1 || FAMILY == 4
            CK(cudaLaunchKernelEx(&cfg, KERNEL, x, w, y, M, N, K));
#elif FAMILY == 5
            CK(cudaLaunchKernelEx(&cfg, KERNEL, x, w, y, M, N, K, wmaps[s], xmaps[s]));
#else
            CK(cudaLaunchKernelEx(&cfg, KERNEL, x, w, y, M, N, K, ws, counters));
#endif
        }
        CK(cudaStreamEndCapture(st, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        return ge;
    };
    for (int pdl = 1; pdl >= 0; pdl--) {
        cudaGraphExec_t ge = graph_of(pdl);
        // Warm-up: replays for 300 ms, so the clocks have left idle (the first version of
        // this probe ran from an idle GPU and timed 5-10 % slower than `bench`).
        {
            cudaEvent_t a, b;
            CK(cudaEventCreate(&a));
            CK(cudaEventCreate(&b));
            float ms = 0;
            CK(cudaEventRecord(a, st));
            while (ms < 300) {
                for (int i = 0; i < 20; i++) CK(cudaGraphLaunch(ge, st));
                CK(cudaEventRecord(b, st));
                CK(cudaEventSynchronize(b));
                CK(cudaEventElapsedTime(&ms, a, b));
            }
        }
        cudaEvent_t a, b;
        CK(cudaEventCreate(&a));
        CK(cudaEventCreate(&b));
        std::vector<float> per;
        for (int r = 0; r < 9; r++) {
            CK(cudaEventRecord(a, st));
            CK(cudaGraphLaunch(ge, st));
            CK(cudaEventRecord(b, st));
            CK(cudaEventSynchronize(b));
            float ms;
            CK(cudaEventElapsedTime(&ms, a, b));
            per.push_back(ms * 1000 / calls);
        }
        std::sort(per.begin(), per.end());
        // The timeline: one more replay with the records reset.
        unsigned zero = 0;
        CK(cudaMemcpyToSymbol(tl_n, &zero, 4));
        CK(cudaGraphLaunch(ge, st));
        CK(cudaStreamSynchronize(st));
        unsigned n;
        CK(cudaMemcpyFromSymbol(&n, tl_n, 4));
        std::vector<Rec> rec(std::min(n, 1u << 16));
        CK(cudaMemcpyFromSymbol(rec.data(), tl_rec, rec.size() * sizeof(Rec)));
        // The graph replays calls 0..calls-1 over sets c % sets: the record's set is its call
        // modulo sets; recover the call from the order of the ends.
        std::vector<std::vector<Rec>> by(calls);
        std::vector<int> set_seen(sets, 0);
        std::sort(rec.begin(), rec.end(), [](const Rec& p, const Rec& q) { return p.t0 < q.t0; });
        // Each set is used by calls s, s + sets, ...: assign a set's records to its calls in
        // start order, `blocks` records each.
        std::vector<std::vector<Rec>> of_set(sets);
        for (auto& r : rec) of_set[r.call].push_back(r);
        for (int s = 0; s < sets; s++)
            for (size_t i = 0; i < of_set[s].size(); i++) {
                const int c = s + sets * (int)(i / blocks);
                if (c < calls) by[c].push_back(of_set[s][i]);
            }
        const unsigned long long t00 = rec.empty() ? 0 : rec[0].t0;
        printf("-- %s: %.3f us/call (events, median of 9 replays of %d calls; min %.3f max %.3f); %u records\n",
               pdl ? "chained (PDL)" : "unchained", per[4], calls, per[0], per[8], n);
        double sum_period = 0, sum_early = 0, sum_rel = 0, sum_span = 0, sum_lastrel = 0, sum_dur = 0, sum_tail = 0, sum_first = 0;
        int cnt = 0;
        unsigned long long prev_end = 0;
        for (int c = 0; c < calls; c++) {
            auto& v = by[c];
            if ((int)v.size() != blocks) { printf("call %d: %zu records\n", c, v.size()); prev_end = 0; continue; }
            unsigned long long s0 = ~0ull, s1 = 0, r0 = ~0ull, r1 = 0, e0 = ~0ull, e1 = 0;
            std::vector<double> dur, ends;
            for (auto& r : v) {
                s0 = std::min(s0, r.t0), s1 = std::max(s1, r.t0);
                r0 = std::min(r0, r.t1), r1 = std::max(r1, r.t1);
                e0 = std::min(e0, r.t2), e1 = std::max(e1, r.t2);
                dur.push_back((double)(r.t2 - std::max(r.t1, prev_end ? prev_end : r.t1)));
                ends.push_back((double)r.t2);
            }
            std::sort(dur.begin(), dur.end());
            std::sort(ends.begin(), ends.end());
            int early = 0;
            for (auto& r : v) early += prev_end && r.t0 < prev_end;
            if (c >= 8 && prev_end) {
                sum_period += e1 - prev_end;            // this call's end after the previous one's
                sum_early += early;                     // blocks started before the previous call ended
                sum_first += (double)s0 - (double)prev_end;  // first block start (negative: before)
                sum_rel += (double)r0 - (double)prev_end;    // first release after the previous end
                sum_lastrel += (double)r1 - (double)prev_end;
                sum_span += e1 - r0;                    // first release to last end
                sum_dur += dur[dur.size() / 2];         // median block: release to end
                sum_tail += e1 - ends[ends.size() / 2]; // last end after the median end
                cnt++;
            }
            if (c >= 8 && c < 11)
                printf("   call %2d (t = %8.3f us): starts %8.3f..%8.3f  released %8.3f..%8.3f  ends %8.3f..%8.3f  (us, from the previous call's end)  %d blocks early\n",
                       c, (e1 - t00) / 1e3, ((double)s0 - prev_end) / 1e3, ((double)s1 - prev_end) / 1e3, ((double)r0 - prev_end) / 1e3,
                       ((double)r1 - prev_end) / 1e3, ((double)e0 - prev_end) / 1e3, ((double)e1 - prev_end) / 1e3, early);
            prev_end = e1;
        }
        if (cnt)
            printf("   mean over %d calls (us): period %.3f | first start %+.3f, first release %+.3f, last release %+.3f after the previous end | "
                   "%.1f of %d blocks started before it | release->last end %.3f | median block %.3f | last end - median end %.3f\n",
                   cnt, sum_period / cnt / 1e3, sum_first / cnt / 1e3, sum_rel / cnt / 1e3, sum_lastrel / cnt / 1e3, sum_early / cnt, blocks,
                   sum_span / cnt / 1e3, sum_dur / cnt / 1e3, sum_tail / cnt / 1e3);
        if (const char* out = getenv("OUT")) {
            std::string f = std::string(out) + "/" + name + "_" + std::to_string(N) + "x" + std::to_string(K) + "_m" + std::to_string(M) + (pdl ? "_pdl" : "_nopdl") + ".csv";
            FILE* fp = fopen(f.c_str(), "w");
            fprintf(fp, "call,bx,by,smid,start_ns,release_ns,end_ns\n");
            for (int c = 0; c < calls; c++)
                for (auto& r : by[c]) fprintf(fp, "%d,%u,%u,%u,%lld,%lld,%lld\n", c, r.bx, r.by, r.smid, (long long)(r.t0 - t00), (long long)(r.t1 - t00), (long long)(r.t2 - t00));
            fclose(fp);
        }
    }
    return 0;
}
