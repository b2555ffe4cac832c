//! Kernels of our own (kernels/gemv.cu, kernels/mma.cu) as candidates: their parameter
//! grids, ids, applicability, compilation and launch.
//!
//! - `cuda:gemv:r<rows>:t<threads>:u<unroll>:m<max M>` — CUDA-core GEMV, M <= 4;
//! - `cuda:mma:mt<m16 tiles>:w<warps>:v<vectors>:n<n8 tiles>:k<k split>` — tensor-core
//!   GEMM for M <= 32 (mma.sync.m16n8k16);
//! - `cuda:qmma:mt<m16 tiles>:w<warps>:v<chunks>:n<n8 tiles>:k<k split>:p<steps ahead>` — the same on
//!   int4 weights (q4_1, g128) dequantized in registers, M <= 16 (kernels/qmma.cu). The
//!   weight format comes from the problem, like the dtype;
//! - `cuda:wg:n<tokens>:g<warpgroups>:t<64-row tiles>:s<stages>:k<k split>` — Hopper
//!   warpgroup tensor-core GEMM (wgmma, sm_90a only) for 4 < M <= 128 (kernels/wgmma.cu);
//!   the K split is the launch's cluster size, so variants differing only in it share one
//!   module;
//! - `cuda:wgt:n<tokens>:g<warpgroups>:t<64-row tiles>:s<stages>:k<k split>` — the same
//!   kernel with TMA copies by a producer warp and mbarriers instead of cp.async and a
//!   block barrier per step, which allows deeper pipelines (12 and 16 stages).

use super::device::{drv, tensor_map, Gpu};
use super::rtc::Rtc;
use crate::backend::kernels::{self, Spec, Variant, GEMV_SPEC, MMA, MMAL, QMMA, WGMMA};
use crate::error::{Error, Result};
use crate::problem::{DType, Layout, Problem, WeightFormat};
use cudarc::driver::{CudaFunction, LaunchConfig};

/// The tensor-core kernel of kernels/mma.cu.
pub static MMA_SPEC: Spec = Spec {
    family: "mma",
    source: MMA,
    entry: "mma_kernel",
    dtype_define: "MMA_DTYPE",
    params: &[
        ("mt", "MMA_MT", &[1, 2]),
        ("w", "MMA_WARPS", &[4, 8, 16]),
        ("v", "MMA_V", &[1, 2, 4]),
        ("n", "MMA_NT", &[1, 2, 4]),
        ("k", "MMA_KSPLIT", &[1, 2, 4, 8]),
    ],
    launch: &[],
};

/// The same GEMM with the weights read in whole 128-byte lines and turned into fragments
/// through each warp's shared-memory tile (kernels/mmal.cu), for M <= 8: one step is 128
/// bytes of a row (v2), one n8 tile of tokens. The parameters keep `cuda:mma`'s names.
pub static MMAL_SPEC: Spec = Spec {
    family: "mmal",
    source: MMAL,
    entry: "mmal_kernel",
    dtype_define: "MMA_DTYPE",
    params: &[
        ("mt", "MMA_MT", &[1, 2]),
        ("w", "MMA_WARPS", &[4, 8, 16]),
        ("v", "MMA_V", &[2]),
        ("n", "MMA_NT", &[1]),
        ("k", "MMA_KSPLIT", &[1, 2, 4, 8]),
    ],
    launch: &[],
};

/// Shared memory a `cuda:mmal` block may take: what every sm_80+ GPU grants a block
/// (sm_86/89 allow 99 KiB), leaving room for a second block on Hopper.
const MMAL_SMEM_MAX: u32 = 96 * 1024;

/// The int4 tensor-core kernel of kernels/qmma.cu (defines shared with MMA_SPEC).
pub static QMMA_SPEC: Spec = Spec {
    family: "qmma",
    source: QMMA,
    entry: "qmma_kernel",
    dtype_define: "MMA_DTYPE",
    params: &[
        ("mt", "MMA_MT", &[1, 2, 4]),
        ("w", "MMA_WARPS", &[4, 8, 16]),
        ("v", "MMA_V", &[1, 2, 4]),
        ("n", "MMA_NT", &[1, 2]),
        ("k", "MMA_KSPLIT", &[1, 2, 4]),
        ("p", "QMMA_DEPTH", &[1, 2, 3, 4]),
    ],
    launch: &[],
};

/// The warpgroup kernel of kernels/wgmma.cu.
pub static WG_SPEC: Spec = Spec {
    family: "wg",
    source: WGMMA,
    entry: "wg_kernel",
    dtype_define: "WG_DTYPE",
    params: &[
        ("n", "WG_N", &[16, 32, 64, 128]),
        ("g", "WG_WGS", &[1, 2]),
        ("t", "WG_MT", &[1, 2]),
        ("s", "WG_STAGES", &[4, 6, 8]),
        ("k", "WG_KSPLIT", &[1, 2, 3, 4, 6, 8, 12, 16]),
    ],
    launch: &["k"],
};

/// The same kernel with TMA copies (WG_TMA = 1): one more warp, the producer, and every
/// stage in flight. Only the configurations that can beat the cp.async form: one
/// warpgroup, deep pipelines (8 for reference; 12 and 16 need one block per SM).
pub static WGT_SPEC: Spec = Spec {
    family: "wgt",
    source: WGMMA,
    entry: "wg_kernel",
    dtype_define: "WG_DTYPE",
    params: &[
        ("n", "WG_N", &[16, 32, 64, 128]),
        ("g", "WG_WGS", &[1]),
        ("t", "WG_MT", &[1, 2]),
        ("s", "WG_STAGES", &[8, 12, 16]),
        ("k", "WG_KSPLIT", &[1, 2, 3, 4, 6, 8, 12, 16]),
    ],
    launch: &["k"],
};

/// Dynamic shared memory of `cuda:mmal`'s per-warp tiles (W rows and tokens, one step).
fn line_tiles(v: &Variant) -> u32 {
    if v.spec.family != MMAL_SPEC.family {
        return 0;
    }
    v.get("w") * (16 * v.get("mt") + 8 * v.get("n")) * 4 * v.get("v") * 16
}

/// Whether `v` is the warpgroup kernel, in either copy form.
fn is_wg(v: &Variant) -> bool {
    v.spec.family == WG_SPEC.family || v.spec.family == WGT_SPEC.family
}

/// The only architecture the wgmma kernel compiles for (as `sm_90a`, rtc.rs).
pub const WG_ARCH: &str = "sm_90";
/// Dynamic shared memory a block may opt into on sm_90.
const WG_SMEM_MAX: usize = 227 * 1024;

/// W rows per block of a wgmma variant.
fn wg_rows(v: &Variant) -> usize {
    64 * (v.get("g") * v.get("t")) as usize
}

/// Dynamic shared memory of a wgmma variant: its pipeline buffers (or the epilogue's
/// partial tile, if larger) and 1024 bytes to align them to the swizzle period.
fn wg_smem(v: &Variant) -> usize {
    let (n, rows, stages) = (v.get("n") as usize, wg_rows(v), v.get("s") as usize);
    (stages * (rows + n) * 128).max(n * (rows + 4) * 4) + 1024
}

/// What the wgmma kernel requires of a problem (the M bound aside).
fn wg_ok(p: &Problem) -> bool {
    p.dtype != DType::F32 && p.layout == Layout::TN && p.batch == 1 && p.k.is_multiple_of(64)
}

/// The QMMA_FORMAT define for a weight format the int4 kernel reads.
fn qmma_format(f: WeightFormat) -> Option<&'static str> {
    match f {
        WeightFormat::Q4_1 => Some("0"),
        WeightFormat::G128 => Some("1"),
        _ => None,
    }
}

/// Every family of our CUDA GEMM kernels.
static SPECS: [&Spec; 6] = [&GEMV_SPEC, &MMA_SPEC, &MMAL_SPEC, &QMMA_SPEC, &WG_SPEC, &WGT_SPEC];

/// Whether `family` (the second field of an id) names one of our kernel families.
pub fn is_family(family: &str) -> bool {
    SPECS.iter().any(|s| s.family == family)
}

/// One of our CUDA kernels (a point of the GEMV or MMA grid; see backend/kernels.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Custom(pub Variant);

/// Workspace the split-K MMA variants need: partial tiles and one counter per tile.
pub const WS_BYTES: usize = 16 << 20;
pub const COUNTERS: usize = 1 << 16;

impl Custom {
    /// Every variant applicable to `p` on a GPU of NVRTC target `arch` (rtc.rs).
    pub fn candidates(p: &Problem, arch: &str) -> Vec<Custom> {
        let grid = |spec: &'static Spec, param: &str, value: u32| -> Vec<Custom> {
            spec.all().into_iter().map(Custom).filter(|c| c.0.get(param) == value && c.unsupported(p).is_none()).collect()
        };
        if !p.wformat.is_dense() {
            let Some(nt) = [1u32, 2].into_iter().find(|&x| 8 * x as usize >= p.m) else { return Vec::new() };
            return grid(&QMMA_SPEC, "n", nt);
        }
        let mut v: Vec<Custom> = kernels::gemv_candidates(p).into_iter().map(Custom).collect();
        if kernels::base_ok(p) {
            if let Some(nt) = [1u32, 2, 4].into_iter().find(|&x| 8 * x as usize >= p.m) {
                // `cuda:mmal` reads the same steps in whole lines: at M <= 8 it takes over
                // the widest steps (v4, which won no row of any committed table), keeping
                // the tune within its time.
                v.extend(grid(&MMA_SPEC, "n", nt).into_iter().filter(|c| nt > 1 || c.0.get("v") < 4));
                if nt == 1 {
                    v.extend(grid(&MMAL_SPEC, "n", 1));
                }
            }
        }
        // Offered above the GEMV's M (at M <= 4 it reads the weights with fewer
        // instructions); it runs any M up to its token count.
        if arch == WG_ARCH && wg_ok(p) && p.m > 4 {
            if let Some(n) = [16u32, 32, 64, 128].into_iter().find(|&x| x as usize >= p.m) {
                v.extend(grid(&WG_SPEC, "n", n));
                v.extend(grid(&WGT_SPEC, "n", n));
            }
        }
        v
    }

    pub fn id(&self) -> String {
        self.0.id("cuda")
    }

    /// What `tune` compiles ahead for `problems` (kernels::modules_after_first).
    pub fn modules_after_first(problems: &[Problem], arch: &str) -> Vec<(String, String)> {
        kernels::modules_after_first(problems, |p| Self::candidates(p, arch), |c, p| c.module_name(p), |c, p| c.module(p).1)
    }

    pub fn parse(id: &str) -> std::result::Result<Custom, String> {
        Variant::parse("cuda", &SPECS, id).map(Custom)
    }

    /// Why this variant cannot run `p`, if it cannot.
    pub fn unsupported(&self, p: &Problem) -> Option<String> {
        let v = &self.0;
        let quant = v.spec.family == QMMA_SPEC.family;
        if quant == p.wformat.is_dense() {
            return Some(if quant {
                format!("runs int4 weights (q4_1, g128), {p} has dense ones")
            } else {
                format!("runs dense weights, {p} has {} ones", p.wformat)
            });
        }
        if is_wg(v) {
            return Self::wg_unsupported(v, p);
        }
        if quant {
            if qmma_format(p.wformat).is_none() || p.dtype == DType::F32 || p.layout != Layout::TN || p.batch != 1 {
                return Some(format!("needs bf16/f16 activations, q4_1 or g128 weights, layout TN and batch 1 (got {p})"));
            }
        } else if v.spec.family == GEMV_SPEC.family {
            return kernels::gemv_unsupported(v, p);
        } else if !kernels::base_ok(p) {
            return Some(kernels::base_requirement(p));
        }
        let (mt, warps, vv, nt, ksplit) = (v.get("mt"), v.get("w"), v.get("v"), v.get("n"), v.get("k"));
        let tiles = p.n.div_ceil(16 * mt as usize);
        // The warps' partial tiles (store_tile, static shared memory).
        let partials = warps * mt * 16 * (nt * 8 + 1) * 4;
        if p.m > 8 * nt as usize {
            Some(format!("compiled for M <= {}, got M = {}", 8 * nt, p.m))
        } else if quant && (v.get("p") + 1) * (10 * mt * vv + 16 * nt * vv) + 4 * mt * nt > 176 {
            // W, parameters and X of the steps in flight plus the one in use, and the
            // accumulators, in 32-bit registers: beyond this the compiler spills or
            // occupancy collapses.
            Some("keeps too many loads in registers".into())
        } else if partials > 48 * 1024 {
            Some("needs more than 48 KiB of static shared memory".into())
        } else if partials + line_tiles(v) > MMAL_SMEM_MAX {
            Some(format!("needs more than {} KiB of shared memory", MMAL_SMEM_MAX / 1024))
        } else if !quant && !p.k.is_multiple_of(32 * vv as usize) {
            Some(format!("needs K % {} == 0, got K = {}", 32 * vv, p.k))
        } else if ksplit > 1 && (tiles > COUNTERS || tiles * (ksplit * mt * 16 * nt * 8) as usize * 4 > WS_BYTES) {
            Some("the split-K workspace is too small for this N".into())
        } else {
            None
        }
    }

    fn wg_unsupported(v: &Variant, p: &Problem) -> Option<String> {
        let (n, ksplit) = (v.get("n") as usize, v.get("k") as usize);
        if !wg_ok(p) {
            Some(format!("needs bf16/f16, layout TN, batch 1 and K % 64 == 0 (got {p})"))
        } else if p.m > n {
            Some(format!("compiled for M <= {n}, got M = {}", p.m))
        } else if wg_smem(v) > WG_SMEM_MAX {
            Some(format!("needs {} KiB of shared memory, more than the 227 KiB a block may have", wg_smem(v) / 1024))
        } else if ksplit > p.k / 64 {
            Some(format!("splits K = {} into more parts than its {} steps of 64", p.k, p.k / 64))
        } else {
            None
        }
    }

    /// Module name and source of this variant for `p` (the dtype, and for the int4
    /// kernel the weight format, are compiled in).
    pub(crate) fn module(&self, p: &Problem) -> (String, String) {
        let d = p.dtype;
        let source = match self.weight_format(p) {
            Some(f) => self.0.source(d, &[("QMMA_FORMAT", f)]),
            None if self.0.spec.family == WGT_SPEC.family => self.0.source(d, &[("WG_TMA", "1")]),
            None if self.0.spec.family == MMAL_SPEC.family => self.0.source(d, &[("MMA_LINE", "1")]),
            None => self.0.source(d, &[]),
        };
        (self.module_name(p), source)
    }

    /// The QMMA_FORMAT the int4 kernel compiles in for `p`; None for every other family.
    fn weight_format(&self, p: &Problem) -> Option<&'static str> {
        qmma_format(p.wformat).filter(|_| self.0.spec.family == QMMA_SPEC.family)
    }

    /// The name `module` gives this variant's module for `p`, without assembling the source.
    fn module_name(&self, p: &Problem) -> String {
        match self.weight_format(p) {
            Some(_) => format!("{}_{}", self.0.module_name(p.dtype), p.wformat),
            None => self.0.module_name(p.dtype),
        }
    }

    /// Compiles every listed variant not compiled yet, in parallel.
    pub fn prepare(variants: &[Custom], p: &Problem, rtc: &Rtc, gpu: &Gpu) {
        rtc.prepare(gpu, variants.iter().map(|v| v.module(p)).collect())
    }

    pub fn load(&self, p: &Problem, rtc: &Rtc, gpu: &Gpu) -> Result<CudaFunction> {
        let (name, source) = self.module(p);
        let f = rtc.function(gpu, &name, || source, self.0.spec.entry)?;
        use cudarc::driver::sys::CUfunction_attribute as A;
        if self.0.spec.family == MMAL_SPEC.family {
            // Beyond 48 KiB a kernel must opt in to its dynamic shared memory.
            f.set_attribute(A::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, line_tiles(&self.0) as i32).map_err(drv)?;
        }
        if is_wg(&self.0) {
            // Likewise, and beyond 8 blocks a kernel must opt in to its cluster size.
            f.set_attribute(A::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, wg_smem(&self.0) as i32).map_err(drv)?;
            f.set_attribute(A::CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1).map_err(drv)?;
        }
        Ok(f)
    }

    /// Grid (row tiles, K split), threads and dynamic shared memory of a launch on `p`.
    fn geometry(&self, p: &Problem) -> ((u32, u32), u32, u32) {
        let v = &self.0;
        let n = p.n as u32;
        match v.spec.family {
            "gemv" => {
                let (blocks, threads) = kernels::gemv_launch(v, p);
                ((blocks, 1), threads, 0)
            }
            // The TMA form adds a producer warp.
            "wg" | "wgt" => {
                let producer = if v.spec.family == WGT_SPEC.family { 32 } else { 0 };
                ((n.div_ceil(wg_rows(v) as u32), v.get("k")), 128 * v.get("g") + producer, wg_smem(v) as u32)
            }
            _ => ((n.div_ceil(16 * v.get("mt")), v.get("k")), 32 * v.get("w"), line_tiles(v)),
        }
    }

    /// Enqueues the kernel. `ws`/`counters`: the split-K workspace (WS_BYTES) and
    /// COUNTERS zeroed u32 (the kernel leaves them zeroed).
    #[allow(clippy::too_many_arguments)]
    pub fn launch(&self, gpu: &Gpu, f: &CudaFunction, x: u64, w: u64, y: u64, p: &Problem, ws: u64, counters: u64, pdl: bool) -> Result<()> {
        let (m, n, k) = (p.m as i32, p.n as i32, p.k as i32);
        let family = self.0.spec.family;
        let ((blocks, ksplit), threads, smem) = self.geometry(p);
        let cfg = LaunchConfig { grid_dim: (blocks, ksplit, 1), block_dim: (threads, 1, 1), shared_mem_bytes: smem };
        // TMA copies: one descriptor per operand pointer, W in boxes of the block's rows, X
        // of the token count (rows past M read as zeros).
        let maps = if family == WGT_SPEC.family {
            let rows = wg_rows(&self.0) as u32;
            Some([tensor_map(w, p.n, p.k, rows, p.dtype)?, tensor_map(x, p.m, p.k, self.0.get("n"), p.dtype)?])
        } else {
            None
        };
        // SAFETY: x holds m·k, w holds n·k (16-bit, or packed planar int4 for qmma), y holds
        // m·n 16-bit elements; `unsupported`
        // returned None for this problem (K multiple of the step, M within the variant,
        // workspace large enough).
        unsafe {
            let mut b = gpu.launcher(f, pdl);
            b.arg(&x).arg(&w).arg(&y).arg(&m).arg(&n).arg(&k);
            if is_wg(&self.0) {
                b.cluster(ksplit); // the K split reduces over distributed shared memory
                if let Some(maps) = &maps {
                    b.arg(&maps[0]).arg(&maps[1]);
                }
            } else if family != GEMV_SPEC.family {
                b.arg(&ws).arg(&counters);
            }
            b.launch(cfg).map_err(drv)?;
        }
        Ok(())
    }
}

/// Kept so callers can report a uniform error type.
pub fn not_usable(id: &str, why: String) -> Error {
    Error::runtime(format!("{id}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (n, g, t, s) of the wgmma kernel for one shape: `k` values within K's steps,
    /// variants within shared memory.
    #[test]
    fn wgmma_variants_round_trip_and_applicability() {
        let p = Problem::linear(DType::BF16, 128, 1280, 8192).unwrap();
        assert!(Custom::candidates(&p, "sm_80").is_empty(), "M = 128: only the sm_90a kernel");
        assert!(Custom::candidates(&p, "sm_100").is_empty(), "wgmma is sm_90a only");
        let c = Custom::candidates(&p, "sm_90");
        // n128: 64 rows a block (24 KiB a stage) with 4, 6 and 8 stages, 128 rows (g2 or
        // t2, 32 KiB) with 4 and 6 (8 need 257 KiB), 256 rows (48 KiB) with 4; x 8 splits.
        let cp_async = c.iter().filter(|v| v.0.spec.family == "wg").count();
        assert_eq!(cp_async, (3 + 2 + 2 + 1) * 8);
        // The TMA form: 64 rows with 8 stages only (12 would need 289 KiB) x 8 splits.
        assert_eq!(c.len() - cp_async, 8);
        for v in &c {
            assert!(is_wg(&v.0) && is_family(v.0.spec.family));
            assert_eq!(v.0.get("n"), 128);
            assert_eq!(Custom::parse(&v.id()).unwrap(), *v);
        }
        let g2 = Custom::parse("cuda:wg:n128:g2:t1:s6:k12").unwrap();
        assert_eq!(g2.geometry(&p), ((10, 12), 256, 6 * 256 * 128 + 1024));
        assert_eq!(Custom::parse("cuda:wg:n128:g2:t2:s4:k4").unwrap().geometry(&p), ((5, 4), 256, 4 * 384 * 128 + 1024));
        assert!(Custom::parse("cuda:wg:n128:g2:t1:s8:k1").unwrap().unsupported(&p).unwrap().contains("227 KiB"));
        assert!(g2.unsupported(&p.with_m(129)).unwrap().contains("M <= 128"));
        assert!(g2.unsupported(&Problem::linear(DType::BF16, 64, 1280, 8160).unwrap()).unwrap().contains("K % 64"));
        assert!(g2.unsupported(&Problem::linear(DType::BF16, 64, 1280, 512).unwrap()).unwrap().contains("8 steps"));
        // It runs any M up to its token count (a table row serves smaller M too), but is
        // offered from M = 5, with the smallest token count that covers M.
        assert!(Custom::parse("cuda:wg:n32:g1:t1:s4:k2").unwrap().unsupported(&p.with_m(3)).is_none());
        assert!(Custom::candidates(&p.with_m(4), "sm_90").iter().all(|v| v.0.spec.family != "wg"));
        assert!(Custom::candidates(&p.with_m(5), "sm_90").iter().any(|v| v.0.spec.family == "wg" && v.0.get("n") == 16));
        assert!(Custom::candidates(&p.with_m(17), "sm_90").iter().any(|v| v.0.spec.family == "wg" && v.0.get("n") == 32));
        assert!(Custom::candidates(&p.with_m(33), "sm_90").iter().all(|v| v.0.get("n") == 64));
        assert!(Custom::candidates(&p.with_m(16), "sm_90").iter().any(|v| v.0.spec.family == "mma"));
        // Variants differing only in the K split share one module.
        let (a, b) = (Custom::parse("cuda:wg:n64:g1:t2:s6:k1").unwrap(), Custom::parse("cuda:wg:n64:g1:t2:s6:k16").unwrap());
        let q = p.with_m(64);
        assert_eq!(a.module(&q), b.module(&q));
        assert_eq!(a.module(&q).0, "wg_bf16_n64_g1_t2_s6");
        assert!(a.module(&q).1.starts_with("#define WG_DTYPE 0\n#define WG_N 64\n#define WG_WGS 1\n#define WG_MT 2\n#define WG_STAGES 6\n"));
        let f = Custom::parse("cuda:wg:n128:g1:t1:s4:k1").unwrap().module(&Problem::linear(DType::F16, 128, 64, 64).unwrap());
        assert!(f.1.contains("#define WG_DTYPE 1\n") && f.1.contains("wg_kernel"));
        for bad in ["cuda:wg:n8:g1:t1:s4:k1", "cuda:wg:n48:g1:t1:s4:k1", "cuda:wg:n32:g3:t1:s4:k1", "cuda:wg:n32:g1:t1:s4:k7", "cuda:wg:n32:g1:t1:s4", "cuda:wg:n32:g1:s4:k1"] {
            assert!(Custom::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_round_trip_and_applicability() {
        let p1 = Problem::linear(DType::BF16, 1, 1280, 8192).unwrap();
        let c1 = Custom::candidates(&p1, "sm_80");
        // GEMV 18; mma n1 without v4 (2 mt x 3 w x 2 v x 4 k) 48; mmal 2 mt x 3 w x 4 k less
        // mt2 w16 (100 KiB of shared memory) 20.
        assert_eq!(c1.len(), 18 + 48 + 20);
        for c in &c1 {
            assert_eq!(Custom::parse(&c.id()).unwrap(), *c);
            assert!(is_family(c.id().split(':').nth(1).unwrap()), "the backend resolves {}", c.id());
            assert!(c.unsupported(&p1).is_none());
        }
        let p8 = p1.with_m(8);
        let c8 = Custom::candidates(&p8, "sm_80");
        assert!(c8.iter().all(|c| ["mma", "mmal"].contains(&c.0.spec.family) && c.0.get("n") == 1), "{c8:?}");
        assert_eq!(c8.iter().filter(|c| c.0.spec.family == "mmal").count(), 20);
        // The line-order form: M <= 8 only, its tiles in dynamic shared memory (the
        // launch's third figure), its module the mma source with MMA_LINE.
        let l = Custom::parse("cuda:mmal:mt2:w8:v2:n1:k4").unwrap();
        assert_eq!(l.geometry(&p8), ((40, 4), 256, 8 * (32 + 8) * 8 * 16));
        assert!(l.unsupported(&p8.with_m(9)).unwrap().contains("M <= 8"));
        assert!(Custom::parse("cuda:mmal:mt2:w16:v2:n1:k1").unwrap().unsupported(&p8).unwrap().contains("96 KiB"));
        assert!(Custom::candidates(&p8.with_m(9), "sm_80").iter().all(|c| c.0.spec.family != "mmal"));
        let (name, src) = l.module(&p8);
        assert_eq!(name, "mmal_bf16_mt2_w8_v2_n1_k4");
        assert!(src.starts_with("#define MMA_LINE 1\n#define MMA_DTYPE 0\n") && src.contains("mmal_kernel"));
        for bad in ["cuda:mmal:mt1:w8:v1:n1:k1", "cuda:mmal:mt1:w8:v2:n2:k1", "cuda:mmal:mt1:w8:v2:n1"] {
            assert!(Custom::parse(bad).is_err(), "{bad}");
        }
        let m8 = Custom::parse("cuda:mma:mt1:w4:v4:n1:k2").unwrap();
        assert!(m8.unsupported(&p1.with_m(9)).unwrap().contains("M <= 8"));
        let k96 = Problem::linear(DType::BF16, 8, 1280, 96).unwrap();
        assert!(m8.unsupported(&k96).unwrap().contains("K % 128"));
        assert!(Custom::candidates(&k96, "sm_80").iter().all(|c| c.0.spec.family == "gemv" || c.0.get("v") == 1));
        assert!(Custom::candidates(&p1.with_m(33), "sm_80").is_empty());
        assert!(Custom::candidates(&Problem::linear(DType::F32, 1, 64, 64).unwrap(), "sm_80").is_empty());
        assert!(Custom::candidates(&Problem::linear(DType::BF16, 1, 64, 40).unwrap(), "sm_80").iter().all(|c| c.0.spec.family == "gemv"));
        assert_eq!(Custom::candidates(&p1.with_m(32), "sm_80").len(), 72 - 12); // w16 with mt2 and n4 exceeds 48 KiB
        // int4 weights: only the qmma family, M <= 16, K any multiple of the block.
        let q = Problem::linear(DType::BF16, 1, 1280, 8192).unwrap().with_weights(WeightFormat::G128).unwrap();
        let cq = Custom::candidates(&q, "sm_80");
        // (mt, v, depth) within the register estimate: depth 1 mt1v1 mt1v2 mt2v1 mt2v2 mt4v1,
        // depth 2 mt1v1 mt1v2 mt2v1, depth 3 mt1v1 mt2v1, depth 4 mt1v1; x 3 warps x 3 k splits.
        assert_eq!(cq.len(), 11 * 3 * 3);
        assert!(cq.iter().all(|c| c.0.spec.family == "qmma" && c.0.get("n") == 1 && Custom::parse(&c.id()).unwrap() == *c));
        assert!(c1.iter().all(|c| c.unsupported(&q).unwrap().contains("dense weights")));
        assert!(cq[0].unsupported(&p1).unwrap().contains("int4 weights"));
        assert!(Custom::candidates(&q.with_m(16), "sm_80").iter().all(|c| c.0.get("n") == 2));
        assert!(Custom::candidates(&q.with_m(17), "sm_80").is_empty());
        let q8 = p1.with_weights(WeightFormat::Q8_0).unwrap();
        assert!(Custom::candidates(&q8, "sm_80").is_empty(), "no fused q8_0 kernel");
        let small = Problem::linear(DType::F16, 4, 576, 576).unwrap().with_weights(WeightFormat::Q4_1).unwrap();
        assert_eq!(Custom::candidates(&small, "sm_80").len(), 99, "K = 576 is not a multiple of 128: tail chunks read as zero");
        let (name, src) = cq[0].module(&q);
        assert_eq!(name, "qmma_bf16_mt1_w4_v1_n1_k1_p1_g128");
        assert!(src.starts_with("#define QMMA_FORMAT 1\n#define MMA_DTYPE 0\n") && src.contains("qmma_kernel") && src.contains("store_tile"));
        for bad in ["cuda:gemv:r3:t128:u1:m1", "cuda:mma:mt1:w4:v1:n1", "cuda:mma:mt1:w5:v1:n1:k1", "cuda:mma:mt1:w4:v1:n1:k3", "cuda:mma:mt1:w32:v1:n1:k1", "cuda:gemv:x"] {
            assert!(Custom::parse(bad).is_err(), "{bad}");
        }
    }

    /// What `tune` compiles ahead: each module of the later shapes once, in order of first
    /// use, none the first shape compiles itself.
    #[test]
    fn modules_compiled_ahead_are_those_of_the_later_shapes() {
        let shapes = crate::shapes::ShapeFile::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/shapes/llama-h100-63.csv"))).unwrap();
        let problems: Vec<Problem> = shapes.entries.iter().map(|e| e.problem).collect();
        let ahead = Custom::modules_after_first(&problems, WG_ARCH);
        let names: Vec<&str> = ahead.iter().map(|(n, _)| n.as_str()).collect();
        let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "each module once");
        let module_names = |p: &Problem| -> std::collections::HashSet<String> {
            Custom::candidates(p, WG_ARCH).iter().map(|c| c.module(p).0).collect()
        };
        let first = module_names(&problems[0]);
        let later: std::collections::HashSet<String> = problems[1..].iter().flat_map(module_names).collect();
        assert!(names.iter().all(|n| !first.contains(*n)), "the first shape's modules are left to the tuner");
        assert_eq!(unique, later.iter().filter(|n| !first.contains(*n)).map(|n| n.as_str()).collect());
        // In order of first use: the M = 8 shape's wgmma n16 modules, then the M = 32
        // shape's n32, then the M = 128 shape's n128.
        let pos = |prefix: &str| names.iter().position(|n| n.starts_with(prefix)).unwrap();
        assert!(pos("wg_bf16_n16") < pos("wg_bf16_n32") && pos("wg_bf16_n32") < pos("wg_bf16_n128"), "{names:?}");
        // A source is the module's own.
        let (name, src) = &ahead[pos("wgt_bf16_n32")];
        assert!(src.contains("#define WG_TMA 1\n") && src.contains("#define WG_N 32\n"), "{name}");
        assert!(Custom::modules_after_first(&problems[..1], WG_ARCH).is_empty() && Custom::modules_after_first(&[], WG_ARCH).is_empty());
    }

    /// The TMA form: deep pipelines at small M, one more (producer) warp, its own module.
    #[test]
    fn wgt_variants_are_the_tma_form_of_the_wgmma_kernel() {
        let p = Problem::linear(DType::BF16, 32, 4096, 4096).unwrap();
        let c = Custom::candidates(&p, "sm_90");
        let deep: Vec<_> = c.iter().filter(|v| v.0.spec.family == "wgt" && v.0.get("s") == 16).collect();
        assert!(!deep.is_empty() && deep.iter().all(|v| v.0.get("n") == 32));
        let v = Custom::parse("cuda:wgt:n32:g1:t1:s16:k2").unwrap();
        assert_eq!(v.geometry(&p), ((64, 2), 128 + 32, 16 * 96 * 128 + 1024));
        let (name, src) = v.module(&p);
        assert_eq!(name, "wgt_bf16_n32_g1_t1_s16");
        assert!(src.contains("#define WG_TMA 1\n") && src.contains("wg_kernel"), "{}", &src[..200]);
        let (name, src) = Custom::parse("cuda:wg:n32:g1:t1:s8:k2").unwrap().module(&p);
        assert_eq!(name, "wg_bf16_n32_g1_t1_s8");
        assert!(!src.contains("#define WG_TMA 1"));
        // Shared memory bounds it as it does the cp.async form; g2 and 4-6 stages are not offered.
        assert!(Custom::parse("cuda:wgt:n128:g1:t2:s8:k1").unwrap().unsupported(&p.with_m(128)).unwrap().contains("227 KiB"));
        for bad in ["cuda:wgt:n32:g2:t1:s8:k1", "cuda:wgt:n32:g1:t1:s6:k1", "cuda:wgt:n32:g1:t1:s16"] {
            assert!(Custom::parse(bad).is_err(), "{bad}");
        }
    }
}
