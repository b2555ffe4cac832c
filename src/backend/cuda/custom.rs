//! Kernels of our own (kernels/gemv.cu, kernels/mma.cu) as candidates: their parameter
//! grids, ids, applicability, compilation and launch.
//!
//! - `cuda:gemv:r<rows>:t<threads>:u<unroll>:m<max M>` — CUDA-core GEMV, M <= 4;
//! - `cuda:mma:mt<m16 tiles>:w<warps>:v<vectors>:n<n8 tiles>:k<k split>` — tensor-core
//!   GEMM for M <= 32 (mma.sync.m16n8k16);
//! - `cuda:qmma:mt<m16 tiles>:w<warps>:v<chunks>:n<n8 tiles>:k<k split>:p<steps ahead>` — the same on
//!   int4 weights (q4_1, g128) dequantized in registers, M <= 16 (kernels/qmma.cu). The
//!   weight format comes from the problem, like the dtype.

use super::device::{drv, Gpu};
use super::rtc::Rtc;
use crate::backend::kernels::{self, Spec, Variant, GEMV_SPEC, MMA, QMMA};
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
};

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
};

/// The QMMA_FORMAT define for a weight format the int4 kernel reads.
fn qmma_format(f: WeightFormat) -> Option<&'static str> {
    match f {
        WeightFormat::Q4_1 => Some("0"),
        WeightFormat::G128 => Some("1"),
        _ => None,
    }
}

/// One of our CUDA kernels (a point of the GEMV or MMA grid; see backend/kernels.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Custom(pub Variant);

/// Workspace the split-K MMA variants need: partial tiles and one counter per tile.
pub const WS_BYTES: usize = 16 << 20;
pub const COUNTERS: usize = 1 << 16;

impl Custom {
    /// Every variant applicable to `p`.
    pub fn candidates(p: &Problem) -> Vec<Custom> {
        if !p.wformat.is_dense() {
            let Some(nt) = [1u32, 2].into_iter().find(|&x| 8 * x as usize >= p.m) else { return Vec::new() };
            return QMMA_SPEC.all().into_iter().map(Custom).filter(|c| c.0.get("n") == nt && c.unsupported(p).is_none()).collect();
        }
        let mut v: Vec<Custom> = kernels::gemv_candidates(p).into_iter().map(Custom).collect();
        if !kernels::base_ok(p) {
            return v;
        }
        if let Some(nt) = [1u32, 2, 4].into_iter().find(|&x| 8 * x as usize >= p.m) {
            v.extend(MMA_SPEC.all().into_iter().map(Custom).filter(|c| c.0.get("n") == nt && c.unsupported(p).is_none()));
        }
        v
    }

    pub fn id(&self) -> String {
        self.0.id("cuda")
    }

    pub fn parse(id: &str) -> std::result::Result<Custom, String> {
        Variant::parse("cuda", &[&GEMV_SPEC, &MMA_SPEC, &QMMA_SPEC], id).map(Custom)
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
        if p.m > 8 * nt as usize {
            Some(format!("compiled for M <= {}, got M = {}", 8 * nt, p.m))
        } else if quant && (v.get("p") + 1) * (10 * mt * vv + 16 * nt * vv) + 4 * mt * nt > 176 {
            // W, parameters and X of the steps in flight plus the one in use, and the
            // accumulators, in 32-bit registers: beyond this the compiler spills or
            // occupancy collapses.
            Some("keeps too many loads in registers".into())
        } else if warps * mt * 16 * (nt * 8 + 1) * 4 > 48 * 1024 {
            Some("needs more than 48 KiB of static shared memory".into())
        } else if !quant && !p.k.is_multiple_of(32 * vv as usize) {
            Some(format!("needs K % {} == 0, got K = {}", 32 * vv, p.k))
        } else if ksplit > 1 && (tiles > COUNTERS || tiles * (ksplit * mt * 16 * nt * 8) as usize * 4 > WS_BYTES) {
            Some("the split-K workspace is too small for this N".into())
        } else {
            None
        }
    }

    /// Module name and source of this variant for `p` (the dtype, and for the int4
    /// kernel the weight format, are compiled in).
    pub(crate) fn module(&self, p: &Problem) -> (String, String) {
        let d = p.dtype;
        match qmma_format(p.wformat).filter(|_| self.0.spec.family == QMMA_SPEC.family) {
            Some(f) => (format!("{}_{}", self.0.module_name(d), p.wformat), self.0.source(d, &[("QMMA_FORMAT", f)])),
            None => (self.0.module_name(d), self.0.source(d, &[])),
        }
    }

    /// Compiles every listed variant not compiled yet, in parallel.
    pub fn prepare(variants: &[Custom], p: &Problem, rtc: &Rtc, gpu: &Gpu) {
        rtc.prepare(gpu, variants.iter().map(|v| v.module(p)).collect())
    }

    pub fn load(&self, p: &Problem, rtc: &Rtc, gpu: &Gpu) -> Result<CudaFunction> {
        let (name, source) = self.module(p);
        rtc.function(gpu, &name, || source, self.0.spec.entry)
    }

    /// Enqueues the kernel. `ws`/`counters`: the split-K workspace (WS_BYTES) and
    /// COUNTERS zeroed u32 (the kernel leaves them zeroed).
    #[allow(clippy::too_many_arguments)]
    pub fn launch(&self, gpu: &Gpu, f: &CudaFunction, x: u64, w: u64, y: u64, p: &Problem, ws: u64, counters: u64, pdl: bool) -> Result<()> {
        let (m, n, k) = (p.m as i32, p.n as i32, p.k as i32);
        let v = &self.0;
        let is_mma = v.spec.family != GEMV_SPEC.family;
        let (blocks, threads, ksplit) = if is_mma {
            ((n as u32).div_ceil(16 * v.get("mt")), 32 * v.get("w"), v.get("k"))
        } else {
            let (blocks, threads) = kernels::gemv_launch(v, p);
            (blocks, threads, 1)
        };
        let cfg = LaunchConfig { grid_dim: (blocks, ksplit, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: x holds m·k, w holds n·k (16-bit, or packed planar int4 for qmma), y holds
        // m·n 16-bit elements; `unsupported`
        // returned None for this problem (K multiple of the step, M within the variant,
        // workspace large enough).
        unsafe {
            let mut b = gpu.launcher(f, pdl);
            b.arg(&x).arg(&w).arg(&y).arg(&m).arg(&n).arg(&k);
            if is_mma {
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

    #[test]
    fn ids_round_trip_and_applicability() {
        let p1 = Problem::linear(DType::BF16, 1, 1280, 8192).unwrap();
        let c1 = Custom::candidates(&p1);
        assert_eq!(c1.len(), 18 + 72);
        for c in &c1 {
            assert_eq!(Custom::parse(&c.id()).unwrap(), *c);
            assert!(c.unsupported(&p1).is_none());
        }
        let p8 = p1.with_m(8);
        let c8 = Custom::candidates(&p8);
        assert!(c8.iter().all(|c| c.0.spec.family == "mma" && c.0.get("n") == 1), "{c8:?}");
        let m8 = Custom::parse("cuda:mma:mt1:w4:v4:n1:k2").unwrap();
        assert!(m8.unsupported(&p1.with_m(9)).unwrap().contains("M <= 8"));
        let k96 = Problem::linear(DType::BF16, 8, 1280, 96).unwrap();
        assert!(m8.unsupported(&k96).unwrap().contains("K % 128"));
        assert!(Custom::candidates(&k96).iter().all(|c| c.0.spec.family == "gemv" || c.0.get("v") == 1));
        assert!(Custom::candidates(&p1.with_m(33)).is_empty());
        assert!(Custom::candidates(&Problem::linear(DType::F32, 1, 64, 64).unwrap()).is_empty());
        assert!(Custom::candidates(&Problem::linear(DType::BF16, 1, 64, 40).unwrap()).iter().all(|c| c.0.spec.family == "gemv"));
        assert_eq!(Custom::candidates(&p1.with_m(32)).len(), 72 - 12); // w16 with mt2 and n4 exceeds 48 KiB
        // int4 weights: only the qmma family, M <= 16, K any multiple of the block.
        let q = Problem::linear(DType::BF16, 1, 1280, 8192).unwrap().with_weights(WeightFormat::G128).unwrap();
        let cq = Custom::candidates(&q);
        // (mt, v, depth) within the register estimate: depth 1 mt1v1 mt1v2 mt2v1 mt2v2 mt4v1,
        // depth 2 mt1v1 mt1v2 mt2v1, depth 3 mt1v1 mt2v1, depth 4 mt1v1; x 3 warps x 3 k splits.
        assert_eq!(cq.len(), 11 * 3 * 3);
        assert!(cq.iter().all(|c| c.0.spec.family == "qmma" && c.0.get("n") == 1 && Custom::parse(&c.id()).unwrap() == *c));
        assert!(c1.iter().all(|c| c.unsupported(&q).unwrap().contains("dense weights")));
        assert!(cq[0].unsupported(&p1).unwrap().contains("int4 weights"));
        assert!(Custom::candidates(&q.with_m(16)).iter().all(|c| c.0.get("n") == 2));
        assert!(Custom::candidates(&q.with_m(17)).is_empty());
        let q8 = p1.with_weights(WeightFormat::Q8_0).unwrap();
        assert!(Custom::candidates(&q8).is_empty(), "no fused q8_0 kernel");
        let small = Problem::linear(DType::F16, 4, 576, 576).unwrap().with_weights(WeightFormat::Q4_1).unwrap();
        assert_eq!(Custom::candidates(&small).len(), 99, "K = 576 is not a multiple of 128: tail chunks read as zero");
        let (name, src) = cq[0].module(&q);
        assert_eq!(name, "qmma_bf16_mt1_w4_v1_n1_k1_p1_g128");
        assert!(src.starts_with("#define QMMA_FORMAT 1\n#define MMA_DTYPE 0\n") && src.contains("qmma_kernel") && src.contains("store_tile"));
        for bad in ["cuda:gemv:r3:t128:u1:m1", "cuda:mma:mt1:w4:v1:n1", "cuda:mma:mt1:w5:v1:n1:k1", "cuda:mma:mt1:w4:v1:n1:k3", "cuda:mma:mt1:w32:v1:n1:k1", "cuda:gemv:x"] {
            assert!(Custom::parse(bad).is_err(), "{bad}");
        }
    }
}
