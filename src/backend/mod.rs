//! The `Backend` trait: everything the tuner, the dispatcher and the runtime need from a
//! device and its GEMM libraries. Backends live in their own folders (`cpu/`, `cuda/`,
//! `rocm/`); nothing outside a backend knows what a kernel id means. `kernels.rs` holds
//! what the GPU backends share about our own run-time compiled kernels.
//!
//! Life of a candidate: `candidates()` lists stable ids for a problem, `resolve()` turns
//! an id (from the list or from a table written months ago) back into exactly that
//! kernel, `run()` launches it on operands made by `alloc()`/`fill_random()`, and
//! `time()` measures one sample of back-to-back calls the way the device should be
//! timed (host clock on the CPU, events and graphs on GPUs).

pub mod cpu;
pub mod cuda;
pub mod kernels;
pub mod rocm;

use crate::error::Result;
use crate::problem::{DType, Problem};
use std::collections::BTreeMap;
use std::fmt;

/// A stable kernel name: `<backend>:<family>:<parameters>`. Re-resolving the same id on
/// the same device and library versions selects exactly the same kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelId(pub String);

impl KernelId {
    pub fn new(s: impl Into<String>) -> KernelId {
        KernelId(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The family part of the id (`gemm` in `cpu:gemm:t2`).
    pub fn family(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or("")
    }
}

impl fmt::Display for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One candidate for a problem.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: KernelId,
    /// Free-form `key=value` facts that ride along into the table (workspace bytes,
    /// graph-capturable, ...), `;`-separated.
    pub attrs: String,
}

impl Candidate {
    pub fn new(id: impl Into<String>) -> Candidate {
        Candidate { id: KernelId::new(id), attrs: String::new() }
    }
}

/// Validators: what must be unchanged for a tuned row to stay valid (device, arch,
/// library versions, tool version). Written into every table.
pub type Validators = BTreeMap<String, String>;

/// Device and library identity of a backend instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub backend: String,
    /// Human-readable device name, e.g. "AMD EPYC (2 threads)" or "NVIDIA H100 80GB HBM3".
    pub device: String,
    /// Instruction set / compute capability the kernels were built for.
    pub arch: String,
    /// (library, version) pairs whose kernels the table names.
    pub libraries: Vec<(String, String)>,
    /// Informational facts that do not invalidate rows (memory size, cache sizes).
    pub details: Vec<(String, String)>,
}

impl Identity {
    pub fn validators(&self) -> Validators {
        let mut v = Validators::new();
        v.insert("backend".into(), self.backend.clone());
        v.insert("device".into(), self.device.clone());
        v.insert("arch".into(), self.arch.clone());
        v.insert("gemmtune".into(), env!("CARGO_PKG_VERSION").into());
        for (lib, ver) in &self.libraries {
            v.insert(format!("lib.{lib}"), ver.clone());
        }
        v
    }
}

/// Explains why a table row's validators do not fit this backend, or `None` if they do.
/// Every key must be present on both sides with the same value.
pub fn validator_mismatch(row: &Validators, here: &Validators) -> Option<String> {
    // The most telling difference first: another backend, then another device.
    let first = ["backend", "device"].into_iter().filter_map(|k| here.get_key_value(k));
    let rest = here.iter().filter(|(k, _)| k.as_str() != "backend" && k.as_str() != "device");
    for (k, v) in first.chain(rest) {
        match row.get(k) {
            None => return Some(format!("{k} missing from the table (here: '{v}')")),
            Some(t) if t != v => return Some(format!("{k} differs (table: '{t}', here: '{v}')")),
            _ => {}
        }
    }
    row.keys()
        .find(|k| !here.contains_key(*k))
        .map(|k| format!("{k} is in the table but unknown here"))
}

/// What `Backend::inspect` reports about an output buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Inspection {
    pub nonfinite: usize,
    pub first_nonfinite: Option<usize>,
    pub values: Vec<f32>,
}

impl Inspection {
    pub fn of(y: &[f32], indices: &[usize]) -> Inspection {
        Inspection {
            nonfinite: y.iter().filter(|v| !v.is_finite()).count(),
            first_nonfinite: y.iter().position(|v| !v.is_finite()),
            values: indices.iter().map(|&i| y[i]).collect(),
        }
    }
}

/// The operands of one problem: X, W and Y.
pub struct Operands<B> {
    pub x: B,
    pub w: B,
    pub y: B,
}

pub trait Backend: Send + Sync {
    /// Memory holding one operand (host memory for the CPU, device memory for GPUs).
    type Buffer: Send;
    /// A resolved, ready-to-run kernel.
    type Kernel: Send + Sync;

    /// "cpu", "cuda", "rocm".
    fn name(&self) -> &'static str;
    fn identity(&self) -> &Identity;

    /// Every candidate for `p`, the default included.
    fn candidates(&self, p: &Problem) -> Result<Vec<Candidate>>;
    /// What a user gets without tuning (the library heuristic); the baseline of reports.
    fn default_kernel(&self, p: &Problem) -> KernelId;
    /// Turns an id back into exactly that kernel for `p`, or says why it cannot run here.
    fn resolve(&self, p: &Problem, id: &KernelId) -> Result<Self::Kernel>;

    /// Allocates `len` elements of `dtype`; contents unspecified.
    fn alloc(&self, dtype: DType, len: usize) -> Result<Self::Buffer>;
    /// Allocates W of `p`: `w_len` elements of the dtype, or the packed blocks of its
    /// quantized weight format (`fill_random` then writes `quant.rs`'s random weights).
    /// Backends without kernels for quantized weights keep this default, which refuses them.
    fn alloc_w(&self, p: &Problem) -> Result<Self::Buffer> {
        if p.wformat.is_dense() {
            self.alloc(p.dtype, p.w_len())
        } else {
            Err(crate::error::Error::input(format!(
                "{p}: the {} backend has no kernels for {} weights",
                self.name(),
                p.wformat
            )))
        }
    }
    /// Fills with `random::element(dtype, seed, i)` for every element `i`.
    fn fill_random(&self, buf: &mut Self::Buffer, seed: u64) -> Result<()>;
    /// Fills with NaN, so that any element a kernel fails to write is caught.
    fn fill_nan(&self, buf: &mut Self::Buffer) -> Result<()>;
    /// Whether the guard region behind a buffer made by `alloc` (set by `fill_nan`) is
    /// still untouched: a kernel that wrote past the end of its output changed it.
    fn guard_intact(&self, _buf: &Self::Buffer) -> Result<bool> {
        Ok(true)
    }

    /// Copies the whole buffer to the host as f32.
    fn download(&self, buf: &Self::Buffer) -> Result<Vec<f32>>;

    /// Scans an output: how many elements are not finite (and the first), and the values
    /// at `indices`. Device backends override this to avoid copying all of Y.
    fn inspect(&self, y: &Self::Buffer, indices: &[usize]) -> Result<Inspection> {
        Ok(Inspection::of(&self.download(y)?, indices))
    }

    /// `inspect` and `guard_intact` together, as validation asks for both after every
    /// candidate's run. Device backends may read both back at once (CUDA does).
    fn inspect_guarded(&self, y: &Self::Buffer, indices: &[usize]) -> Result<(Inspection, bool)> {
        Ok((self.inspect(y, indices)?, self.guard_intact(y)?))
    }

    /// The values at `indices`, nothing else: the tuner's check that a kernel left its
    /// inputs alone. `inspect`'s values by default (device backends gather them on the
    /// device; the scan that comes with them is one read of the buffer).
    fn peek(&self, buf: &Self::Buffer, indices: &[usize]) -> Result<Vec<f32>> {
        Ok(self.inspect(buf, indices)?.values)
    }

    /// Runs the kernel once: `Y = X · W^T` in `p`'s layout. Returns when the result can be
    /// read back (device backends may return after enqueueing; `download` synchronizes).
    fn run(&self, k: &Self::Kernel, p: &Problem, x: &Self::Buffer, w: &Self::Buffer, y: &mut Self::Buffer) -> Result<()>;

    /// One timing sample: `calls` back-to-back runs rotating over `sets`, warm already.
    /// Returns seconds per call.
    fn time(
        &self,
        k: &Self::Kernel,
        p: &Problem,
        sets: &mut [Operands<Self::Buffer>],
        calls: usize,
    ) -> Result<f64>;

    /// Seconds per call launched one by one from the host (no graph): what a caller that
    /// does not capture graphs pays, launch latency included. Defaults to `time`.
    fn time_eager(
        &self,
        k: &Self::Kernel,
        p: &Problem,
        sets: &mut [Operands<Self::Buffer>],
        calls: usize,
    ) -> Result<f64> {
        self.time(k, p, sets, calls)
    }

    /// Bytes of the last-level cache that rotating operand sets must exceed.
    fn cache_bytes(&self) -> usize;

    /// Calls of each candidate in the tuner's warm-up, the last one timed: the first pays
    /// one-time costs. Two by default (the CPU: a thread pool's workers are asleep again
    /// after validation).
    fn warm_up_calls(&self) -> usize {
        2
    }

    /// Shortest timing sample; shorter kernels are batched into one sample.
    fn min_sample(&self) -> std::time::Duration {
        std::time::Duration::from_millis(2)
    }

    /// Measured memory bandwidth in bytes/s: a large copy, bytes read plus written.
    fn measure_bandwidth(&self) -> Result<f64>;

    /// Compiles ahead, where the backend keeps compiled kernels on disk, the run-time
    /// compiled kernels that `candidates` would compile for `problems` after the first,
    /// until `stop()`. `tune` calls it on a thread of its own while it tunes; none by
    /// default (the CPU compiles nothing).
    fn precompile(&self, _problems: &[Problem], _stop: &(dyn Fn() -> bool + Sync)) {}

    /// How `bench` and `tune` handle the device's power management (`--sustain-calls`,
    /// `--settle-ms`): none by default (the CPU).
    fn clock_settling(&self) -> ClockSettling {
        ClockSettling::default()
    }

    /// A large square problem whose best time gives the compute peak for rooflines.
    fn peak_problem(&self) -> Problem;

    /// Whether the kernel `id`, tuned at one M, is a fair guess at another M with the same
    /// weights (the dispatcher's bucket fallback). Our own kernels take an M range and
    /// say by `resolve` whether they run an M. A library configuration (a cuBLASLt algo
    /// blob, a rocBLAS solution) was chosen for its M alone: at another M the library's
    /// own heuristic (the default) is the better guess, and the dispatcher takes it. On
    /// the H200 the M = 128 rows' cuBLASLt configurations ran Llama-3.1-8B at batch 64 at
    /// 0.885x the default's speed.
    fn fits_other_m(&self, _id: &KernelId) -> bool {
        true
    }

    /// One representative kernel per library/family for `p` (reports compare against
    /// each); the default alone unless a backend says more.
    fn library_kernels(&self, p: &Problem) -> Vec<KernelId> {
        vec![self.default_kernel(p)]
    }

    /// Launch our own kernels chained as the GPU runtime launches them (CUDA sm_90+:
    /// programmatic dependent launch): back to back, a call is scheduled and its blocks
    /// start while the call before drains. Library kernels (cuBLAS, cuBLASLt) cannot be
    /// launched so and are unaffected. Returns whether it is on now (false: this backend
    /// or device has no such launches).
    fn set_chained_launches(&self, _on: bool) -> bool {
        false
    }

    /// Explains why a table row tuned under `validators` may not be used here.
    fn row_mismatch(&self, validators: &Validators) -> Option<String> {
        validator_mismatch(validators, &self.identity().validators())
    }
}

/// Bytes a device copy-bandwidth measurement moves (1 GiB, far beyond any cache).
pub const COPY_BYTES: usize = 1 << 30;

/// Device-to-device copy bandwidth from `copy_ms` (one timed copy of `COPY_BYTES`, in
/// milliseconds): the best of 10, counting bytes read plus written, in bytes/s.
pub fn best_copy_rate(mut copy_ms: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..10 {
        best = best.min(copy_ms()?);
    }
    Ok(2.0 * COPY_BYTES as f64 / (best * 1e-3))
}

/// Refuses problems with packed (quantized) weights on backends that have no kernels for
/// them yet (the GPU backends): a clear error instead of a library call on packed bytes.
pub fn dense_weights_only(backend: &str, p: &Problem) -> Result<()> {
    if p.wformat.is_dense() {
        Ok(())
    } else {
        Err(crate::error::Error::input(format!("backend '{backend}' has no kernels for quantized weights yet ({p})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::WeightFormat;

    #[test]
    fn gpu_backends_refuse_packed_weights_by_name() {
        let dense = Problem::linear(DType::F32, 1, 256, 512).unwrap();
        assert!(dense_weights_only("cuda", &dense).is_ok());
        for f in WeightFormat::QUANTIZED {
            let p = dense.with_weights(f).unwrap();
            let e = dense_weights_only("cuda", &p).unwrap_err();
            assert!(e.to_string().contains("backend 'cuda' has no kernels for quantized weights"), "{e}");
            assert!(e.to_string().contains(f.name()), "{e} should name {}", f.name());
            assert_eq!(e.exit_code(), 2);
        }
    }
}

/// A device whose clocks follow its power draw: a large GEMM reaches the power cap within
/// ~50 ms and runs slower from then on, and after heavy calls the clocks take a few
/// hundred ms idle to recover (H200 measurements: docs/PERFORMANCE.md, twelfth session).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClockSettling {
    /// Back-to-back calls of the peak problem, timed as one sample from rest, whose rate
    /// is the sustained compute roof (0: the burst peak is the roof).
    pub sustain_calls: usize,
    /// Idle time before each benched shape, so no shape inherits the last one's state.
    pub settle: std::time::Duration,
}

impl ClockSettling {
    /// A GPU: the sustained peak of ../shared/reference/h100-baseline.md (100 back-to-back
    /// 8192^3 calls, one event pair: ~140 ms, mostly at the power cap), and 500 ms idle,
    /// which restores a decode call's time after 300 ms of a large GEMM (H200: 12.44 us
    /// rested, 13.8 us right after, 12.58 us 200 ms after).
    pub const GPU: ClockSettling = ClockSettling { sustain_calls: 100, settle: std::time::Duration::from_millis(500) };
}
