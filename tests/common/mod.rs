//! Test helpers shared by the integration tests.
#![allow(dead_code)]

use gemmtune::backend::cpu::{CpuBackend, CpuKernel, HostTensor};
use gemmtune::backend::{Backend, Candidate, Identity, KernelId, Operands};
use gemmtune::error::Result;
use gemmtune::problem::{DType, Problem};

/// A test double: the real CPU backend (test kernels enabled) restricted to a chosen
/// candidate list and default, so the tuner's choices can be checked on purpose-built
/// contests. Never shipped as a backend.
pub struct Restricted {
    pub inner: CpuBackend,
    pub default: KernelId,
    pub ids: Vec<KernelId>,
    /// Rewrites a measured time per call (kernel, seconds, when the timing began) before the tuner sees it: a
    /// contest whose timings depend on more than the code (e.g. a GPU's power state).
    pub time_hook: Option<Box<TimeHook>>,
    /// The tuner's warm-up calls (the CPU's two unless a test models another backend).
    pub warm_up_calls: usize,
    /// A kernel that "writes into X" (or W with `clobbers_w`), as a device kernel could:
    /// after it ran, that operand reads back negated and later runs on it compute from the
    /// negated values, until it is refilled.
    pub clobbers: Option<KernelId>,
    pub clobbers_w: bool,
    /// Kernels that model a library configuration chosen for one M (`fits_other_m`).
    pub fixed_m: Vec<KernelId>,
    /// Where the X buffers it changed live (their data addresses).
    clobbered: std::sync::Mutex<std::collections::HashSet<usize>>,
}

/// Where a tensor's elements live: the identity of a buffer across calls.
fn addr(t: &HostTensor) -> usize {
    match t {
        HostTensor::F32(v) => v.as_ptr() as usize,
        HostTensor::F16(v) => v.as_ptr() as usize,
        HostTensor::BF16(v) => v.as_ptr() as usize,
        HostTensor::Quant(q) => q as *const _ as usize,
    }
}

impl Restricted {
    /// `t` as the device would hold it: negated if a clobbering kernel changed it.
    fn seen(&self, t: &HostTensor) -> Option<HostTensor> {
        let changed = self.clobbered.lock().unwrap().contains(&addr(t));
        changed.then(|| {
            let v: Vec<f32> = t.as_f32().iter().map(|x| -x).collect();
            HostTensor::from_f32(t.dtype(), &v)
        })
    }
}

pub type TimeHook = dyn Fn(&CpuKernel, f64, std::time::Instant) -> f64 + Send + Sync;

impl Restricted {
    pub fn new(default: &str, others: &[&str]) -> Restricted {
        let mut ids = vec![KernelId::new(default)];
        ids.extend(others.iter().map(|s| KernelId::new(*s)));
        Restricted { inner: CpuBackend::new().with_test_kernels(), default: KernelId::new(default), ids, time_hook: None, warm_up_calls: 2, clobbers: None, clobbers_w: false, fixed_m: Vec::new(), clobbered: Default::default() }
    }
}

impl Backend for Restricted {
    type Buffer = HostTensor;
    type Kernel = CpuKernel;
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn identity(&self) -> &Identity {
        self.inner.identity()
    }
    fn candidates(&self, _p: &Problem) -> Result<Vec<Candidate>> {
        Ok(self.ids.iter().map(|i| Candidate::new(i.0.clone())).collect())
    }
    fn default_kernel(&self, _p: &Problem) -> KernelId {
        self.default.clone()
    }
    fn fits_other_m(&self, id: &KernelId) -> bool {
        !self.fixed_m.contains(id)
    }
    fn resolve(&self, p: &Problem, id: &KernelId) -> Result<CpuKernel> {
        self.inner.resolve(p, id)
    }
    fn alloc(&self, d: DType, n: usize) -> Result<HostTensor> {
        self.inner.alloc(d, n)
    }
    fn fill_random(&self, b: &mut HostTensor, s: u64) -> Result<()> {
        self.clobbered.lock().unwrap().remove(&addr(b));
        self.inner.fill_random(b, s)
    }
    fn fill_nan(&self, b: &mut HostTensor) -> Result<()> {
        self.inner.fill_nan(b)
    }
    fn download(&self, b: &HostTensor) -> Result<Vec<f32>> {
        self.inner.download(self.seen(b).as_ref().unwrap_or(b))
    }
    fn peek(&self, b: &HostTensor, at: &[usize]) -> Result<Vec<f32>> {
        self.inner.peek(self.seen(b).as_ref().unwrap_or(b), at)
    }
    fn guard_intact(&self, b: &HostTensor) -> Result<bool> {
        self.inner.guard_intact(b)
    }
    fn run(&self, k: &CpuKernel, p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor) -> Result<()> {
        let (sx, sw) = (self.seen(x), self.seen(w));
        self.inner.run(k, p, sx.as_ref().unwrap_or(x), sw.as_ref().unwrap_or(w), y)?;
        if self.clobbers.as_ref() == Some(&k.id()) {
            self.clobbered.lock().unwrap().insert(addr(if self.clobbers_w { w } else { x }));
        }
        Ok(())
    }
    fn warm_up_calls(&self) -> usize {
        self.warm_up_calls
    }
    fn time(&self, k: &CpuKernel, p: &Problem, sets: &mut [Operands<HostTensor>], calls: usize) -> Result<f64> {
        let began = std::time::Instant::now();
        let t = self.inner.time(k, p, sets, calls)?;
        Ok(self.time_hook.as_ref().map_or(t, |h| h(k, t, began)))
    }
    fn cache_bytes(&self) -> usize {
        self.inner.cache_bytes()
    }
    fn measure_bandwidth(&self) -> Result<f64> {
        self.inner.measure_bandwidth()
    }
    fn peak_problem(&self) -> Problem {
        self.inner.peak_problem()
    }
}

pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_gemmtune"))
}
