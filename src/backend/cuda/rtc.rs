//! Kernels of our own, compiled at run time by NVRTC for the device's architecture and
//! cached per process: the operand fill / output inspection helpers and the decode GEMV
//! candidates (kernels/*.cu).

use super::device::{drv, DevBuf, Gpu};
use crate::error::{Error, Result};
use crate::problem::DType;
use cudarc::driver::{CudaFunction, CudaModule, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use std::ffi::CString;
use std::path::PathBuf;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const COMMON: &str = include_str!("../../../kernels/common.cuh");
pub const UTIL: &str = include_str!("../../../kernels/util.cu");
pub const GEMV: &str = include_str!("../../../kernels/gemv.cu");
pub const MMA: &str = include_str!("../../../kernels/mma.cu");
pub const LLAMA: &str = include_str!("../../../kernels/llama.cu");

/// Splices the shared header into a kernel source (NVRTC gets no include path).
pub fn assemble(source: &str, defines: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in defines {
        s.push_str(&format!("#define {k} {v}\n"));
    }
    s.push_str(COMMON);
    s.push('\n');
    s.push_str(&source.replace("// #include \"common.cuh\" is spliced in by the host before compilation.", ""));
    s
}

/// The `--gpu-architecture` value for a compute capability.
pub fn arch_name(cc: (i32, i32)) -> Option<&'static str> {
    Some(match cc {
        (7, 0) => "sm_70",
        (7, 5) => "sm_75",
        (8, 0) => "sm_80",
        (8, 6) => "sm_86",
        (8, 9) => "sm_89",
        (9, 0) => "sm_90",
        (10, 0) => "sm_100",
        (12, 0) => "sm_120",
        _ => return None,
    })
}

/// Compiled modules, keyed by name; CUBINs also cached on disk by content hash.
pub struct Rtc {
    arch: &'static str,
    modules: Mutex<HashMap<String, Arc<CudaModule>>>,
    /// Modules that failed to compile or load, with the reason (so one bad variant only
    /// rejects itself).
    failed: Mutex<HashMap<String, String>>,
    cache_dir: Option<PathBuf>,
}

/// 64-bit FNV-1a: a stable content hash for the disk cache (std's hasher is not
/// guaranteed stable across Rust releases).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Compiles `src` for `arch` straight to a CUBIN (no driver JIT at load time).
fn compile_cubin(src: &str, name: &str, arch: &str) -> Result<Vec<u8>> {
    use cudarc::nvrtc::{result as nr, sys as ns};
    let csrc = CString::new(src).map_err(|_| Error::runtime("kernel source holds a NUL byte"))?;
    let cname = CString::new(name).expect("no NUL in names");
    let prog = nr::create_program(&csrc, Some(&cname)).map_err(|e| Error::runtime(format!("NVRTC: {e:?}")))?;
    let opts = [format!("--gpu-architecture={arch}"), "--std=c++17".to_string()];
    // SAFETY: prog is valid until destroyed below; buffers sized by the size queries.
    unsafe {
        let compiled = nr::compile_program(prog, &opts);
        let result = match compiled {
            Ok(()) => {
                let mut size = 0usize;
                ns::nvrtcGetCUBINSize(prog, &mut size).result().map_err(|e| Error::runtime(format!("NVRTC: {e:?}")))?;
                let mut bin = vec![0u8; size];
                ns::nvrtcGetCUBIN(prog, bin.as_mut_ptr() as *mut std::ffi::c_char)
                    .result()
                    .map_err(|e| Error::runtime(format!("NVRTC: {e:?}")))?;
                Ok(bin)
            }
            Err(e) => {
                let log = nr::get_program_log(prog).unwrap_or_default();
                let log: String = log.iter().map(|&c| c as u8 as char).collect();
                Err(Error::runtime(format!("NVRTC could not compile {name}: {e:?}\n{log}")))
            }
        };
        let _ = nr::destroy_program(prog);
        result
    }
}

impl Rtc {
    pub fn new(gpu: &Gpu) -> Result<Rtc> {
        let arch = arch_name(gpu.cc).ok_or_else(|| {
            Error::runtime(format!("no NVRTC target known for compute capability {}.{}", gpu.cc.0, gpu.cc.1))
        })?;
        let cache_dir = std::env::var_os("GEMMTUNE_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("gemmtune")))
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/gemmtune")))
            .map(|d| d.join("nvrtc"));
        Ok(Rtc { arch, modules: Mutex::new(HashMap::new()), failed: Mutex::new(HashMap::new()), cache_dir })
    }

    pub fn arch(&self) -> &'static str {
        self.arch
    }

    fn cubin(&self, name: &str, src: &str) -> Result<Vec<u8>> {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: writes two ints.
        unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        let key = fnv1a(&[src.as_bytes(), self.arch.as_bytes(), &major.to_le_bytes(), &minor.to_le_bytes()]);
        let path = self.cache_dir.as_ref().map(|d| d.join(format!("{name}-{key:016x}.cubin")));
        if let Some(bin) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
            return Ok(bin);
        }
        let bin = compile_cubin(src, name, self.arch)?;
        if let Some(p) = path {
            // Best effort: a cache that cannot be written only costs a recompile.
            let _ = crate::atomic::write_atomic(&p, |w| w.write_all(&bin));
        }
        Ok(bin)
    }

    /// Compiles (in parallel, on all cores) and loads every module not loaded yet. A module
    /// that fails is remembered with its reason and reported when it is asked for.
    pub fn prepare(&self, gpu: &Gpu, jobs: Vec<(String, String)>) {
        use rayon::prelude::*;
        let todo: Vec<(String, String)> = {
            let mods = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            jobs.into_iter().filter(|(name, _)| !mods.contains_key(name) && !failed.contains_key(name)).collect()
        };
        let bins: Vec<(String, Result<Vec<u8>>)> =
            todo.par_iter().map(|(name, src)| (name.clone(), self.cubin(name, src))).collect();
        let mut mods = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        for (name, bin) in bins {
            match bin.and_then(|b| gpu.ctx.load_module(Ptx::from_binary(b)).map_err(drv)) {
                Ok(m) => {
                    mods.insert(name, m);
                }
                Err(e) => {
                    failed.insert(name, e.to_string());
                }
            }
        }
    }

    /// `function` from module `name` (compiled from `source` if needed).
    pub fn function(&self, gpu: &Gpu, name: &str, source: impl FnOnce() -> String, function: &str) -> Result<CudaFunction> {
        let loaded = self.modules.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned();
        let module = match loaded {
            Some(m) => m,
            None => {
                self.prepare(gpu, vec![(name.to_string(), source())]);
                let loaded = self.modules.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned();
                match loaded {
                    Some(m) => m,
                    None => {
                        let why = self.failed.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned();
                        return Err(Error::runtime(why.unwrap_or_else(|| format!("module {name} did not load"))));
                    }
                }
            }
        };
        module.load_function(function).map_err(drv)
    }
}

pub(crate) fn suffix(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
    }
}

fn grid_for(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 132 * 16) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

fn util(rtc: &Rtc, gpu: &Gpu, f: &str) -> Result<CudaFunction> {
    rtc.function(gpu, "util", || assemble(UTIL, &[]), f)
}

/// Fills `buf` with `random::element(dtype, seed, i)`, bit for bit, on the device.
pub fn fill_random(rtc: &Rtc, gpu: &Gpu, buf: &DevBuf, seed: u64) -> Result<()> {
    let f = util(rtc, gpu, &format!("fill_random_{}", suffix(buf.dtype)))?;
    let n = buf.len as u64;
    // SAFETY: the kernel writes exactly `n` elements of the buffer's type.
    unsafe {
        gpu.stream.launch_builder(&f).arg(&buf.ptr).arg(&n).arg(&seed).launch(grid_for(buf.len)).map_err(drv)?;
    }
    Ok(())
}

/// Device buffers `inspect` reuses (allocation and free synchronize the device).
pub struct Scratch {
    counter: DevBuf,
    idx: DevBuf,
    out: DevBuf,
    cap: usize,
}

impl Scratch {
    fn ensure(slot: &mut Option<Scratch>, gpu: &Gpu, n: usize) -> Result<()> {
        if slot.as_ref().is_none_or(|s| s.cap < n) {
            let cap = n.max(1 << 16);
            *slot = Some(Scratch {
                counter: gpu.alloc_bytes(16)?,
                idx: gpu.alloc_bytes(8 * cap)?,
                out: gpu.alloc(DType::F32, cap)?,
                cap,
            });
        }
        Ok(())
    }
}

/// Non-finite count, first non-finite index and the values at `indices`, computed on the
/// device so a multi-gigabyte Y never crosses PCIe.
pub fn inspect(
    rtc: &Rtc,
    gpu: &Gpu,
    slot: &mut Option<Scratch>,
    y: &DevBuf,
    indices: &[usize],
) -> Result<crate::backend::Inspection> {
    Scratch::ensure(slot, gpu, indices.len())?;
    let sc = slot.as_ref().expect("ensured");
    let counter = &sc.counter;
    gpu.upload(counter, &[0u64, u64::MAX])?;
    let f = util(rtc, gpu, &format!("nonfinite_{}", suffix(y.dtype)))?;
    let n = y.len as u64;
    // SAFETY: reads `n` elements of y, writes two u64 counters.
    unsafe {
        gpu.stream.launch_builder(&f).arg(&y.ptr).arg(&n).arg(&counter.ptr).launch(grid_for(y.len)).map_err(drv)?;
    }
    let c: Vec<u64> = gpu.download_raw(counter, 2)?;
    let mut values = Vec::new();
    if !indices.is_empty() {
        let idx: Vec<u64> = indices.iter().map(|&i| i as u64).collect();
        let (d_idx, d_out) = (&sc.idx, &sc.out);
        gpu.upload(d_idx, &idx)?;
        let g = util(rtc, gpu, &format!("gather_{}", suffix(y.dtype)))?;
        let m = idx.len() as u64;
        // SAFETY: every index is < y.len (Sample indices of this problem).
        unsafe {
            gpu.stream
                .launch_builder(&g)
                .arg(&y.ptr)
                .arg(&d_idx.ptr)
                .arg(&d_out.ptr)
                .arg(&m)
                .launch(grid_for(idx.len()))
                .map_err(drv)?;
        }
        values = gpu.download_raw(d_out, idx.len())?;
    }
    Ok(crate::backend::Inspection {
        nonfinite: c[0] as usize,
        first_nonfinite: (c[0] > 0).then_some(c[1] as usize),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_assemble_without_includes() {
        let s = assemble(GEMV, &[("GEMV_DTYPE", "0")]);
        assert!(s.starts_with("#define GEMV_DTYPE 0\n"));
        assert!(!s.contains("#include"), "NVRTC has no include path");
        assert!(s.contains("f32_to_bf16") && s.contains("gemv_kernel"));
        assert!(assemble(MMA, &[]).contains("mma.sync.aligned.m16n8k16"));
        let l = assemble(LLAMA, &[("LL_DTYPE", "0")]);
        for f in ["embed_rows", "rmsnorm_rows", "rope_store", "attention", "silu_mul", "add_residual", "fill_scaled"] {
            assert!(l.contains(&format!("__global__ void {f}(")), "{f}");
        }
        assert!(!l.contains("#include"));
        let u = assemble(UTIL, &[]);
        for f in ["fill_random_bf16", "nonfinite_f16", "gather_f32"] {
            assert!(u.contains(f), "{f}");
        }
        assert_eq!(arch_name((9, 0)), Some("sm_90"));
        assert_ne!(fnv1a(&[b"a", b"bc"]), fnv1a(&[b"ab", b"c"]));
    }
}
