//! The embedded CPU backend: the default everywhere, no GPU needed.
//!
//! Candidate families and their ids:
//! - `cpu:gemm:t<threads>` — the `gemm` crate; `cpu:gemm:t<all>` is the default.
//! - `cpu:matrixmultiply:t<threads>` — the `matrixmultiply` crate, N split over threads.
//! - `cpu:skinny:<isa>:m<tile>[:n<rows>]:t<threads>` — our decode kernel (M ≤ 16, layout
//!   TN; `n` W rows per block, 1 when absent as in ids from before blocking existed).
//! - quantized weights (`f32/q4_1`, `f32/q8_0`, `f32/g128` problems; see `quant.rs`):
//!   `cpu:dqgemm:t<threads>` (dequantize W, then `gemm`; the default),
//!   `cpu:qpanel:r<rows>:t<threads>` (dequantize panel by panel, prefill) and
//!   `cpu:qdot:<isa>:m<tile>:n<rows>:t<threads>` (fused dequantize-dot, decode) and
//!   `cpu:qsplit:avx2:x<terms>:m<tile>:n<rows>:t<threads>` (integer dot products on activations split into
//!   three 8-bit terms, decode; see `qsplit.rs` for why it meets the f32 bound) and
//!   `cpu:qpair:avx2:m<tile>:t<threads>` (q4_1/q8_0 decode: the fused sums with fewer
//!   instructions per block, see `qpair.rs`) and `cpu:qtile:avx2:t<threads>` (small-M
//!   prefill: panels dequantized into cache, register-blocked products, see `qtile.rs`). The
//!   dense families refuse quantized problems and vice versa.
//! - `cpu:test:<what>` — deliberately slow / wrong test doubles, offered only when the
//!   backend is built with `with_test_kernels` (or `GEMMTUNE_CPU_TEST_KERNELS=1`), so
//!   tests can show the tuner rejects wrong kernels and picks by speed.

pub mod libs;
pub mod qpair;
pub mod qsplit;
pub mod qtile;
pub mod quant;
pub mod skinny;
pub mod sysinfo;
pub mod tensor;
pub mod vector;
mod testing;

use super::{Backend, Candidate, Identity, KernelId, Operands};
use crate::error::{Error, Result};
use crate::problem::{DType, Problem};
use qpair::QPair;
use qsplit::QSplit;
use qtile::QTile;
use quant::QDot;
use skinny::Skinny;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use sysinfo::Isa;
pub use tensor::HostTensor;
pub use testing::TestKernel;

/// A resolved CPU kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuKernel {
    Gemm { threads: usize },
    MatrixMultiply { threads: usize },
    Skinny(Skinny),
    DequantGemm { threads: usize },
    QPanel { rows: usize, threads: usize },
    QDot(QDot),
    QSplit(QSplit),
    QPair(QPair),
    QTile(QTile),
    Test(TestKernel),
}

impl CpuKernel {
    pub fn id(&self) -> KernelId {
        KernelId(match self {
            CpuKernel::Gemm { threads } => format!("cpu:gemm:t{threads}"),
            CpuKernel::MatrixMultiply { threads } => format!("cpu:matrixmultiply:t{threads}"),
            // One W row at a time keeps the id it had before `nr` existed.
            CpuKernel::Skinny(s) if s.nr == 1 => format!("cpu:skinny:{}:m{}:t{}", s.isa.name(), s.mt, s.threads),
            CpuKernel::Skinny(s) => format!("cpu:skinny:{}:m{}:n{}:t{}", s.isa.name(), s.mt, s.nr, s.threads),
            CpuKernel::DequantGemm { threads } => format!("cpu:dqgemm:t{threads}"),
            CpuKernel::QPanel { rows, threads } => format!("cpu:qpanel:r{rows}:t{threads}"),
            CpuKernel::QDot(q) => format!("cpu:qdot:{}:m{}:n{}:t{}", q.isa.name(), q.mt, q.nr, q.threads),
            CpuKernel::QSplit(q) => format!("cpu:qsplit:avx2:x{}:m{}:n{}:t{}", q.terms, q.mt, q.nr, q.threads),
            CpuKernel::QPair(q) => format!("cpu:qpair:avx2:m{}:t{}", q.mt, q.threads),
            CpuKernel::QTile(q) => format!("cpu:qtile:avx2:t{}", q.threads),
            CpuKernel::Test(t) => format!("cpu:test:{}", t.name()),
        })
    }

    /// Parses an id; says what is wrong with it otherwise.
    pub fn parse(id: &str) -> std::result::Result<CpuKernel, String> {
        let parts: Vec<&str> = id.split(':').collect();
        let threads = |s: &str| -> std::result::Result<usize, String> {
            s.strip_prefix('t')
                .and_then(|t| t.parse::<usize>().ok())
                .filter(|&t| (1..=1024).contains(&t))
                .ok_or_else(|| format!("bad thread count '{s}' in kernel id '{id}'"))
        };
        // A numeric parameter `<prefix><value>` whose value must be one of `allowed`.
        let param = |s: &str, prefix: char, allowed: &[usize]| -> std::result::Result<usize, String> {
            s.strip_prefix(prefix)
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|v| allowed.contains(v))
                .ok_or_else(|| format!("bad parameter '{s}' in kernel id '{id}' (expected {prefix} and one of {allowed:?})"))
        };
        let isa = |s: &str| Isa::parse(s).ok_or_else(|| format!("unknown instruction set '{s}' in '{id}'"));
        match parts.as_slice() {
            ["cpu", "dqgemm", t] => Ok(CpuKernel::DequantGemm { threads: threads(t)? }),
            ["cpu", "qpanel", r, t] => Ok(CpuKernel::QPanel { rows: param(r, 'r', &quant::PANELS)?, threads: threads(t)? }),
            ["cpu", "qdot", i, mt, nr, t] => Ok(CpuKernel::QDot(QDot {
                isa: isa(i)?,
                mt: param(mt, 'm', &quant::TILES)?,
                nr: param(nr, 'n', &quant::ROWS)?,
                threads: threads(t)?,
            })),
            ["cpu", "qsplit", "avx2", x, mt, nr, t] => {
                let terms = param(x, 'x', &qsplit::TERMS)?;
                let (mt, nr) = (param(mt, 'm', &qsplit::TILES)?, param(nr, 'n', &qsplit::ROWS)?);
                if !QSplit::valid(mt, nr) {
                    return Err(format!("'{id}': eight rows (n8) go with tile m1 only"));
                }
                Ok(CpuKernel::QSplit(QSplit { terms, mt, nr, threads: threads(t)? }))
            }
            ["cpu", "qpair", "avx2", mt, t] => {
                Ok(CpuKernel::QPair(QPair { mt: param(mt, 'm', &qpair::TILES)?, threads: threads(t)? }))
            }
            ["cpu", "qtile", "avx2", t] => Ok(CpuKernel::QTile(QTile { threads: threads(t)? })),
            ["cpu", "gemm", t] => Ok(CpuKernel::Gemm { threads: threads(t)? }),
            ["cpu", "matrixmultiply", t] => Ok(CpuKernel::MatrixMultiply { threads: threads(t)? }),
            ["cpu", "skinny", i, mt, t] => {
                Ok(CpuKernel::Skinny(Skinny { isa: isa(i)?, mt: param(mt, 'm', &skinny::TILES)?, nr: 1, threads: threads(t)? }))
            }
            ["cpu", "skinny", i, mt, nr, t] => {
                let (mt, nr) = (param(mt, 'm', &skinny::TILES)?, param(nr, 'n', &skinny::ROWS)?);
                if !Skinny::valid(mt, nr) {
                    return Err(format!("'{id}': m{mt} x n{nr} needs more accumulators than registers"));
                }
                Ok(CpuKernel::Skinny(Skinny { isa: isa(i)?, mt, nr, threads: threads(t)? }))
            }
            ["cpu", "test", what] => TestKernel::parse(what)
                .map(CpuKernel::Test)
                .ok_or_else(|| format!("unknown test kernel '{what}'")),
            _ => Err(format!("'{id}' is not a CPU kernel id")),
        }
    }
}

pub struct CpuBackend {
    identity: Identity,
    threads: usize,
    test_kernels: bool,
    pools: Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>,
    /// Set once `cpu:test:sticky` ran: every later run fails, as in a lost GPU context.
    poisoned: std::sync::atomic::AtomicBool,
}

impl CpuBackend {
    pub fn new() -> CpuBackend {
        let threads = sysinfo::threads();
        let identity = Identity {
            backend: "cpu".into(),
            device: format!("{} ({threads} threads)", sysinfo::cpu_model()),
            arch: sysinfo::arch_string(),
            libraries: vec![
                ("gemm".into(), env!("GEMMTUNE_LIB_GEMM").into()),
                ("matrixmultiply".into(), env!("GEMMTUNE_LIB_MATRIXMULTIPLY").into()),
            ],
            details: vec![("llc_bytes".into(), sysinfo::llc_bytes().to_string())],
        };
        let test_kernels = std::env::var("GEMMTUNE_CPU_TEST_KERNELS").is_ok_and(|v| v == "1");
        CpuBackend { identity, threads, test_kernels, pools: Mutex::new(HashMap::new()), poisoned: Default::default() }
    }

    /// Also offers the `cpu:test:*` test doubles (never used outside tests).
    pub fn with_test_kernels(mut self) -> CpuBackend {
        self.test_kernels = true;
        self
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Thread counts worth trying: one, all, and half on larger machines.
    fn thread_options(&self) -> Vec<usize> {
        let mut v = vec![1, self.threads];
        if self.threads >= 4 {
            v.push(self.threads / 2);
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    fn pool(&self, threads: usize) -> Arc<rayon::ThreadPool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(threads)
            .or_insert_with(|| {
                Arc::new(
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .thread_name(move |i| format!("gemmtune-cpu{threads}-{i}"))
                        .build()
                        .expect("creating a CPU thread pool"),
                )
            })
            .clone()
    }

    /// Runs `f` on a worker of the all-threads pool, so that the kernels it calls (and
    /// any rayon work inside) fork and join within that pool instead of each waking the
    /// workers up from outside: the runtime runs a whole forward step this way.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.on_pool(self.threads, f)
    }

    /// Runs `f` on a worker of the `threads` pool (at once for one thread, or when the
    /// caller already is one of that pool's workers).
    fn on_pool<R: Send>(&self, threads: usize, f: impl FnOnce() -> R + Send) -> R {
        if threads <= 1 {
            f()
        } else {
            self.pool(threads).install(f)
        }
    }

    /// Fails once `cpu:test:sticky` ran, as every call on a lost GPU context does.
    fn check_context(&self) -> Result<()> {
        if self.poisoned.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::runtime(format!("{} (simulated by cpu:test:sticky)", crate::error::CONTEXT_LOST)));
        }
        Ok(())
    }

    /// The thread count `k` runs with (its pool).
    fn threads_of(&self, k: &CpuKernel) -> usize {
        match k {
            CpuKernel::Gemm { threads }
            | CpuKernel::MatrixMultiply { threads }
            | CpuKernel::DequantGemm { threads }
            | CpuKernel::QPanel { threads, .. } => *threads,
            CpuKernel::Skinny(s) => s.threads,
            CpuKernel::QDot(q) => q.threads,
            CpuKernel::QSplit(q) => q.threads,
            CpuKernel::QPair(q) => q.threads,
            CpuKernel::QTile(q) => q.threads,
            CpuKernel::Test(_) => self.threads,
        }
    }

    /// Runs `k` on host tensors directly (the runtime's entry point on the CPU).
    pub fn run_host(&self, k: &CpuKernel, p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor) {
        let threads = self.threads_of(k);
        let packed = || match w {
            HostTensor::Quant(q) => q,
            _ => panic!("{} needs packed weights", k.id()),
        };
        let body = || match k {
            CpuKernel::Gemm { threads } => libs::gemm_crate(p, x, w, y, *threads),
            CpuKernel::MatrixMultiply { threads } => libs::matrixmultiply(p, x, w, y, *threads),
            CpuKernel::Skinny(s) => s.run(p, x, w, y),
            CpuKernel::DequantGemm { threads } => quant::dequant_gemm(p, x, packed(), y, *threads),
            CpuKernel::QPanel { rows, threads } => quant::panel_gemm(p, x, packed(), y, *rows, *threads),
            CpuKernel::QDot(q) => q.run(p, x, packed(), y),
            CpuKernel::QSplit(q) => q.run(p, x, packed(), y),
            CpuKernel::QPair(q) => q.run(p, x, packed(), y),
            CpuKernel::QTile(q) => q.run(p, x, packed(), y),
            CpuKernel::Test(t) => t.run(p, x, w, y, self.threads),
        };
        self.on_pool(threads, body)
    }
}

impl CpuBackend {
    /// Candidates for quantized weights: the default first, then panels, then fused.
    fn quantized_candidates(&self, p: &Problem) -> Vec<CpuKernel> {
        let mut ks = Vec::new();
        for &t in &self.thread_options() {
            ks.push(CpuKernel::DequantGemm { threads: t });
        }
        if p.m > 1 {
            for rows in quant::PANELS {
                for &t in &self.thread_options() {
                    ks.push(CpuKernel::QPanel { rows, threads: t });
                }
            }
        }
        if QDot::supports(p) {
            for isa in Isa::offered() {
                for mt in quant::TILES.into_iter().filter(|&mt| mt == 1 || mt <= p.m) {
                    for nr in quant::ROWS.into_iter().filter(|&nr| QDot::offered(mt, nr)) {
                        for &t in &self.thread_options() {
                            ks.push(CpuKernel::QDot(QDot { isa, mt, nr, threads: t }));
                        }
                    }
                }
            }
        }
        if QSplit::supports(p) && QSplit::available() {
            for mt in qsplit::TILES.into_iter().filter(|&mt| mt == 1 || mt <= p.m) {
                for nr in qsplit::ROWS.into_iter().filter(|&nr| QSplit::valid(mt, nr)) {
                    for terms in qsplit::TERMS {
                        for &t in &self.thread_options() {
                            let q = QSplit { terms, mt, nr, threads: t };
                            if q.offered_for(p) {
                                ks.push(CpuKernel::QSplit(q));
                            }
                        }
                    }
                }
            }
        }
        if QPair::supports(p) && QPair::available() {
            for mt in qpair::TILES.into_iter().filter(|&mt| mt == 1 || mt <= p.m) {
                for &t in &self.thread_options() {
                    ks.push(CpuKernel::QPair(QPair { mt, threads: t }));
                }
            }
        }
        if QTile::supports(p) && QTile::available() {
            for &t in &self.thread_options() {
                ks.push(CpuKernel::QTile(QTile { threads: t }));
            }
        }
        let default = self.default_kernel(p);
        ks.sort_by_key(|k| k.id() != default);
        ks
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new()
    }
}

impl Backend for CpuBackend {
    type Buffer = HostTensor;
    type Kernel = CpuKernel;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn candidates(&self, p: &Problem) -> Result<Vec<Candidate>> {
        if !p.wformat.is_dense() {
            return Ok(self.quantized_candidates(p).into_iter().map(|k| Candidate::new(k.id().0)).collect());
        }
        let mut ks = Vec::new();
        for &t in &self.thread_options() {
            ks.push(CpuKernel::Gemm { threads: t });
        }
        for &t in &self.thread_options() {
            ks.push(CpuKernel::MatrixMultiply { threads: t });
        }
        if Skinny::supports(p) {
            for isa in Isa::offered() {
                for mt in skinny::TILES.into_iter().filter(|&mt| mt == 1 || mt <= p.m) {
                    for nr in skinny::ROWS.into_iter().filter(|&nr| Skinny::offered(isa, mt, nr)) {
                        for &t in &self.thread_options() {
                            ks.push(CpuKernel::Skinny(Skinny { isa, mt, nr, threads: t }));
                        }
                    }
                }
            }
        }
        if self.test_kernels {
            ks.extend(TestKernel::ALL.iter().map(|&t| CpuKernel::Test(t)));
        }
        ks.extend(TestKernel::ON_DEMAND.into_iter().filter(|t| t.enabled_by_env()).map(CpuKernel::Test));
        // Put the default first, as every backend does.
        let default = self.default_kernel(p);
        ks.sort_by_key(|k| k.id() != default);
        Ok(ks.into_iter().map(|k| Candidate::new(k.id().0)).collect())
    }

    fn default_kernel(&self, p: &Problem) -> KernelId {
        if p.wformat.is_dense() {
            CpuKernel::Gemm { threads: self.threads }.id()
        } else {
            CpuKernel::DequantGemm { threads: self.threads }.id()
        }
    }

    fn resolve(&self, p: &Problem, id: &KernelId) -> Result<CpuKernel> {
        let k = CpuKernel::parse(id.as_str()).map_err(Error::input)?;
        let for_packed =
            matches!(k, CpuKernel::DequantGemm { .. } | CpuKernel::QPanel { .. } | CpuKernel::QDot(_) | CpuKernel::QSplit(_) | CpuKernel::QPair(_) | CpuKernel::QTile(_));
        if for_packed == p.wformat.is_dense() {
            return Err(Error::runtime(if for_packed {
                format!("{id}: needs quantized weights, {p} has dense ones")
            } else {
                format!("{id}: needs dense weights, {p} has {} ones (cpu:dqgemm, cpu:qpanel, cpu:qdot, cpu:qsplit, cpu:qpair and cpu:qtile run them)", p.wformat)
            }));
        }
        match k {
            CpuKernel::QSplit(q) => {
                if !q.accurate_for(p) {
                    let min = if q.terms == 3 { qsplit::MIN_N_THREE_TERMS } else { qsplit::MIN_N_TWO_TERMS };
                    return Err(Error::runtime(format!(
                        "{id}: {} activation terms meet the f32 bound only for N >= {min} (got {p})",
                        q.terms
                    )));
                }
                if !QSplit::available() {
                    return Err(Error::runtime(format!("{id}: this CPU lacks the avx2 instruction set")));
                }
                if !QSplit::supports(p) {
                    return Err(Error::runtime(format!(
                        "{id}: the split kernel needs X rows contiguous (TN) and M <= {} (got {p})",
                        qsplit::MAX_M
                    )));
                }
            }
            CpuKernel::QPair(_) => {
                if !QPair::available() {
                    return Err(Error::runtime(format!("{id}: this CPU lacks the avx2 instruction set")));
                }
                if !QPair::supports(p) {
                    return Err(Error::runtime(format!(
                        "{id}: the pair kernel runs q4_1 and q8_0 weights with X rows contiguous (TN) and M <= {} (got {p})",
                        qpair::MAX_M
                    )));
                }
            }
            CpuKernel::QTile(_) => {
                if !QTile::available() {
                    return Err(Error::runtime(format!("{id}: this CPU lacks the avx2 instruction set")));
                }
                if !QTile::supports(p) {
                    return Err(Error::runtime(format!("{id}: the tile kernel needs X rows contiguous (TN) and M >= 2 (got {p})")));
                }
            }
            CpuKernel::QDot(q) => {
                if !q.isa.available() {
                    return Err(Error::runtime(format!("{id}: this CPU lacks the {} instruction set", q.isa.name())));
                }
                if !QDot::supports(p) {
                    return Err(Error::runtime(format!(
                        "{id}: the fused kernel needs X rows contiguous (TN) and M <= {} (got {p})",
                        quant::MAX_M
                    )));
                }
            }
            CpuKernel::Skinny(s) => {
                if !s.isa.available() {
                    return Err(Error::runtime(format!(
                        "{id}: this CPU lacks the {} instruction set",
                        s.isa.name()
                    )));
                }
                if !Skinny::supports(p) {
                    return Err(Error::runtime(format!(
                        "{id}: the skinny kernel needs layout TN and M <= {} (got {p})",
                        skinny::MAX_M
                    )));
                }
            }
            CpuKernel::Test(t) if t.enabled_by_env() => {}
            CpuKernel::Test(_) if !self.test_kernels => {
                return Err(Error::runtime(format!("{id}: test kernels are not enabled")));
            }
            _ => {}
        }
        Ok(k)
    }

    fn alloc(&self, dtype: DType, len: usize) -> Result<HostTensor> {
        Ok(HostTensor::zeros_guarded(dtype, len))
    }

    fn alloc_w(&self, p: &Problem) -> Result<HostTensor> {
        if p.wformat.is_dense() {
            return self.alloc(p.dtype, p.w_len());
        }
        Ok(HostTensor::Quant(crate::quant::QuantTensor::zeros(p.wformat, p.batch * p.n, p.k)))
    }

    fn guard_intact(&self, buf: &HostTensor) -> Result<bool> {
        Ok(buf.guard_intact())
    }

    fn fill_random(&self, buf: &mut HostTensor, seed: u64) -> Result<()> {
        self.check_context()?;
        buf.fill_random(seed);
        Ok(())
    }

    fn fill_nan(&self, buf: &mut HostTensor) -> Result<()> {
        buf.fill_nan();
        Ok(())
    }

    fn download(&self, buf: &HostTensor) -> Result<Vec<f32>> {
        Ok(buf.as_f32().into_owned())
    }

    fn peek(&self, buf: &HostTensor, indices: &[usize]) -> Result<Vec<f32>> {
        indices.iter().map(|&i| buf.get(i).ok_or_else(|| Error::runtime(format!("no element {i} to read (packed, or past the end)")))).collect()
    }

    fn run(&self, k: &CpuKernel, p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor) -> Result<()> {
        for (name, t, len) in [("X", x, p.x_len()), ("W", w, p.w_len()), ("Y", &*y, p.y_len())] {
            let (has, wants) = if name == "W" { (w.wformat(), p.wformat) } else { (t.wformat(), crate::problem::WeightFormat::Dense) };
            let ok_type = if wants.is_dense() { t.dtype() == p.dtype && has.is_dense() } else { has == wants };
            if t.len() != len || !ok_type {
                let what = |f: crate::problem::WeightFormat, d: DType| if f.is_dense() { d.to_string() } else { f.to_string() };
                return Err(Error::runtime(format!(
                    "operand {name} holds {} {} elements, {p} needs {len} {}",
                    t.len(),
                    what(has, t.dtype()),
                    what(wants, p.dtype)
                )));
            }
        }
        if let HostTensor::Quant(q) = w {
            if q.k != p.k {
                return Err(Error::runtime(format!("operand W has rows of {}, {p} needs {}", q.k, p.k)));
            }
        }
        if *k == CpuKernel::Test(TestKernel::Sticky) {
            self.poisoned.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.check_context()?;
        self.run_host(k, p, x, w, y);
        Ok(())
    }

    fn time(&self, k: &CpuKernel, p: &Problem, sets: &mut [Operands<HostTensor>], calls: usize) -> Result<f64> {
        let body = || {
            let start = Instant::now();
            for i in 0..calls {
                let n = sets.len();
                let Operands { x, w, y } = &mut sets[i % n];
                self.run_host(k, p, x, w, y);
            }
            start.elapsed().as_secs_f64() / calls.max(1) as f64
        };
        // The calls run on a worker of the kernel's pool, as the runtime's do (its whole
        // forward step runs inside `install`), so that each call forks and joins within
        // the pool. Called from outside, every call is handed to a worker and the caller
        // sleeps until it is done: on a 2-vCPU VM that hand-off doubled some samples of
        // two-thread kernels at 20 us (bimodal 20 / 40-65 us), and the tuner picked
        // single-thread kernels that run 1.3-1.5x slower in the runtime.
        let t = self.on_pool(self.threads_of(k), body);
        // The next sample (of any kernel) continues the rotation where this one stopped:
        // starting at set 0 every time, a sample of fewer calls than sets would reuse the
        // same few sets, cache-resident, and flatter slow kernels (few calls a sample).
        let n = sets.len();
        if n > 0 {
            sets.rotate_left(calls % n);
        }
        Ok(t)
    }

    fn cache_bytes(&self) -> usize {
        sysinfo::llc_bytes()
    }

    fn measure_bandwidth(&self) -> Result<f64> {
        Ok(sysinfo::copy_bandwidth(&self.pool(self.threads)))
    }

    fn peak_problem(&self) -> Problem {
        Problem::linear(DType::F32, 1536, 1536, 1536).expect("valid problem")
    }

    fn library_kernels(&self, p: &Problem) -> Vec<KernelId> {
        let t = self.threads;
        if !p.wformat.is_dense() {
            return vec![self.default_kernel(p)];
        }
        let mut v = vec![CpuKernel::Gemm { threads: t }.id(), CpuKernel::MatrixMultiply { threads: t }.id()];
        if Skinny::supports(p) {
            let isa = Isa::offered()[0];
            v.push(CpuKernel::Skinny(Skinny { isa, mt: if p.m >= 4 { 4 } else { 1 }, nr: 1, threads: t }).id());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_calls_run_on_a_worker_of_the_kernels_pool() {
        // `time` runs its calls through `on_pool`, as the runtime's forward step does.
        let b = CpuBackend::new();
        let name = || std::thread::current().name().map(String::from);
        assert!(b.on_pool(2, name).is_some_and(|n| n.starts_with("gemmtune-cpu2-")));
        assert_eq!(b.on_pool(1, name), name(), "one thread: the caller's own");
        let k = CpuKernel::parse("cpu:skinny:portable:m1:t2").unwrap();
        assert_eq!(b.threads_of(&k), 2);
    }

    #[test]
    fn ids_round_trip_and_bad_ids_explain() {
        let b = CpuBackend::new().with_test_kernels();
        for p in [Problem::linear(DType::F32, 4, 64, 64).unwrap(), Problem::linear(DType::BF16, 64, 64, 64).unwrap()] {
            let cands = b.candidates(&p).unwrap();
            assert_eq!(cands[0].id, b.default_kernel(&p));
            assert!(cands.len() >= 4 + TestKernel::ALL.len());
            for c in cands {
                let k = CpuKernel::parse(c.id.as_str()).unwrap();
                assert_eq!(k.id(), c.id);
                b.resolve(&p, &c.id).unwrap();
            }
        }
        for bad in ["cpu:gemm", "cpu:gemm:t0", "cpu:gemm:x2", "cpu:skinny:sse9:m1:t1", "cpu:skinny:avx2:m3:t1", "cpu:skinny:avx2:m4:n3:t1", "cpu:skinny:avx512:m8:n4:t1", "cuda:x", "cpu:test:nope"] {
            assert!(CpuKernel::parse(bad).is_err(), "{bad}");
        }
        // Skinny ids from before W-row blocking select one row at a time, as they did;
        // blocked ids spell out `n`.
        let old = CpuKernel::parse("cpu:skinny:avx2:m4:t1").unwrap();
        assert_eq!(old, CpuKernel::Skinny(Skinny { isa: Isa::Avx2, mt: 4, nr: 1, threads: 1 }));
        assert_eq!(old.id().as_str(), "cpu:skinny:avx2:m4:t1");
        let blocked = CpuKernel::Skinny(Skinny { isa: Isa::Avx512, mt: 4, nr: 2, threads: 2 }).id();
        assert_eq!(blocked.as_str(), "cpu:skinny:avx512:m4:n2:t2");
        // Blocked variants the registers cannot hold are not offered (AVX2: 16 registers).
        assert!(Skinny::offered(Isa::Avx512, 4, 4) && !Skinny::offered(Isa::Avx2, 4, 4));
        assert!(Skinny::offered(Isa::Avx2, 8, 1) && !Skinny::offered(Isa::Avx2, 8, 2));
        // The skinny kernel is not resolvable for prefill shapes.
        let big = Problem::linear(DType::F32, 64, 8, 8).unwrap();
        let id = CpuKernel::Skinny(Skinny { isa: Isa::Portable, mt: 1, nr: 1, threads: 1 }).id();
        assert!(b.resolve(&big, &id).unwrap_err().to_string().contains("M <= 16"));
        // Test kernels need opting in.
        let plain = CpuBackend::new();
        assert!(plain.resolve(&big, &KernelId::new("cpu:test:slow")).is_err());
    }
}
