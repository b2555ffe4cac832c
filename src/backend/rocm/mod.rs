//! The ROCm backend: rocBLAS (the default every report compares against, and each of its
//! solutions for the problem), every hipBLASLt algorithm for the problem, and kernels of
//! our own compiled by hipRTC. All libraries are loaded at run time (sys.rs): without
//! ROCm the backend reports in one line which library is missing.
//!
//! Built against the ROCm headers (sys.rs cites them); not run on AMD hardware yet.
//!
//! Layers: `sys` (function tables, enums, structs) → `hip`, `rocblas`, `hipblaslt`, `rtc`
//! (checked calls, owning handles) → `candidates` (ids and enumeration over the
//! `Libraries` questions) → this file (the `Backend`).

pub mod candidates;
pub mod custom;
pub mod hip;
pub mod hipblaslt;
pub mod rocblas;
pub mod rtc;
pub mod sys;

use super::{validator_mismatch, Backend, Candidate, Identity, Inspection, KernelId, Operands, Validators};
use crate::error::{Error, Result};
use crate::problem::{DType, Problem};
use candidates::{Budget, Choice, Libraries};
use hip::{DevBuf, Function, Gpu, Graph};
use hipblaslt::{Desc, Lt};
use rocblas::{Blas, Solution};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sys::hipblasLtMatmulAlgo_t as Algo;

/// What is missing for `--backend rocm` here (one line), `None` when ROCm loads.
pub fn missing_libraries() -> Option<String> {
    hip::missing()
}

/// Visible AMD GPUs (loads the libraries; an error names what is missing).
pub fn device_count() -> Result<usize> {
    let l = hip::libs()?;
    let mut n = 0;
    // SAFETY: writes one int.
    unsafe {
        hip::check(l, (l.hip.hipInit)(0), "hipInit")?;
        hip::check(l, (l.hip.hipGetDeviceCount)(&mut n), "hipGetDeviceCount")?;
    }
    Ok(n.max(0) as usize)
}

/// A resolved ROCm kernel; `uid` is unique per resolve (it keys the graph cache).
pub struct RocmKernel {
    uid: u64,
    kind: Kind,
}

enum Kind {
    Rocblas(Solution),
    Lt { algo: Algo, desc: Arc<Desc> },
    Custom { custom: custom::Custom, function: Function },
}

/// hipBLASLt's algorithms for one problem with their workspace, heuristic order.
type AlgoList = Arc<Vec<(Algo, usize)>>;

static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub struct RocmBackend {
    rtc: rtc::Rtc,
    blas: Blas,
    lt: Lt,
    lt_workspace: DevBuf,
    /// Split-K partials and per-tile counters (zeroed) of our own kernels.
    custom_ws: DevBuf,
    custom_counters: DevBuf,
    /// Stands in for the operands of rocBLAS queries that read no element.
    query_scratch: DevBuf,
    identity: Identity,
    descs: Mutex<HashMap<Problem, Arc<Desc>>>,
    algorithms: Mutex<HashMap<Problem, AlgoList>>,
    /// Timing graphs by (kernel uid, `kernels::sets_key` of the sets, calls).
    graphs: Mutex<HashMap<(u64, u64, usize), Graph>>,
    scratch: Mutex<Option<rtc::Scratch>>,
    lock: Mutex<()>,
    /// Most rocBLAS solutions and hipBLASLt algorithms offered per problem.
    pub budget: Budget,
    /// Last: the stream outlives every handle and buffer above.
    gpu: Gpu,
}

impl RocmBackend {
    /// Opens GPU `ordinal`, or says which library or device is missing.
    pub fn new(ordinal: usize) -> Result<RocmBackend> {
        let gpu = Gpu::open(ordinal)?;
        let rtc = rtc::Rtc::new(&gpu)?;
        let blas = Blas::new(&gpu)?;
        let lt = Lt::new(gpu.l)?;
        let identity = Identity {
            backend: "rocm".into(),
            device: gpu.info.name.clone(),
            arch: gpu.info.arch.clone(),
            libraries: vec![
                ("hip".into(), gpu.runtime_version.to_string()),
                ("rocblas".into(), blas.version.clone()),
                ("rocblas.use_hipblaslt".into(), rocblas::use_hipblaslt()),
                ("hipblaslt".into(), lt.full_version.clone()),
                ("hiprtc".into(), rtc.version()),
            ],
            details: vec![
                ("cus".into(), gpu.info.cus.to_string()),
                ("wavefront".into(), gpu.info.warp.to_string()),
                ("l2_bytes".into(), gpu.info.l2_bytes.to_string()),
                ("memory_bytes".into(), gpu.info.mem_bytes.to_string()),
                ("driver".into(), gpu.driver_version.to_string()),
            ],
        };
        let lt_workspace = gpu.alloc_bytes(hipblaslt::WORKSPACE)?;
        let custom_ws = gpu.alloc_bytes(custom::WS_BYTES)?;
        let custom_counters = gpu.alloc_bytes(4 * custom::COUNTERS)?;
        let query_scratch = gpu.alloc_bytes(256)?;
        gpu.memset(&custom_counters, 0)?;
        gpu.sync()?;
        Ok(RocmBackend {
            rtc,
            blas,
            lt,
            lt_workspace,
            custom_ws,
            custom_counters,
            query_scratch,
            identity,
            descs: Mutex::new(HashMap::new()),
            algorithms: Mutex::new(HashMap::new()),
            graphs: Mutex::new(HashMap::new()),
            scratch: Mutex::new(None),
            lock: Mutex::new(()),
            budget: Budget { rocblas: 512, hipblaslt: 512 },
            gpu,
        })
    }

    fn desc(&self, p: &Problem) -> Result<Arc<Desc>> {
        let mut d = self.descs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = d.get(p) {
            return Ok(x.clone());
        }
        let x = Arc::new(Desc::new(self.gpu.l, p)?);
        d.insert(*p, x.clone());
        Ok(x)
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enqueues one run on the stream (no synchronization: graph-capturable).
    fn launch(&self, k: &RocmKernel, p: &Problem, x: &DevBuf, w: &DevBuf, y: &DevBuf) -> Result<()> {
        match &k.kind {
            Kind::Rocblas(s) => self.blas.gemm(p, x, w, y, *s),
            Kind::Lt { algo, desc } => desc.matmul(&self.lt, algo, x, w, y, &self.lt_workspace, &self.gpu),
            Kind::Custom { custom, function } => {
                let (grid, block, args) = custom.launch_config(
                    p,
                    self.gpu.info.warp,
                    x.ptr,
                    w.ptr,
                    y.ptr,
                    self.custom_ws.ptr,
                    self.custom_counters.ptr,
                );
                self.gpu.launch(function, grid, block, &args)
            }
        }
    }
}

/// The library questions, answered by the real libraries (callers hold the lock).
impl Libraries for RocmBackend {
    fn rocblas_solutions(&self, p: &Problem) -> Result<Vec<i32>> {
        self.blas.solutions(p, &self.query_scratch)
    }
    fn hipblaslt_algorithms(&self, p: &Problem) -> Result<Vec<(Algo, usize)>> {
        let cached = self.algorithms.lock().unwrap_or_else(|e| e.into_inner()).get(p).cloned();
        let list = match cached {
            Some(l) => l,
            None => {
                let l = Arc::new(self.desc(p)?.algorithms(&self.lt)?);
                self.algorithms.lock().unwrap_or_else(|e| e.into_inner()).insert(*p, l.clone());
                l
            }
        };
        Ok(list.as_ref().clone())
    }
    fn hipblaslt_version(&self) -> i32 {
        self.lt.version
    }
    fn gfx(&self) -> &str {
        self.gpu.info.gfx()
    }
}

/// The cache rotating operand sets must exceed: the Infinity Cache (MALL) behind the L2
/// where the GPU has one, which HIP does not report (it gives the L2 alone): 256 MiB on
/// MI300/MI325/MI350 (AMD's CDNA3/CDNA4 white papers), and on Radeon the largest of the
/// family's parts (AMD's product specifications: RX 6800-6950 128 MB, RX 6700 96 MB,
/// RX 7900 96 MB, RX 7700/7800 and RX 9070 64 MB, RX 6600, RX 7600 and RX 9060 32 MB), so
/// that no part of a family is timed warm; else the L2.
fn last_level_cache(d: &hip::DeviceInfo) -> usize {
    let mall_mib = match d.gfx() {
        g if g.starts_with("gfx94") || g == "gfx950" => 256,
        "gfx1030" => 128,
        "gfx1031" | "gfx1100" => 96,
        "gfx1101" | "gfx1201" => 64,
        "gfx1032" | "gfx1102" | "gfx1200" => 32,
        _ => 0,
    };
    d.l2_bytes.max(mall_mib << 20)
}

/// Why a table row may not be used here. Rows imported from a TunableOp results file
/// (`table import --format tunableop`, validators `tunableop.*`) carry only what TunableOp
/// validates (arch, rocBLAS, hipBLASLt and HIP versions): those are compared, as TunableOp
/// would. Every other row must match every validator.
pub fn row_mismatch(row: &Validators, here: &Validators) -> Option<String> {
    if !row.keys().any(|k| k.starts_with("tunableop.")) {
        return validator_mismatch(row, here);
    }
    ["backend", "arch", "lib.rocblas", "lib.hipblaslt", "lib.hip"].into_iter().find_map(|k| match (row.get(k), here.get(k)) {
        (Some(t), Some(h)) if t != h => Some(format!("{k} differs (TunableOp file: '{t}', here: '{h}')")),
        _ => None,
    })
}

fn check_operands(p: &Problem, ops: [(&str, &DevBuf, usize); 3]) -> Result<()> {
    match ops.iter().find(|(_, b, len)| b.len != *len || b.dtype != p.dtype) {
        Some((name, b, len)) => {
            Err(Error::runtime(format!("operand {name} holds {} {} elements, {p} needs {len} {}", b.len, b.dtype, p.dtype)))
        }
        None => Ok(()),
    }
}

impl Backend for RocmBackend {
    type Buffer = DevBuf;
    type Kernel = RocmKernel;

    fn name(&self) -> &'static str {
        "rocm"
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn candidates(&self, p: &Problem) -> Result<Vec<Candidate>> {
        super::dense_weights_only("rocm", p)?;
        let _g = self.guard();
        self.gpu.bind()?;
        let out = candidates::enumerate(self, p, self.budget)?;
        // Compile ours now, in parallel, rather than one by one while validating.
        custom::Custom::prepare(&custom::Custom::candidates(p, self.gfx()), p.dtype, &self.rtc, &self.gpu);
        Ok(out)
    }

    fn default_kernel(&self, _p: &Problem) -> KernelId {
        KernelId::new(candidates::DEFAULT)
    }

    fn fits_other_m(&self, id: &KernelId) -> bool {
        !candidates::is_library(id)
    }

    fn precompile(&self, problems: &[Problem], stop: &(dyn Fn() -> bool + Sync)) {
        self.rtc.precompile(&custom::Custom::modules_after_first(problems, self.gfx(), self.rtc.warp()), stop);
    }

    fn resolve(&self, p: &Problem, id: &KernelId) -> Result<RocmKernel> {
        super::dense_weights_only("rocm", p)?;
        let _g = self.guard();
        self.gpu.bind()?;
        let kind = match candidates::resolve(self, p, id.as_str())? {
            Choice::RocblasDefault => Kind::Rocblas(Solution::Default),
            Choice::Rocblas(i) => Kind::Rocblas(Solution::Index(i)),
            Choice::Hipblaslt(algo) => Kind::Lt { algo, desc: self.desc(p)? },
            Choice::Custom(c) => Kind::Custom { custom: c, function: c.load(p.dtype, &self.rtc, &self.gpu)? },
        };
        Ok(RocmKernel { uid: NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed), kind })
    }

    fn alloc(&self, dtype: DType, len: usize) -> Result<DevBuf> {
        self.gpu.alloc(dtype, len)
    }

    fn fill_random(&self, buf: &mut DevBuf, seed: u64) -> Result<()> {
        let _g = self.guard();
        self.gpu.bind()?;
        rtc::fill_random(&self.rtc, &self.gpu, buf, seed)
    }

    fn fill_nan(&self, buf: &mut DevBuf) -> Result<()> {
        self.gpu.bind()?;
        self.gpu.memset_with_guard(buf, 0xff) // all-ones is NaN in f32, f16 and bf16
    }

    fn guard_intact(&self, buf: &DevBuf) -> Result<bool> {
        let _g = self.guard();
        self.gpu.guard_intact(buf)
    }

    fn download(&self, buf: &DevBuf) -> Result<Vec<f32>> {
        Ok(match buf.dtype {
            DType::F32 => self.gpu.download_raw::<f32>(buf, buf.len)?,
            d => crate::backend::kernels::widen(d, &self.gpu.download_raw::<u16>(buf, buf.len)?),
        })
    }

    fn inspect(&self, y: &DevBuf, indices: &[usize]) -> Result<Inspection> {
        let _g = self.guard();
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        self.gpu.bind()?;
        rtc::inspect(&self.rtc, &self.gpu, &mut scratch, y, indices)
    }

    fn run(&self, k: &RocmKernel, p: &Problem, x: &DevBuf, w: &DevBuf, y: &mut DevBuf) -> Result<()> {
        check_operands(p, [("X", x, p.x_len()), ("W", w, p.w_len()), ("Y", y, p.y_len())])?;
        let _g = self.guard();
        self.gpu.bind()?;
        self.launch(k, p, x, w, y)
    }

    fn time(&self, k: &RocmKernel, p: &Problem, sets: &mut [Operands<DevBuf>], calls: usize) -> Result<f64> {
        let _g = self.guard();
        let n = crate::backend::kernels::rotating_count(sets)?;
        let key = (k.uid, crate::backend::kernels::sets_key(sets.iter().map(|s| (s.x.ptr, s.w.ptr, s.y.ptr))), calls);
        let mut graphs = self.graphs.lock().unwrap_or_else(|e| e.into_inner());
        if !graphs.contains_key(&key) {
            if graphs.len() >= 1024 {
                graphs.clear();
            }
            let g = self.gpu.capture(|| (0..calls).try_for_each(|i| self.launch(k, p, &sets[i % n].x, &sets[i % n].w, &sets[i % n].y)))?;
            self.gpu.replay(&g)?; // warm replay
            graphs.insert(key, g);
        }
        let ms = self.gpu.time_eager(|| self.gpu.replay(&graphs[&key]))?;
        Ok(ms * 1e-3 / calls.max(1) as f64)
    }

    fn time_eager(&self, k: &RocmKernel, p: &Problem, sets: &mut [Operands<DevBuf>], calls: usize) -> Result<f64> {
        let _g = self.guard();
        let n = crate::backend::kernels::rotating_count(sets)?;
        let ms = self.gpu.time_eager(|| (0..calls).try_for_each(|i| self.launch(k, p, &sets[i % n].x, &sets[i % n].w, &sets[i % n].y)))?;
        Ok(ms * 1e-3 / calls.max(1) as f64)
    }

    fn cache_bytes(&self) -> usize {
        last_level_cache(&self.gpu.info)
    }

    fn measure_bandwidth(&self) -> Result<f64> {
        let _g = self.guard();
        self.gpu.copy_bandwidth()
    }

    fn peak_problem(&self) -> Problem {
        Problem::linear(DType::BF16, 8192, 8192, 8192).expect("valid problem")
    }

    fn clock_settling(&self) -> crate::backend::ClockSettling {
        crate::backend::ClockSettling::GPU
    }

    fn min_sample(&self) -> Duration {
        Duration::from_micros(300)
    }

    fn row_mismatch(&self, validators: &Validators) -> Option<String> {
        row_mismatch(validators, &self.identity.validators())
    }
}

impl Drop for RocmBackend {
    fn drop(&mut self) {
        let _ = self.gpu.sync();
        // The graphs first: they name modules and buffers the fields before them free.
        self.graphs.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rotating sets must pass the Infinity Cache HIP does not report: MI300's 256 MiB,
    /// a Radeon family's largest; other GPUs their L2.
    #[test]
    fn the_last_level_cache_counts_the_infinity_cache() {
        let dev = |arch: &str| hip::DeviceInfo { name: String::new(), arch: arch.into(), cus: 1, warp: 64, l2_bytes: 4 << 20, mem_bytes: 1 << 30 };
        assert_eq!(last_level_cache(&dev("gfx942:sramecc+:xnack-")), 256 << 20);
        assert_eq!(last_level_cache(&dev("gfx1100")), 96 << 20);
        assert_eq!(last_level_cache(&dev("gfx1201")), 64 << 20);
        assert_eq!(last_level_cache(&dev("gfx90a:sramecc+:xnack-")), 4 << 20);
    }

    #[test]
    fn tunableop_rows_are_checked_like_tunableop_does() {
        let text = include_str!("../../../tests/data/tunableop/rocm_results.csv");
        let (t, _) = crate::tunableop::import(text, std::path::Path::new("rocm_results.csv")).unwrap();
        let row = t.validators.values().next().unwrap().clone();
        // This device as the file describes it, with facts TunableOp does not record.
        let here = Identity {
            backend: "rocm".into(),
            device: "AMD Instinct MI300X".into(),
            arch: "gfx942:sramecc+:xnack-".into(),
            libraries: vec![
                ("hip".into(), "70051831".into()),
                ("rocblas".into(), "5.1.0-aa2a5e0a".into()),
                ("rocblas.use_hipblaslt".into(), "unset".into()),
                ("hipblaslt".into(), "1.1.0-4bcc1ab9".into()),
                ("hiprtc".into(), "7.0".into()),
            ],
            details: vec![],
        };
        assert_eq!(row_mismatch(&row, &here.validators()), None);
        let mut newer = here.clone();
        newer.libraries[3].1 = "1.2.0-00000000".into();
        assert!(row_mismatch(&row, &newer.validators()).unwrap().contains("lib.hipblaslt differs"));
        let mut other = here.clone();
        other.arch = "gfx90a:sramecc+:xnack-".into();
        assert!(row_mismatch(&row, &other.validators()).unwrap().contains("arch differs"));
        // A gemmtune row needs every validator, the device included.
        let own = here.validators();
        assert_eq!(row_mismatch(&own, &here.validators()), None);
        let mut moved = here.clone();
        moved.device = "AMD Instinct MI325X".into();
        assert!(row_mismatch(&own, &moved.validators()).unwrap().contains("device differs"));
    }
}
