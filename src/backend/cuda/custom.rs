//! Kernels of our own (kernels/gemv.cu, kernels/mma.cu) as candidates: their parameter
//! grids, ids, applicability, compilation and launch.
//!
//! - `cuda:gemv:r<rows>:t<threads>:u<unroll>:m<max M>` — CUDA-core GEMV, M <= 4;
//! - `cuda:mma:mt<m16 tiles>:w<warps>:v<vectors>:n<n8 tiles>:k<k split>` — tensor-core
//!   GEMM for M <= 32 (mma.sync.m16n8k16).

use super::device::{drv, Gpu};
use super::rtc::{assemble, suffix, Rtc, GEMV, MMA};
use crate::error::{Error, Result};
use crate::problem::{DType, Layout, Problem};
use cudarc::driver::{CudaFunction, LaunchConfig, PushKernelArg};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Custom {
    Gemv { rows: u32, threads: u32, unroll: u32, max_m: u32 },
    Mma { mt: u32, warps: u32, v: u32, nt: u32, ksplit: u32 },
}

/// Workspace the split-K MMA variants need: partial tiles and one counter per tile.
pub const WS_BYTES: usize = 16 << 20;
pub const COUNTERS: usize = 1 << 16;

impl Custom {
    /// Every variant applicable to `p`.
    pub fn candidates(p: &Problem) -> Vec<Custom> {
        let mut v = Vec::new();
        if !base_ok(p) {
            return v;
        }
        if let Some(max_m) = [1u32, 2, 4].into_iter().find(|&x| x as usize >= p.m) {
            for rows in [1, 2, 4] {
                for threads in [128, 256] {
                    for unroll in [1, 2, 4] {
                        v.push(Custom::Gemv { rows, threads, unroll, max_m });
                    }
                }
            }
        }
        if let Some(nt) = [1u32, 2, 4].into_iter().find(|&x| 8 * x as usize >= p.m) {
            for mt in [1, 2] {
                for warps in [4, 8, 16] {
                    for vv in [1, 2, 4] {
                        for ksplit in [1, 2, 4, 8] {
                            let c = Custom::Mma { mt, warps, v: vv, nt, ksplit };
                            if c.unsupported(p).is_none() {
                                v.push(c);
                            }
                        }
                    }
                }
            }
        }
        v
    }

    pub fn id(&self) -> String {
        match self {
            Custom::Gemv { rows, threads, unroll, max_m } => format!("cuda:gemv:r{rows}:t{threads}:u{unroll}:m{max_m}"),
            Custom::Mma { mt, warps, v, nt, ksplit } => format!("cuda:mma:mt{mt}:w{warps}:v{v}:n{nt}:k{ksplit}"),
        }
    }

    pub fn parse(id: &str) -> std::result::Result<Custom, String> {
        let parts: Vec<&str> = id.split(':').collect();
        let num = |v: &str, pre: &str| v.strip_prefix(pre).and_then(|x| x.parse::<u32>().ok());
        let c = match parts.as_slice() {
            ["cuda", "gemv", r, t, u, m] => match (num(r, "r"), num(t, "t"), num(u, "u"), num(m, "m")) {
                (Some(rows), Some(threads), Some(unroll), Some(max_m)) => Custom::Gemv { rows, threads, unroll, max_m },
                _ => return Err(format!("bad GEMV kernel id '{id}'")),
            },
            ["cuda", "mma", a, b, c, d, e] => match (num(a, "mt"), num(b, "w"), num(c, "v"), num(d, "n"), num(e, "k")) {
                (Some(mt), Some(warps), Some(v), Some(nt), Some(ksplit)) => Custom::Mma { mt, warps, v, nt, ksplit },
                _ => return Err(format!("bad MMA kernel id '{id}'")),
            },
            _ => return Err(format!("'{id}' is not a custom CUDA kernel id")),
        };
        let known = match c {
            Custom::Gemv { rows, threads, unroll, max_m } => {
                [1, 2, 4].contains(&rows) && [128, 256].contains(&threads) && [1, 2, 4].contains(&unroll) && [1, 2, 4].contains(&max_m)
            }
            Custom::Mma { mt, warps, v, nt, ksplit } => {
                [1, 2].contains(&mt)
                    && [4, 8, 16].contains(&warps)
                    && [1, 2, 4].contains(&v)
                    && [1, 2, 4].contains(&nt)
                    && [1, 2, 4, 8].contains(&ksplit)
            }
        };
        if !known {
            return Err(format!("'{id}' names a variant that does not exist"));
        }
        Ok(c)
    }

    /// Why this variant cannot run `p`, if it cannot.
    pub fn unsupported(&self, p: &Problem) -> Option<String> {
        if !base_ok(p) {
            return Some(format!("needs bf16/f16, layout TN, batch 1 and K % 8 == 0 (got {p})"));
        }
        match *self {
            Custom::Gemv { max_m, .. } if p.m > max_m as usize => Some(format!("compiled for M <= {max_m}, got M = {}", p.m)),
            Custom::Mma { nt, .. } if p.m > 8 * nt as usize => Some(format!("compiled for M <= {}, got M = {}", 8 * nt, p.m)),
            Custom::Mma { mt, warps, nt, .. } if warps * mt * 16 * (nt * 8 + 1) * 4 > 48 * 1024 => {
                Some("needs more than 48 KiB of static shared memory".into())
            }
            Custom::Mma { v, .. } if p.k % (32 * v as usize) != 0 => {
                Some(format!("needs K % {} == 0, got K = {}", 32 * v, p.k))
            }
            Custom::Mma { mt, ksplit, nt, .. }
                if ksplit > 1
                    && (p.n.div_ceil(16 * mt as usize) > COUNTERS
                        || p.n.div_ceil(16 * mt as usize) * (ksplit * mt * 16 * nt * 8) as usize * 4 > WS_BYTES) =>
            {
                Some("the split-K workspace is too small for this N".into())
            }
            _ => None,
        }
    }

    fn module(&self, d: DType) -> (String, String, &'static str) {
        let dt = if d == DType::F16 { "1" } else { "0" };
        match *self {
            Custom::Gemv { rows, threads, unroll, max_m } => (
                format!("gemv_{}_r{rows}_t{threads}_u{unroll}_m{max_m}", suffix(d)),
                assemble(
                    GEMV,
                    &[
                        ("GEMV_DTYPE", dt),
                        ("GEMV_ROWS", &rows.to_string()),
                        ("GEMV_THREADS", &threads.to_string()),
                        ("GEMV_UNROLL", &unroll.to_string()),
                        ("GEMV_MAXM", &max_m.to_string()),
                    ],
                ),
                "gemv_kernel",
            ),
            Custom::Mma { mt, warps, v, nt, ksplit } => (
                format!("mma_{}_mt{mt}_w{warps}_v{v}_n{nt}_k{ksplit}", suffix(d)),
                assemble(
                    MMA,
                    &[
                        ("MMA_DTYPE", dt),
                        ("MMA_MT", &mt.to_string()),
                        ("MMA_WARPS", &warps.to_string()),
                        ("MMA_V", &v.to_string()),
                        ("MMA_NT", &nt.to_string()),
                        ("MMA_KSPLIT", &ksplit.to_string()),
                    ],
                ),
                "mma_kernel",
            ),
        }
    }

    /// Compiles every listed variant not compiled yet, in parallel.
    pub fn prepare(variants: &[Custom], d: DType, rtc: &Rtc, gpu: &Gpu) {
        rtc.prepare(
            gpu,
            variants
                .iter()
                .map(|v| {
                    let (n, s, _) = v.module(d);
                    (n, s)
                })
                .collect(),
        )
    }

    pub fn load(&self, d: DType, rtc: &Rtc, gpu: &Gpu) -> Result<CudaFunction> {
        let (name, src, f) = self.module(d);
        rtc.function(gpu, &name, || src, f)
    }

    /// Enqueues the kernel. `ws`/`counters`: the split-K workspace (WS_BYTES) and
    /// COUNTERS zeroed u32 (the kernel leaves them zeroed).
    #[allow(clippy::too_many_arguments)]
    pub fn launch(&self, gpu: &Gpu, f: &CudaFunction, x: u64, w: u64, y: u64, p: &Problem, ws: u64, counters: u64) -> Result<()> {
        let (m, n, k) = (p.m as i32, p.n as i32, p.k as i32);
        let (rows, threads, ksplit) = match *self {
            Custom::Gemv { rows, threads, .. } => (rows, threads, 1),
            Custom::Mma { mt, warps, ksplit, .. } => (16 * mt, 32 * warps, ksplit),
        };
        let cfg =
            LaunchConfig { grid_dim: ((n as u32).div_ceil(rows), ksplit, 1), block_dim: (threads, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: x holds m·k, w holds n·k, y holds m·n 16-bit elements; `unsupported`
        // returned None for this problem (K multiple of the step, M within the variant,
        // workspace large enough).
        unsafe {
            let mut b = gpu.stream.launch_builder(f);
            b.arg(&x).arg(&w).arg(&y).arg(&m).arg(&n).arg(&k);
            if matches!(self, Custom::Mma { .. }) {
                b.arg(&ws).arg(&counters);
            }
            b.launch(cfg).map_err(drv)?;
        }
        Ok(())
    }
}

fn base_ok(p: &Problem) -> bool {
    p.dtype != DType::F32 && p.layout == Layout::TN && p.batch == 1 && p.k % 8 == 0 && p.m <= 32
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
        assert!(c8.iter().all(|c| matches!(c, Custom::Mma { nt: 1, .. })), "{c8:?}");
        let m8 = Custom::Mma { mt: 1, warps: 4, v: 4, nt: 1, ksplit: 2 };
        assert!(m8.unsupported(&p1.with_m(9)).unwrap().contains("M <= 8"));
        let k96 = Problem::linear(DType::BF16, 8, 1280, 96).unwrap();
        assert!(m8.unsupported(&k96).unwrap().contains("K % 128"));
        assert!(Custom::candidates(&k96).iter().all(|c| !matches!(c, Custom::Mma { v: 2 | 4, .. })));
        assert!(Custom::candidates(&p1.with_m(33)).is_empty());
        assert!(Custom::candidates(&Problem::linear(DType::F32, 1, 64, 64).unwrap()).is_empty());
        assert!(Custom::candidates(&Problem::linear(DType::BF16, 1, 64, 40).unwrap()).iter().all(|c| matches!(c, Custom::Gemv { .. })));
        assert_eq!(Custom::candidates(&p1.with_m(32)).len(), 72 - 12); // w16 with mt2 and n4 exceeds 48 KiB
        for bad in ["cuda:gemv:r3:t128:u1:m1", "cuda:mma:mt1:w4:v1:n1", "cuda:mma:mt1:w5:v1:n1:k1", "cuda:mma:mt1:w4:v1:n1:k3", "cuda:mma:mt1:w32:v1:n1:k1", "cuda:gemv:x"] {
            assert!(Custom::parse(bad).is_err(), "{bad}");
        }
    }
}
