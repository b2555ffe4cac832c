//! Kernels of our own on ROCm, compiled by hipRTC: the decode GEMV (kernels/gemv.cu, the
//! same source as on CUDA) and the matrix-core kernel (kernels/hip/mfma.cu).
//!
//! - `rocm:gemv:r<rows>:t<threads>:u<unroll>:m<max M>` — M <= 4, any AMD GPU;
//! - `rocm:mfma:mt<m16 tiles>:w<wavefronts>:v<vectors>:n<n16 tiles>:k<k split>` — M <= 32,
//!   MFMA 16x16x16 (gfx90a, gfx94x, gfx950).

use super::hip::{Args, Function, Gpu};
use super::rtc::{hip_defines, Rtc};
use crate::backend::kernels::{self, Spec, Variant, GEMV_SPEC, MFMA};
use crate::error::Result;
use crate::problem::{DType, Problem};

pub static MFMA_SPEC: Spec = Spec {
    family: "mfma",
    source: MFMA,
    entry: "mfma_kernel",
    dtype_define: "MFMA_DTYPE",
    params: &[
        ("mt", "MFMA_MT", &[1, 2]),
        ("w", "MFMA_WARPS", &[2, 4, 8]),
        ("v", "MFMA_V", &[1, 2, 4]),
        ("n", "MFMA_NT", &[1, 2]),
        ("k", "MFMA_KSPLIT", &[1, 2, 4, 8]),
    ],
    launch: &[],
};

/// Workspace of the split-K MFMA variants: partial tiles and one counter per tile.
pub const WS_BYTES: usize = 16 << 20;
pub const COUNTERS: usize = 1 << 16;
/// LDS a block may use (64 KiB on CDNA).
const LDS_BYTES: u32 = 64 * 1024;

/// Whether the device has the 16x16x16 bf16 (`_1k`) and f16 MFMA instructions.
pub fn has_mfma(gfx: &str) -> bool {
    gfx == "gfx90a" || gfx.starts_with("gfx94") || gfx == "gfx950"
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Custom(pub Variant);

impl Custom {
    /// Every variant applicable to `p` on a device of processor `gfx` (e.g. `gfx942`).
    pub fn candidates(p: &Problem, gfx: &str) -> Vec<Custom> {
        let mut v: Vec<Custom> = kernels::gemv_candidates(p).into_iter().map(Custom).collect();
        if kernels::base_ok(p) && has_mfma(gfx) {
            if let Some(nt) = [1u32, 2].into_iter().find(|&x| 16 * x as usize >= p.m) {
                v.extend(MFMA_SPEC.all().into_iter().map(Custom).filter(|c| c.0.get("n") == nt && c.unsupported(p, gfx).is_none()));
            }
        }
        v
    }

    pub fn id(&self) -> String {
        self.0.id("rocm")
    }

    pub fn parse(id: &str) -> std::result::Result<Custom, String> {
        Variant::parse("rocm", &[&GEMV_SPEC, &MFMA_SPEC], id).map(Custom)
    }

    fn is_mfma(&self) -> bool {
        self.0.spec.family == MFMA_SPEC.family
    }

    /// Why this variant cannot run `p` on `gfx`, if it cannot.
    pub fn unsupported(&self, p: &Problem, gfx: &str) -> Option<String> {
        let v = &self.0;
        if !self.is_mfma() {
            return kernels::gemv_unsupported(v, p);
        }
        if !has_mfma(gfx) {
            return Some(format!("needs MFMA 16x16x16 (gfx90a, gfx94x, gfx950), this is {gfx}"));
        }
        if !kernels::base_ok(p) {
            return Some(kernels::base_requirement(p));
        }
        let (mt, warps, vv, nt, ksplit) = (v.get("mt"), v.get("w"), v.get("v"), v.get("n"), v.get("k"));
        let tiles = p.n.div_ceil(16 * mt as usize);
        if p.m > 16 * nt as usize {
            Some(format!("compiled for M <= {}, got M = {}", 16 * nt, p.m))
        } else if warps * mt * 16 * (nt * 16 + 1) * 4 > LDS_BYTES {
            Some("needs more than 64 KiB of LDS".into())
        } else if !p.k.is_multiple_of(32 * vv as usize) {
            Some(format!("needs K % {} == 0, got K = {}", 32 * vv, p.k))
        } else if ksplit > 1 && (tiles > COUNTERS || tiles * (ksplit * mt * 16 * nt * 16) as usize * 4 > WS_BYTES) {
            Some("the split-K workspace is too small for this N".into())
        } else {
            None
        }
    }

    fn source(&self, d: DType, warp: i32) -> String {
        let defines = hip_defines(warp);
        let extra: Vec<(&str, &str)> = defines.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.0.source(d, &extra)
    }

    /// What `tune` compiles ahead for `problems` on `gfx` with wavefronts of `warp`
    /// (kernels::modules_after_first).
    pub fn modules_after_first(problems: &[Problem], gfx: &str, warp: i32) -> Vec<(String, String)> {
        kernels::modules_after_first(problems, |p| Self::candidates(p, gfx), |c, p| c.0.module_name(p.dtype), |c, p| c.source(p.dtype, warp))
    }

    /// Compiles every listed variant not compiled yet, in parallel.
    pub fn prepare(variants: &[Custom], d: DType, rtc: &Rtc, gpu: &Gpu) {
        rtc.prepare(gpu, variants.iter().map(|v| (v.0.module_name(d), v.source(d, rtc.warp()))).collect())
    }

    pub fn load(&self, d: DType, rtc: &Rtc, gpu: &Gpu) -> Result<Function> {
        rtc.function(gpu, &self.0.module_name(d), || self.source(d, rtc.warp()), self.0.spec.entry)
    }

    /// (grid, block threads, arguments) of one launch. `ws`/`counters`: the split-K
    /// workspace (WS_BYTES) and COUNTERS zeroed u32 (the kernel leaves them zeroed).
    #[allow(clippy::too_many_arguments)]
    pub fn launch_config(&self, p: &Problem, warp: i32, x: u64, w: u64, y: u64, ws: u64, counters: u64) -> ((u32, u32, u32), u32, Args) {
        let args = Args::default().u64(x).u64(w).u64(y).i32(p.m as i32).i32(p.n as i32).i32(p.k as i32);
        if self.is_mfma() {
            let v = &self.0;
            let grid = ((p.n as u32).div_ceil(16 * v.get("mt")), v.get("k"), 1);
            (grid, v.get("w") * warp as u32, args.u64(ws).u64(counters).build())
        } else {
            let (blocks, threads) = kernels::gemv_launch(&self.0, p);
            ((blocks, 1, 1), threads, args.build())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `tune` compiles ahead on ROCm: the later shapes' modules once each, none of the
    /// first shape's, with the HIP defines of the device's wavefront.
    #[test]
    fn modules_compiled_ahead_are_those_of_the_later_shapes() {
        let problems: Vec<Problem> =
            [(1, 1280, 8192), (8, 1280, 8192), (32, 1280, 8192), (1, 4096, 4096), (128, 4096, 4096)].iter().map(|&(m, n, k)| Problem::linear(DType::BF16, m, n, k).unwrap()).collect();
        let ahead = Custom::modules_after_first(&problems, "gfx942", 64);
        let names: std::collections::HashSet<&str> = ahead.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), ahead.len(), "each module once");
        let modules = |p: &Problem| -> std::collections::HashSet<String> { Custom::candidates(p, "gfx942").iter().map(|c| c.0.module_name(p.dtype)).collect() };
        let first = modules(&problems[0]);
        let later: std::collections::HashSet<String> = problems[1..].iter().flat_map(modules).filter(|n| !first.contains(n)).collect();
        assert!(!later.is_empty());
        assert_eq!(names, later.iter().map(|n| n.as_str()).collect());
        // M = 8 and 32 need the MFMA kernels compiled for 16 tokens (n1) and 32 (n2), M = 1
        // the GEMV only; M = 128 has none of ours.
        assert!(ahead.iter().all(|(n, _)| n.starts_with("mfma_bf16_")), "{names:?}");
        assert!(ahead.iter().all(|(_, src)| src.contains("#define GEMMTUNE_HIP 1\n") && src.contains("#define WARP_SIZE 64\n")));
        assert!(Custom::modules_after_first(&problems[..1], "gfx942", 64).is_empty());
    }

    #[test]
    fn ids_round_trip_and_applicability() {
        let p1 = Problem::linear(DType::BF16, 1, 1280, 8192).unwrap();
        let c1 = Custom::candidates(&p1, "gfx942");
        assert_eq!(c1.len(), 18 + 72);
        for c in &c1 {
            assert_eq!(Custom::parse(&c.id()).unwrap(), *c);
            assert!(c.unsupported(&p1, "gfx942").is_none());
        }
        // No matrix cores of this kind on RDNA: the GEMV only.
        assert_eq!(Custom::candidates(&p1, "gfx1100").len(), 18);
        let m = Custom::parse("rocm:mfma:mt1:w4:v4:n1:k2").unwrap();
        assert!(m.unsupported(&p1, "gfx1100").unwrap().contains("MFMA"));
        assert!(m.unsupported(&p1.with_m(17), "gfx90a").unwrap().contains("M <= 16"));
        let k96 = Problem::linear(DType::BF16, 8, 1280, 96).unwrap();
        assert!(m.unsupported(&k96, "gfx942").unwrap().contains("K % 128"));
        let c32 = Custom::candidates(&p1.with_m(32), "gfx942");
        assert!(c32.iter().all(|c| c.is_mfma() && c.0.get("n") == 2));
        assert_eq!(c32.len(), 72);
        assert!(Custom::candidates(&p1.with_m(33), "gfx942").is_empty());
        assert!(Custom::parse("cuda:gemv:r1:t128:u1:m1").is_err());
        assert!(Custom::parse("rocm:mma:mt1:w4:v1:n1:k1").is_err());
        assert!(Custom::parse("rocm:mfma:mt1:w16:v1:n1:k1").is_err());
    }

    #[test]
    fn launch_shapes() {
        let p = Problem::linear(DType::F16, 8, 1000, 4096).unwrap();
        let m = Custom::parse("rocm:mfma:mt2:w4:v1:n1:k4").unwrap();
        let (grid, block, args) = m.launch_config(&p, 64, 1, 2, 3, 4, 5);
        assert_eq!((grid, block), ((32, 4, 1), 256));
        assert_eq!(args.as_bytes().len(), 56);
        let g = Custom::parse("rocm:gemv:r4:t128:u1:m1").unwrap();
        let (grid, block, args) = g.launch_config(&p.with_m(1), 64, 1, 2, 3, 4, 5);
        assert_eq!((grid, block, args.as_bytes().len()), ((250, 1, 1), 128, 40));
    }

    #[test]
    fn hip_sources_assemble_for_hiprtc() {
        let g = Custom::parse("rocm:gemv:r2:t256:u4:m1").unwrap().source(DType::BF16, 64);
        let m = Custom::parse("rocm:mfma:mt1:w4:v2:n1:k1").unwrap().source(DType::F16, 64);
        for s in [&g, &m] {
            assert!(s.starts_with("#define GEMMTUNE_HIP 1\n#define WARP_SIZE 64\n"), "{s}");
            assert!(!s.lines().any(|l| l.trim_start().starts_with("#include")), "hipRTC gets no include path");
            check_macros_defined(s);
            let hip = hip_branch(s);
            for cuda_only in ["asm(", "asm volatile", "__shfl_xor_sync", "__ldg(", "mma.sync", "__ldcg"] {
                assert!(!hip.contains(cuda_only), "{cuda_only} reaches hipRTC");
            }
        }
        assert!(hip_branch(&m).contains("__builtin_amdgcn_mfma_f32_16x16x16f16"));
        // The CUDA side is in the same text; the filter is what keeps it out.
        assert!(g.contains("asm volatile") && g.contains("__shfl_xor_sync"));
        assert!(m.contains("#define MFMA_DTYPE 1\n#define MFMA_MT 1\n#define MFMA_WARPS 4\n#define MFMA_V 2\n#define MFMA_NT 1\n#define MFMA_KSPLIT 1\n"));
    }

    /// Every GEMV_/MFMA_/WARP_ macro the code uses is #defined somewhere in the source.
    fn check_macros_defined(s: &str) {
        let defined: Vec<&str> = s.lines().filter_map(|l| l.strip_prefix("#define ")).filter_map(|l| l.split_whitespace().next()).collect();
        for word in s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if ["GEMV_", "MFMA_", "WARP_"].iter().any(|p| word.starts_with(p)) {
                assert!(defined.contains(&word), "{word} is used but never defined");
            }
        }
    }

    /// The code a preprocessor keeps with GEMMTUNE_HIP defined, comments dropped: the
    /// `#else` side of `#if defined(GEMMTUNE_HIP)` blocks goes, other `#if` alternatives
    /// (`#if MFMA_DTYPE == 0`) are kept whole.
    fn hip_branch(s: &str) -> String {
        let mut out = String::new();
        // Stack of (is a GEMMTUNE_HIP block, keeping this branch).
        let mut stack: Vec<(bool, bool)> = Vec::new();
        for line in s.lines() {
            let t = line.trim_start();
            let keeping = stack.iter().all(|&(_, keep)| keep);
            if t.starts_with("#if") {
                let hip = t.contains("GEMMTUNE_HIP");
                // `#ifndef GEMMTUNE_HIP` and `... !defined(GEMMTUNE_HIP)` are false on HIP.
                let negated = t.starts_with("#ifndef") || t.contains("!defined(GEMMTUNE_HIP)");
                stack.push((hip, !hip || !negated));
            } else if t.starts_with("#else") {
                if let Some(top) = stack.last_mut() {
                    if top.0 {
                        top.1 = !top.1;
                    }
                }
            } else if t.starts_with("#endif") {
                stack.pop();
            } else if keeping {
                out.push_str(line.split("//").next().unwrap_or(""));
                out.push('\n');
            }
        }
        assert!(stack.is_empty(), "unbalanced #if/#endif");
        out
    }
}
