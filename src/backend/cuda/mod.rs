//! The CUDA backend: cuBLAS (the default every report compares against), every
//! cuBLASLt algorithm and configuration the library accepts for the problem, and decode
//! GEMV kernels of our own compiled by NVRTC. All libraries are loaded at run time
//! (cudarc `dynamic-loading`): without a driver the backend reports which library is
//! missing instead of failing to start.
//!
//! Kernel ids:
//! - `cuda:cublas:default` — `cublasGemmEx` with the default algorithm, or for batched
//!   problems one `cublasGemmStridedBatchedEx` (what PyTorch runs for mm and bmm);
//! - `cuda:cublaslt:<version>:<config>:<blob hex>` — one cuBLASLt algorithm (lt.rs);
//! - `cuda:gemv:...`, `cuda:mma:...` and `cuda:qmma:...` — kernels/gemv.cu, kernels/mma.cu
//!   and kernels/qmma.cu (custom.rs);
//! - `cuda:dq:<dense id without "cuda:">` — for quantized weights: dequantize W into a
//!   16-bit scratch (kernels/quant.cu), then run that dense kernel; `cuda:dq:cublas:default`
//!   is the default of quantized problems (what a framework without int4 kernels does).

pub mod custom;
pub mod device;
pub mod lt;
pub mod rtc;

use super::{Backend, Candidate, Identity, Inspection, KernelId, Operands};
use crate::error::{Error, Result};
use crate::problem::{DType, Problem, WeightFormat};
use cudarc::cublas::sys as blas;
use cudarc::driver::CudaFunction;
use device::{DevBuf, Gpu};
use half::{bf16, f16};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use device::missing_libraries;

/// Visible CUDA devices (loads the driver; an error names what is missing).
pub fn device_count() -> Result<usize> {
    let missing = missing_libraries();
    if !missing.is_empty() {
        return Err(Error::input(format!("backend 'cuda' unavailable: cannot load {}", missing.join(", "))));
    }
    cudarc::driver::result::init().map_err(device::drv)?;
    Ok(cudarc::driver::result::device::get_count().map_err(device::drv)? as usize)
}

/// A resolved CUDA kernel; `uid` is unique per resolve (it keys the graph cache).
pub struct CudaKernel {
    uid: u64,
    kind: Kind,
}

enum Kind {
    Cublas { tf32: bool },
    Lt { algo: cudarc::cublaslt::sys::cublasLtMatmulAlgo_t, desc: Arc<lt::Desc> },
    Custom { custom: custom::Custom, function: CudaFunction },
    /// Dequantize W into `scratch` with `dequant`, then run `inner` on `dense`, the problem
    /// with dense weights.
    Dequant { inner: Box<Kind>, dense: Problem, dequant: CudaFunction, scratch: Arc<DevBuf> },
}

static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl CudaKernel {
    fn new(kind: Kind) -> CudaKernel {
        CudaKernel { uid: NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed), kind }
    }
}

/// Captured timing graphs by (kernel uid, hash of every operand address of the sets,
/// calls, chained launches): a graph holds those addresses, so sets rebuilt elsewhere
/// (even with the first at the same address) get a graph of their own.
struct Graphs(HashMap<(u64, u64, usize, bool), cudarc::driver::CudaGraph>);

/// cuBLAS and cuBLASLt kernels (`cuda:cublas:*`, `cuda:cublaslt*:*`, and the same after
/// a dequantization, `cuda:dq:cublas*`): a configuration of the library for one problem
/// (see `Backend::fits_other_m`).
fn is_library(id: &KernelId) -> bool {
    let s = id.as_str();
    s.starts_with("cuda:cublas") || s.starts_with("cuda:dq:cublas")
}

/// The timing-graph key part of `sets` (`kernels::sets_key`).
fn sets_key(sets: &[Operands<DevBuf>]) -> u64 {
    crate::backend::kernels::sets_key(sets.iter().map(|s| (s.x.ptr, s.w.ptr, s.y.ptr)))
}
// SAFETY: graphs are only touched under the backend's lock.
unsafe impl Send for Graphs {}

// SAFETY: the algo blob is plain data and the descriptors are only read; launches are
// serialized by the backend's lock.
unsafe impl Send for CudaKernel {}
unsafe impl Sync for CudaKernel {}

struct Blas(blas::cublasHandle_t);
// SAFETY: used under the backend's lock only.
unsafe impl Send for Blas {}
unsafe impl Sync for Blas {}

pub struct CudaBackend {
    gpu: Gpu,
    rtc: rtc::Rtc,
    lt: lt::Lt,
    blas: Blas,
    lt_workspace: DevBuf,
    _blas_workspace: DevBuf,
    /// Split-K partials and per-tile counters (zeroed) of our own kernels.
    custom_ws: DevBuf,
    custom_counters: DevBuf,
    identity: Identity,
    descs: Mutex<HashMap<(Problem, bool), Arc<lt::Desc>>>,
    graphs: Mutex<Graphs>,
    scratch: Mutex<Option<rtc::Scratch>>,
    /// The dequantized W of `cuda:dq:` kernels, shared and grown as needed (a kernel keeps
    /// the one it was resolved with alive: captured graphs hold its address).
    dq_scratch: Mutex<Option<Arc<DevBuf>>>,
    lock: Mutex<()>,
    /// Launch our kernels as programmatic dependent launches (the GPU runtime turns this on;
    /// the tuner times kernels without it).
    pdl: std::sync::atomic::AtomicBool,
    /// Most cuBLASLt configurations offered per problem.
    pub lt_budget: usize,
}

impl CudaBackend {
    /// Opens GPU `ordinal`, or says which library or device is missing.
    pub fn new(ordinal: usize) -> Result<CudaBackend> {
        let gpu = Gpu::open(ordinal)?;
        gpu.bind()?;
        let rtc = rtc::Rtc::new(&gpu)?;
        let lt = lt::Lt::new()?;
        let handle = cudarc::cublas::result::create_handle().map_err(|e| Error::runtime(format!("cuBLAS: {e:?}")))?;
        let blas_ws = gpu.alloc_bytes(lt::WORKSPACE)?;
        let mut blas_version = 0;
        // SAFETY: the handle was just created; workspace outlives it (dropped after).
        unsafe {
            cudarc::cublas::result::set_stream(handle, gpu.cu_stream() as blas::cudaStream_t)
                .map_err(|e| Error::runtime(format!("cuBLAS: {e:?}")))?;
            // Unchecked, a failed workspace call leaves cuBLAS on its own pool and a failed
            // version query writes version 0 into every table row.
            blas::cublasSetWorkspace_v2(handle, blas_ws.ptr as *mut c_void, lt::WORKSPACE)
                .result()
                .map_err(|e| Error::runtime(format!("cublasSetWorkspace: {e:?}")))?;
            blas::cublasGetVersion_v2(handle, &mut blas_version).result().map_err(|e| Error::runtime(format!("cublasGetVersion: {e:?}")))?;
        }
        let (nv_major, nv_minor) = rtc::nvrtc_version()?;
        let identity = Identity {
            backend: "cuda".into(),
            device: gpu.name.clone(),
            arch: rtc.arch().to_string(),
            libraries: vec![
                ("cublas".into(), blas_version.to_string()),
                ("cublasLt".into(), lt.version.to_string()),
                ("nvrtc".into(), format!("{nv_major}.{nv_minor}")),
                ("driver".into(), gpu.driver_version.to_string()),
            ],
            details: vec![
                ("sms".into(), gpu.sms.to_string()),
                ("l2_bytes".into(), gpu.l2_bytes.to_string()),
                ("memory_bytes".into(), gpu.mem_bytes.to_string()),
            ],
        };
        let lt_workspace = gpu.alloc_bytes(lt::WORKSPACE)?;
        let custom_ws = gpu.alloc_bytes(custom::WS_BYTES)?;
        let custom_counters = gpu.alloc_bytes(4 * custom::COUNTERS)?;
        gpu.memset(&custom_counters, 0)?;
        gpu.sync()?;
        Ok(CudaBackend {
            rtc,
            lt,
            blas: Blas(handle),
            lt_workspace,
            _blas_workspace: blas_ws,
            custom_ws,
            custom_counters,
            identity,
            descs: Mutex::new(HashMap::new()),
            graphs: Mutex::new(Graphs(HashMap::new())),
            scratch: Mutex::new(None),
            dq_scratch: Mutex::new(None),
            lock: Mutex::new(()),
            pdl: std::sync::atomic::AtomicBool::new(false),
            lt_budget: 256,
            gpu,
        })
    }

    fn desc(&self, p: &Problem, tf32: bool) -> Result<Arc<lt::Desc>> {
        let mut d = self.descs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = d.get(&(*p, tf32)) {
            return Ok(x.clone());
        }
        let x = Arc::new(lt::Desc::new(p, tf32)?);
        d.insert((*p, tf32), x.clone());
        Ok(x)
    }

    /// Enqueues one run on the stream (no synchronization: graph-capturable).
    fn launch(&self, k: &CudaKernel, p: &Problem, x: &DevBuf, w: &DevBuf, y: &DevBuf) -> Result<()> {
        self.launch_kind(&k.kind, p, x, w, y, self.pdl())
    }

    /// `chained`: our kernels as programmatic dependent launches (cuBLAS/cuBLASLt launch
    /// their own). Such a kernel may read W before the kernel before it has finished
    /// (PDL_ENTRY, kernels/common.cuh), so it is chained only where that one cannot
    /// have written W.
    fn launch_kind(&self, kind: &Kind, p: &Problem, x: &DevBuf, w: &DevBuf, y: &DevBuf, chained: bool) -> Result<()> {
        match kind {
            Kind::Cublas { tf32 } => {
                let t = match p.dtype {
                    DType::F32 => blas::cudaDataType::CUDA_R_32F,
                    DType::F16 => blas::cudaDataType::CUDA_R_16F,
                    DType::BF16 => blas::cudaDataType::CUDA_R_16BF,
                };
                let (alpha, beta) = (1.0f32, 0.0f32);
                let op = |tr: bool| if tr { blas::cublasOperation_t::CUBLAS_OP_T } else { blas::cublasOperation_t::CUBLAS_OP_N };
                let lda = if p.layout.w_trans { p.k } else { p.n };
                let ldb = if p.layout.x_trans { p.m } else { p.k };
                let compute = if *tf32 {
                    blas::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
                } else {
                    blas::cublasComputeType_t::CUBLAS_COMPUTE_32F
                };
                let (ab, ap) = (&alpha as *const f32 as *const c_void, &beta as *const f32 as *const c_void);
                let (wp, xp, yp) = (w.ptr as *const c_void, x.ptr as *const c_void, y.ptr as *mut c_void);
                let algo = blas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
                let (n, m, k) = (p.n as i32, p.m as i32, p.k as i32);
                let (tw, tx) = (op(p.layout.w_trans), op(p.layout.x_trans));
                // SAFETY: operands hold the problem's elements (batch items at the strides
                // given); dimensions are below MAX_DIM, so the i32 casts are exact.
                unsafe {
                    if p.batch == 1 {
                        // torch.mm / F.linear: one cublasGemmEx.
                        cudarc::cublas::result::gemm_ex(self.blas.0, tw, tx, n, m, k, ab, wp, t, lda as i32, xp, t, ldb as i32, ap, yp, t, n, compute, algo)
                            .map_err(|e| Error::runtime(format!("cublasGemmEx: {e:?}")))?;
                    } else {
                        // torch.bmm: one strided batched call (one launch, cuBLAS's batched
                        // kernels), not a call per item.
                        let (sw, sx, sy) = ((p.n * p.k) as i64, (p.m * p.k) as i64, (p.m * p.n) as i64);
                        cudarc::cublas::result::gemm_strided_batched_ex(
                            self.blas.0,
                            tw,
                            tx,
                            n,
                            m,
                            k,
                            ab,
                            wp,
                            t,
                            lda as i32,
                            sw,
                            xp,
                            t,
                            ldb as i32,
                            sx,
                            ap,
                            yp,
                            t,
                            n,
                            sy,
                            p.batch as i32,
                            compute,
                            algo,
                        )
                        .map_err(|e| Error::runtime(format!("cublasGemmStridedBatchedEx: {e:?}")))?;
                    }
                }
                Ok(())
            }
            Kind::Lt { algo, desc } => desc.matmul(&self.lt, algo, x, w, y, &self.lt_workspace, &self.gpu.stream),
            Kind::Custom { custom, function } => custom.launch(
                &self.gpu,
                function,
                x.ptr,
                w.ptr,
                y.ptr,
                p,
                self.custom_ws.ptr,
                self.custom_counters.ptr,
                chained,
            ),
            Kind::Dequant { inner, dense, dequant, scratch } => {
                let (rows, k) = ((p.batch * p.n) as u64, p.k as i32);
                let work = match p.wformat {
                    WeightFormat::Q8_0 => p.w_len() / 32,
                    _ => p.w_len() / 8,
                };
                // SAFETY: w holds rows × k packed weights (check_operands), scratch at least
                // rows × k 16-bit values (sized when resolved).
                unsafe {
                    self.gpu
                        .launcher(dequant, chained)
                        .arg(&w.ptr)
                        .arg(&scratch.ptr)
                        .arg(&rows)
                        .arg(&k)
                        .launch(rtc::grid_for(work))
                        .map_err(device::drv)?;
                }
                // Unchained: the dequantize kernel just wrote this W.
                self.launch_kind(inner, dense, x, scratch, y, false)
            }
        }
    }

    /// A scratch for `p`'s dequantized W: the current one if large enough, else a new one.
    fn dq_scratch(&self, p: &Problem) -> Result<Arc<DevBuf>> {
        let mut s = self.dq_scratch.lock().unwrap_or_else(|e| e.into_inner());
        match s.as_ref() {
            Some(b) if b.len >= p.w_len() && b.dtype == p.dtype => Ok(b.clone()),
            _ => {
                let b = Arc::new(self.gpu.alloc(p.dtype, p.w_len())?);
                *s = Some(b.clone());
                Ok(b)
            }
        }
    }

    /// The GPU (stream, allocations, copies) for callers that run their own kernels
    /// beside the GEMMs (the GPU runtime).
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Whether our kernels are launched with PDL (see `device::Launch`).
    pub fn set_pdl(&self, on: bool) {
        self.pdl.store(on, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn pdl(&self) -> bool {
        self.pdl.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The NVRTC compiler and module cache.
    pub fn rtc(&self) -> &rtc::Rtc {
        &self.rtc
    }

    /// `Backend::inspect`, with the guard check read back in the same copy (`rtc::inspect`).
    fn inspect_with(&self, y: &DevBuf, indices: &[usize], guard: bool) -> Result<(Inspection, bool)> {
        // Packed weights hold about half a byte a weight: read as elements of the dtype,
        // the scan would run far past the allocation.
        if y.packed.is_some() {
            return Err(Error::runtime("packed weights are not inspected as values"));
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        self.gpu.bind()?;
        rtc::inspect(&self.rtc, &self.gpu, &mut scratch, y, indices, guard)
    }

    /// Operands may be larger than the problem (the runtime's activation buffers are
    /// sized for its largest batch); the kernels touch only the problem's elements.
    fn check_operands(p: &Problem, x: &DevBuf, w: &DevBuf, y: &DevBuf) -> Result<()> {
        let packed = (!p.wformat.is_dense()).then_some((p.wformat, p.k));
        if w.packed != packed {
            return Err(Error::runtime(format!("operand W holds {:?} packed weights, {p} needs {packed:?}", w.packed)));
        }
        for (name, t, len) in [("X", x, p.x_len()), ("W", w, p.w_len()), ("Y", y, p.y_len())] {
            if t.len < len || t.dtype != p.dtype || (name != "W" && t.packed.is_some()) {
                return Err(Error::runtime(format!(
                    "operand {name} holds {} {} elements, {p} needs at least {len} {}",
                    t.len, t.dtype, p.dtype
                )));
            }
        }
        Ok(())
    }
}

/// The default kernel of quantized problems: dequantize, then cuBLAS's default.
pub const DQ_DEFAULT: &str = "cuda:dq:cublas:default";

/// What the quantized-weight kernels need: 16-bit activations, W stored `[N, K]`, one batch.
fn quant_supported(p: &Problem) -> Result<()> {
    if p.dtype == DType::F32 || p.batch != 1 || p.layout != crate::problem::Layout::TN {
        return Err(Error::input(format!(
            "backend 'cuda' runs {} weights with bf16/f16 activations, layout TN and batch 1 (got {p})",
            p.wformat
        )));
    }
    Ok(())
}

pub(crate) fn quant_source(d: DType) -> String {
    rtc::assemble(crate::backend::kernels::QUANT, &[("DQ_DTYPE", if d == DType::F16 { "1" } else { "0" })])
}

impl CudaBackend {
    /// Candidates for packed weights: dequantize + cuBLAS / every cuBLASLt algorithm of the
    /// dense problem (prefill), and the fused int4 tensor-core kernels (decode).
    fn quant_candidates(&self, p: &Problem) -> Result<Vec<Candidate>> {
        quant_supported(p)?;
        let dense = p.with_weights(WeightFormat::Dense).map_err(Error::runtime)?;
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.gpu.bind()?;
        let mut out = vec![Candidate { id: KernelId::new(DQ_DEFAULT), attrs: "graph=1".into() }];
        let desc = self.desc(&dense, false)?;
        for (algo, ws, _) in lt::enumerate(&self.lt, &desc, &dense, self.lt_budget / 4)? {
            let id = lt::encode_id(self.lt.version, &algo, false);
            out.push(Candidate {
                id: KernelId::new(format!("cuda:dq:{}", id.strip_prefix("cuda:").unwrap_or(&id))),
                attrs: format!("graph=1;workspace={ws}"),
            });
        }
        out.extend(self.own_candidates(p));
        Ok(out)
    }

    /// Our kernels for `p`, compiled now in parallel rather than one by one while
    /// validating.
    fn own_candidates(&self, p: &Problem) -> Vec<Candidate> {
        let own = custom::Custom::candidates(p, self.rtc.arch());
        custom::Custom::prepare(&own, p, &self.rtc, &self.gpu);
        // Rows tuned with chained launches say so: their times hold for PDL chains only.
        let attrs = if self.pdl() { "graph=1;pdl=1" } else { "graph=1" };
        own.iter().map(|c| Candidate { id: KernelId::new(c.id()), attrs: attrs.into() }).collect()
    }
}

impl Drop for CudaBackend {
    fn drop(&mut self) {
        let _ = self.gpu.sync();
        // SAFETY: created in new(), destroyed once.
        unsafe {
            let _ = cudarc::cublas::result::destroy_handle(self.blas.0);
        }
    }
}

impl Backend for CudaBackend {
    type Buffer = DevBuf;
    type Kernel = CudaKernel;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn candidates(&self, p: &Problem) -> Result<Vec<Candidate>> {
        if !p.wformat.is_dense() {
            return self.quant_candidates(p);
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.gpu.bind()?;
        // Every candidate is timed inside a CUDA graph, so a candidate that survives timing
        // is graph-capturable; the attribute records it in the table.
        let mut out = vec![Candidate { id: KernelId::new("cuda:cublas:default"), attrs: "graph=1".into() }];
        let desc = self.desc(p, false)?;
        for (algo, ws, _) in lt::enumerate(&self.lt, &desc, p, self.lt_budget)? {
            out.push(Candidate {
                id: KernelId::new(lt::encode_id(self.lt.version, &algo, false)),
                attrs: format!("graph=1;workspace={ws}"),
            });
        }
        // f32 problems: TF32 tensor-core math too. Its error (~1e-3) exceeds the f32 bound,
        // so validation rejects these unless the user allowed TF32 (`tune --allow-tf32`).
        if p.dtype == DType::F32 {
            out.push(Candidate { id: KernelId::new("cuda:cublas:tf32"), attrs: "graph=1;math=tf32".into() });
            let desc = self.desc(p, true)?;
            for (algo, ws, _) in lt::enumerate(&self.lt, &desc, p, self.lt_budget / 2)? {
                out.push(Candidate {
                    id: KernelId::new(lt::encode_id(self.lt.version, &algo, true)),
                    attrs: format!("graph=1;math=tf32;workspace={ws}"),
                });
            }
        }
        out.extend(self.own_candidates(p));
        Ok(out)
    }

    fn default_kernel(&self, p: &Problem) -> KernelId {
        KernelId::new(if p.wformat.is_dense() { "cuda:cublas:default" } else { DQ_DEFAULT })
    }

    fn fits_other_m(&self, id: &KernelId) -> bool {
        !is_library(id)
    }

    fn precompile(&self, problems: &[Problem], stop: &(dyn Fn() -> bool + Sync)) {
        self.rtc.precompile(&custom::Custom::modules_after_first(problems, self.rtc.arch()), stop);
    }

    fn resolve(&self, p: &Problem, id: &KernelId) -> Result<CudaKernel> {
        let s = id.as_str();
        if let Some(dense_id) = s.strip_prefix("cuda:dq:") {
            quant_supported(p)?;
            let dense = p.with_weights(WeightFormat::Dense).map_err(Error::runtime)?;
            let inner = self.resolve(&dense, &KernelId::new(format!("cuda:{dense_id}")))?;
            let f = format!("dequant_{}", p.wformat);
            let dequant = self.rtc.function(&self.gpu, &format!("quant_{}", p.dtype), || quant_source(p.dtype), &f)?;
            return Ok(CudaKernel::new(Kind::Dequant { inner: Box::new(inner.kind), dense, dequant, scratch: self.dq_scratch(p)? }));
        }
        if !p.wformat.is_dense() && !s.starts_with("cuda:qmma:") {
            return Err(Error::input(format!("{s} runs dense weights; {p} has {} ones (cuda:qmma and cuda:dq kernels run them)", p.wformat)));
        }
        let parts: Vec<&str> = s.split(':').collect();
        // cuBLAS's and cuBLASLt's TF32 forms alike.
        if matches!(parts.as_slice(), ["cuda", "cublas", "tf32"] | ["cuda", "cublaslt-tf32", ..]) && p.dtype != DType::F32 {
            return Err(Error::runtime(format!("{s}: TF32 math is for f32 problems (got {p})")));
        }
        match parts.as_slice() {
            ["cuda", "cublas", "default"] => Ok(CudaKernel::new(Kind::Cublas { tf32: false })),
            ["cuda", "cublas", "tf32"] => Ok(CudaKernel::new(Kind::Cublas { tf32: true })),
            ["cuda", fam @ ("cublaslt" | "cublaslt-tf32"), ..] => {
                let tf32 = *fam == "cublaslt-tf32";
                let algo = lt::decode_id(s, self.lt.version).map_err(Error::runtime)?;
                let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                let desc = self.desc(p, tf32)?;
                desc.check(&self.lt, &algo).map_err(|e| Error::runtime(format!("{s}: not usable for {p}: {e}")))?;
                Ok(CudaKernel::new(Kind::Lt { algo, desc }))
            }
            ["cuda", fam, ..] if custom::is_family(fam) => {
                let c = custom::Custom::parse(s).map_err(Error::input)?;
                if let Some(why) = c.unsupported(p) {
                    return Err(custom::not_usable(s, why));
                }
                let function = c.load(p, &self.rtc, &self.gpu)?;
                Ok(CudaKernel::new(Kind::Custom { custom: c, function }))
            }
            _ => Err(Error::input(format!("'{s}' is not a CUDA kernel id"))),
        }
    }

    fn alloc(&self, dtype: DType, len: usize) -> Result<DevBuf> {
        self.gpu.alloc(dtype, len)
    }

    fn alloc_w(&self, p: &Problem) -> Result<DevBuf> {
        if p.wformat.is_dense() {
            return self.gpu.alloc(p.dtype, p.w_len());
        }
        quant_supported(p)?;
        self.gpu.alloc_packed(p.wformat, p.batch * p.n, p.k, p.dtype)
    }

    fn fill_random(&self, buf: &mut DevBuf, seed: u64) -> Result<()> {
        self.gpu.bind()?;
        if let Some((f, k)) = buf.packed {
            // quant.rs's counter-based packed weights, made on the host (the reference
            // recomputes them there) and uploaded in the device layout.
            let mut t = crate::quant::QuantTensor::zeros(f, buf.len / k, k);
            t.fill_random(seed);
            self.gpu.write_packed(buf, &t)?;
        } else {
            rtc::fill_random(&self.rtc, &self.gpu, buf, seed)?;
        }
        // Done before the next launch starts: a chained GEMM requests W before waiting for
        // the kernel before it (PDL_ENTRY, kernels/common.cuh).
        self.gpu.stream.synchronize().map_err(device::drv)
    }

    fn fill_nan(&self, buf: &mut DevBuf) -> Result<()> {
        self.gpu.bind()?;
        self.gpu.memset_with_guard(buf, 0xff) // all-ones is NaN in f32, f16 and bf16
    }

    fn download(&self, buf: &DevBuf) -> Result<Vec<f32>> {
        if buf.packed.is_some() {
            return Err(Error::runtime("packed weights are not downloaded as values"));
        }
        Ok(match buf.dtype {
            DType::F32 => self.gpu.download_raw::<f32>(buf, buf.len)?,
            DType::F16 => self.gpu.download_raw::<u16>(buf, buf.len)?.into_iter().map(|b| f16::from_bits(b).to_f32()).collect(),
            DType::BF16 => self.gpu.download_raw::<u16>(buf, buf.len)?.into_iter().map(|b| bf16::from_bits(b).to_f32()).collect(),
        })
    }

    fn guard_intact(&self, buf: &DevBuf) -> Result<bool> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.gpu.guard_intact(buf)
    }

    fn inspect(&self, y: &DevBuf, indices: &[usize]) -> Result<Inspection> {
        self.inspect_with(y, indices, false).map(|(seen, _)| seen)
    }

    fn inspect_guarded(&self, y: &DevBuf, indices: &[usize]) -> Result<(Inspection, bool)> {
        self.inspect_with(y, indices, true)
    }

    fn run(&self, k: &CudaKernel, p: &Problem, x: &DevBuf, w: &DevBuf, y: &mut DevBuf) -> Result<()> {
        CudaBackend::check_operands(p, x, w, y)?;
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.gpu.bind()?;
        self.launch(k, p, x, w, y)
    }

    fn time(&self, k: &CudaKernel, p: &Problem, sets: &mut [Operands<DevBuf>], calls: usize) -> Result<f64> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let n = crate::backend::kernels::rotating_count(sets)?;
        let key = (k.uid, sets_key(sets), calls, self.pdl());
        let mut graphs = self.graphs.lock().unwrap_or_else(|e| e.into_inner());
        if !graphs.0.contains_key(&key) {
            if graphs.0.len() >= 1024 {
                graphs.0.clear();
            }
            let g = self.gpu.capture(|| {
                for i in 0..calls {
                    { let s = &sets[i % n]; self.launch(k, p, &s.x, &s.w, &s.y)?; }
                }
                Ok(())
            })?;
            g.launch().map_err(device::drv)?; // warm replay
            graphs.0.insert(key, g);
        }
        let ms = self.gpu.time_replay(&graphs.0[&key])?;
        Ok(ms * 1e-3 / calls.max(1) as f64)
    }

    fn time_eager(&self, k: &CudaKernel, p: &Problem, sets: &mut [Operands<DevBuf>], calls: usize) -> Result<f64> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let n = crate::backend::kernels::rotating_count(sets)?;
        let ms = self.gpu.time_eager(|| {
            for i in 0..calls {
                { let s = &sets[i % n]; self.launch(k, p, &s.x, &s.w, &s.y)?; }
            }
            Ok(())
        })?;
        Ok(ms * 1e-3 / calls.max(1) as f64)
    }

    fn cache_bytes(&self) -> usize {
        self.gpu.l2_bytes
    }

    fn measure_bandwidth(&self) -> Result<f64> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.gpu.copy_bandwidth()
    }

    fn peak_problem(&self) -> Problem {
        Problem::linear(DType::BF16, 8192, 8192, 8192).expect("valid problem")
    }

    fn clock_settling(&self) -> crate::backend::ClockSettling {
        crate::backend::ClockSettling::GPU
    }

    /// One: validation has just run every candidate (module load, first launch, cuBLASLt's
    /// workspace), so the warm-up's first call paid nothing more; on large GEMMs it cost a
    /// call of each of ~135 candidates (13 ms each on the H200's lm_head at M = 8192).
    fn warm_up_calls(&self) -> usize {
        1
    }

    fn min_sample(&self) -> Duration {
        Duration::from_micros(300)
    }

    fn set_chained_launches(&self, on: bool) -> bool {
        let on = on && self.gpu.cc.0 >= 9;
        self.set_pdl(on);
        on
    }
}

#[cfg(test)]
mod tests {
    use super::{is_library, KernelId};

    #[test]
    fn library_configurations_are_told_from_our_kernels() {
        for id in ["cuda:cublas:default", "cuda:cublas:tf32", "cuda:cublaslt:130100:a66-t20:00ff", "cuda:cublaslt-tf32:130100:x:00", "cuda:dq:cublas:default", "cuda:dq:cublaslt:130100:a66-t20:00ff"] {
            assert!(is_library(&KernelId::new(id)), "{id}");
        }
        for id in ["cuda:gemv:r2:t256:u1:m1", "cuda:wgt:n32:g1:t1:s16:k1", "cuda:mmal:mt2:w8:v2:n1:k2", "cuda:qmma:x"] {
            assert!(!is_library(&KernelId::new(id)), "{id}");
        }
    }
}
