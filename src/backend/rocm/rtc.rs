//! hipRTC: our kernels compiled at run time for the device's target id, code objects
//! cached on disk by content hash, modules cached per process (backend/kernels.rs), and
//! the operand fill / output inspection helpers of kernels/util.cu.

use super::hip::{Args, DevBuf, Function, Gpu, Module};
use super::sys::{self, Libs};
use crate::backend::kernels::{assemble, suffix, DiskCache, Modules, UTIL};
use crate::error::{Error, Result};
use crate::problem::DType;
use std::ffi::{c_char, CStr, CString};
use std::sync::Arc;

fn rtc_check(l: &Libs, r: sys::hiprtcResult, what: &str) -> Result<()> {
    if r == sys::HIPRTC_SUCCESS {
        return Ok(());
    }
    // SAFETY: returns a static string.
    let name = unsafe { (l.rtc.hiprtcGetErrorString)(r) };
    let name = if name.is_null() { format!("hiprtcResult {r}") } else { unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned() };
    Err(Error::runtime(format!("{what}: {name} ({r})")))
}

/// The defines every source gets on ROCm: the HIP branch of kernels/common.cuh and the
/// device's wavefront width.
pub fn hip_defines(warp: i32) -> [(&'static str, String); 2] {
    [("GEMMTUNE_HIP", "1".into()), ("WARP_SIZE", warp.to_string())]
}

/// Compiles `src` for `arch` into a code object `hipModuleLoadData` accepts.
fn compile(l: &Libs, src: &str, name: &str, arch: &str) -> Result<Vec<u8>> {
    let csrc = CString::new(src).map_err(|_| Error::runtime("kernel source holds a NUL byte"))?;
    let cname = CString::new(name).expect("no NUL in names");
    let opts: Vec<CString> = [format!("--gpu-architecture={arch}"), "-O3".into(), "-std=c++17".into()]
        .into_iter()
        .map(|o| CString::new(o).expect("no NUL in options"))
        .collect();
    let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    let r = &l.rtc;
    let mut prog: sys::hiprtcProgram = std::ptr::null_mut();
    // SAFETY: the program is destroyed below; buffers are sized by the size queries.
    unsafe {
        rtc_check(l, (r.hiprtcCreateProgram)(&mut prog, csrc.as_ptr(), cname.as_ptr(), 0, std::ptr::null(), std::ptr::null()), "hiprtcCreateProgram")?;
        let compiled = (r.hiprtcCompileProgram)(prog, opt_ptrs.len() as i32, opt_ptrs.as_ptr());
        let result = if compiled == sys::HIPRTC_SUCCESS {
            let mut size = 0usize;
            rtc_check(l, (r.hiprtcGetCodeSize)(prog, &mut size), "hiprtcGetCodeSize").and_then(|()| {
                let mut code = vec![0u8; size];
                rtc_check(l, (r.hiprtcGetCode)(prog, code.as_mut_ptr() as *mut c_char), "hiprtcGetCode").map(|()| code)
            })
        } else {
            let mut size = 0usize;
            let mut log = String::new();
            if (r.hiprtcGetProgramLogSize)(prog, &mut size) == sys::HIPRTC_SUCCESS && size > 1 {
                let mut buf = vec![0 as c_char; size];
                if (r.hiprtcGetProgramLog)(prog, buf.as_mut_ptr()) == sys::HIPRTC_SUCCESS {
                    log = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
                }
            }
            rtc_check(l, compiled, &format!("hipRTC could not compile {name}")).map(|()| Vec::new()).map_err(|e| Error::runtime(format!("{e}\n{log}")))
        };
        let _ = (r.hiprtcDestroyProgram)(&mut prog);
        result
    }
}

/// Compiled modules for one device target.
pub struct Rtc {
    l: &'static Libs,
    arch: String,
    warp: i32,
    version: (i32, i32),
    /// The full HIP version (hiprtcVersion gives major.minor only): a patch release's
    /// compiler must not reuse the last one's code objects.
    runtime: i32,
    modules: Modules<Arc<Module>>,
    disk: DiskCache,
}

impl Rtc {
    pub fn new(gpu: &Gpu) -> Result<Rtc> {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: writes two ints.
        rtc_check(gpu.l, unsafe { (gpu.l.rtc.hiprtcVersion)(&mut major, &mut minor) }, "hiprtcVersion")?;
        Ok(Rtc {
            l: gpu.l,
            arch: gpu.info.arch.clone(),
            warp: gpu.info.warp,
            version: (major, minor),
            modules: Modules::default(),
            runtime: gpu.runtime_version,
            disk: DiskCache::new("hiprtc", "hsaco"),
        })
    }

    pub fn version(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }

    pub fn warp(&self) -> i32 {
        self.warp
    }

    fn code_object(&self, name: &str, src: &str) -> Result<Vec<u8>> {
        let key: [&[u8]; 5] =
            [src.as_bytes(), self.arch.as_bytes(), &self.version.0.to_le_bytes(), &self.version.1.to_le_bytes(), &self.runtime.to_le_bytes()];
        self.disk.get_or(name, &key, || compile(self.l, src, name, &self.arch))
    }

    /// Compiles (in parallel) and loads every module not loaded yet; failures are
    /// remembered and reported when the module is asked for.
    pub fn prepare(&self, gpu: &Gpu, jobs: Vec<(String, String)>) {
        self.modules.prepare(jobs, |n, s| self.code_object(n, s), |b| gpu.load_module(&b))
    }

    /// Compiles `jobs` into the on-disk cache ahead of use (`Modules::precompile`, as the
    /// CUDA backend does); nothing without a cache directory.
    pub fn precompile(&self, jobs: &[(String, String)], stop: &(dyn Fn() -> bool + Sync)) {
        if self.disk.enabled() {
            self.modules.precompile(jobs, |n, s| self.code_object(n, s), stop);
        }
    }

    /// `function` from module `name` (compiled from `source` if needed).
    pub fn function(&self, gpu: &Gpu, name: &str, source: impl FnOnce() -> String, function: &str) -> Result<Function> {
        self.modules.get(name, source, |n, s| self.code_object(n, s), |b| gpu.load_module(&b))?.function(function)
    }
}

fn util(rtc: &Rtc, gpu: &Gpu, f: &str) -> Result<Function> {
    let defines = hip_defines(rtc.warp);
    let d: Vec<(&str, &str)> = defines.iter().map(|(k, v)| (*k, v.as_str())).collect();
    rtc.function(gpu, "util", || assemble(UTIL, &d), f)
}

/// Grid of a grid-stride helper kernel over `n` elements (256 threads per block).
fn blocks_for(gpu: &Gpu, n: usize) -> (u32, u32, u32) {
    let cap = (gpu.info.cus.max(1) as usize) * 16;
    (n.div_ceil(256).clamp(1, cap) as u32, 1, 1)
}

/// Fills `buf` with `random::element(dtype, seed, i)`, bit for bit, on the device.
pub fn fill_random(rtc: &Rtc, gpu: &Gpu, buf: &DevBuf, seed: u64) -> Result<()> {
    let f = util(rtc, gpu, &format!("fill_random_{}", suffix(buf.dtype)))?;
    let args = Args::default().u64(buf.ptr).u64(buf.len as u64).u64(seed).build();
    gpu.launch(&f, blocks_for(gpu, buf.len), 256, &args)
}

/// Device buffers `inspect` reuses (allocations synchronize the device).
pub struct Scratch {
    counter: DevBuf,
    idx: DevBuf,
    out: DevBuf,
    cap: usize,
}

/// Non-finite count, first non-finite index and the values at `indices`, computed on the
/// device so a multi-gigabyte Y never crosses PCIe.
pub fn inspect(rtc: &Rtc, gpu: &Gpu, slot: &mut Option<Scratch>, y: &DevBuf, indices: &[usize]) -> Result<crate::backend::Inspection> {
    if slot.as_ref().is_none_or(|s| s.cap < indices.len()) {
        let cap = indices.len().max(1 << 16);
        *slot = Some(Scratch { counter: gpu.alloc_bytes(16)?, idx: gpu.alloc_bytes(8 * cap)?, out: gpu.alloc(DType::F32, cap)?, cap });
    }
    let sc = slot.as_ref().expect("allocated above");
    gpu.upload(&sc.counter, &[0u64, u64::MAX])?;
    let f = util(rtc, gpu, &format!("nonfinite_{}", suffix(y.dtype)))?;
    gpu.launch(&f, blocks_for(gpu, y.len), 256, &Args::default().u64(y.ptr).u64(y.len as u64).u64(sc.counter.ptr).build())?;
    let c: Vec<u64> = gpu.download_raw(&sc.counter, 2)?;
    let mut values = Vec::new();
    if !indices.is_empty() {
        let idx: Vec<u64> = indices.iter().map(|&i| i as u64).collect();
        gpu.upload(&sc.idx, &idx)?;
        let g = util(rtc, gpu, &format!("gather_{}", suffix(y.dtype)))?;
        let args = Args::default().u64(y.ptr).u64(sc.idx.ptr).u64(sc.out.ptr).u64(idx.len() as u64).build();
        gpu.launch(&g, blocks_for(gpu, idx.len()), 256, &args)?;
        values = gpu.download_raw(&sc.out, idx.len())?;
    }
    Ok(crate::backend::Inspection { nonfinite: c[0] as usize, first_nonfinite: (c[0] > 0).then_some(c[1] as usize), values })
}
