//! Kernels of our own, compiled at run time by NVRTC for the device's architecture and
//! cached per process: the operand fill / output inspection helpers and the decode GEMV
//! candidates (kernels/*.cu).

use super::device::{drv, DevBuf, Gpu};
use crate::backend::kernels::{suffix, DiskCache, Modules, UTIL};
use crate::error::{Error, Result};
use cudarc::driver::{CudaFunction, CudaModule, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use std::ffi::CString;
use std::sync::Arc;

/// The model runtime's kernels (CUDA only); `assemble` is shared with ROCm.
pub use crate::backend::kernels::assemble;
pub const LLAMA: &str = include_str!("../../../kernels/llama.cu");

/// The `--gpu-architecture` value for a compute capability: the newest listed target of
/// the same major version at or below it (a CUBIN runs on later minor versions of its
/// major: 8.7 takes sm_86, 10.3 sm_100, 12.1 sm_120). None below 8.0: the utility kernels
/// (random fills, output checks) convert to bf16 with `cvt.rn.bf16.f32`, an sm_80
/// instruction, and NVRTC 13 no longer targets sm_70.
pub fn arch_name(cc: (i32, i32)) -> Option<&'static str> {
    const TARGETS: [((i32, i32), &str); 6] =
        [((8, 0), "sm_80"), ((8, 6), "sm_86"), ((8, 9), "sm_89"), ((9, 0), "sm_90"), ((10, 0), "sm_100"), ((12, 0), "sm_120")];
    TARGETS.iter().rev().find(|(t, _)| t.0 == cc.0 && t.1 <= cc.1).map(|&(_, name)| name)
}

/// The NVRTC target of module `name` on a GPU of target `arch`: the wgmma kernel
/// (modules `wg_*` and `wgt_*`) uses instructions of the architecture-specific `sm_90a`.
pub fn module_target(arch: &str, name: &str) -> String {
    if name.starts_with("wg_") || name.starts_with("wgt_") {
        format!("{arch}a")
    } else {
        arch.to_string()
    }
}

/// Compiled modules, keyed by name; CUBINs also cached on disk by content hash.
pub struct Rtc {
    arch: &'static str,
    modules: Modules<Arc<CudaModule>>,
    disk: DiskCache,
}

/// Compiles `src` for `arch` straight to a CUBIN (no driver JIT at load time).
fn compile_cubin(src: &str, name: &str, arch: &str) -> Result<Vec<u8>> {
    compile_cubin_with(src, name, arch, &[]).map(|(bin, _)| bin)
}

/// `compile_cubin` with extra NVRTC options; also returns the compiler's log (with
/// `--ptxas-options=-v`, each kernel's registers, spills and shared memory).
fn compile_cubin_with(src: &str, name: &str, arch: &str, extra: &[&str]) -> Result<(Vec<u8>, String)> {
    use cudarc::nvrtc::{result as nr, sys as ns};
    let csrc = CString::new(src).map_err(|_| Error::runtime("kernel source holds a NUL byte"))?;
    let cname = CString::new(name).expect("no NUL in names");
    let prog = nr::create_program(&csrc, Some(&cname)).map_err(|e| Error::runtime(format!("NVRTC: {e:?}")))?;
    let mut opts = vec![format!("--gpu-architecture={arch}"), "--std=c++17".to_string()];
    opts.extend(extra.iter().map(|o| o.to_string()));
    // SAFETY: prog is valid until destroyed below; buffers sized by the size queries.
    unsafe {
        let compiled = nr::compile_program(prog, &opts);
        let log = nr::get_program_log(prog).unwrap_or_default();
        let log: String = log.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect();
        let result = match compiled {
            Ok(()) => {
                let mut size = 0usize;
                ns::nvrtcGetCUBINSize(prog, &mut size).result().map_err(|e| Error::runtime(format!("NVRTC: {e:?}")))?;
                let mut bin = vec![0u8; size];
                ns::nvrtcGetCUBIN(prog, bin.as_mut_ptr() as *mut std::ffi::c_char)
                    .result()
                    .map_err(|e| Error::runtime(format!("NVRTC: {e:?}")))?;
                Ok((bin, log))
            }
            Err(e) => Err(Error::runtime(format!("NVRTC could not compile {name}: {e:?}\n{log}"))),
        };
        let _ = nr::destroy_program(prog);
        result
    }
}

impl Rtc {
    pub fn new(gpu: &Gpu) -> Result<Rtc> {
        let arch = arch_name(gpu.cc).ok_or_else(|| {
            Error::runtime(format!(
                "compute capability {}.{} is not supported: gemmtune's device kernels need 8.0 or newer, of a major version NVRTC targets here (8, 9, 10, 12)",
                gpu.cc.0, gpu.cc.1
            ))
        })?;
        Ok(Rtc { arch, modules: Modules::default(), disk: DiskCache::new("nvrtc", "cubin") })
    }

    pub fn arch(&self) -> &'static str {
        self.arch
    }

    fn cubin(&self, name: &str, src: &str) -> Result<Vec<u8>> {
        let (major, minor) = nvrtc_version()?;
        let target = module_target(self.arch, name);
        let key: [&[u8]; 4] = [src.as_bytes(), target.as_bytes(), &major.to_le_bytes(), &minor.to_le_bytes()];
        self.disk.get_or(name, &key, || compile_cubin(src, name, &target))
    }

    /// Compiles (in parallel, on all cores) and loads every module not loaded yet. A module
    /// that fails is remembered with its reason and reported when it is asked for.
    pub fn prepare(&self, gpu: &Gpu, jobs: Vec<(String, String)>) {
        self.modules.prepare(jobs, |n, s| self.cubin(n, s), |b| gpu.ctx.load_module(Ptx::from_binary(b)).map_err(drv))
    }

    /// Compiles `jobs` into the on-disk cache ahead of use (`Modules::precompile`); nothing
    /// without a cache directory. `tune` runs it on a thread of its own for the shapes
    /// after the first, so that their compilation overlaps the timing of the first ones (on
    /// a fresh H200 node the compilation took 9 s of a 63 s tune of the 63 Llama shapes, in
    /// four batches).
    pub fn precompile(&self, jobs: &[(String, String)], stop: &(dyn Fn() -> bool + Sync)) {
        if self.disk.enabled() {
            self.modules.precompile(jobs, |n, s| self.cubin(n, s), stop);
        }
    }

    /// `function` from module `name` (compiled from `source` if needed).
    pub fn function(&self, gpu: &Gpu, name: &str, source: impl FnOnce() -> String, function: &str) -> Result<CudaFunction> {
        let module =
            self.modules.get(name, source, |n, s| self.cubin(n, s), |b| gpu.ctx.load_module(Ptx::from_binary(b)).map_err(drv))?;
        module.load_function(function).map_err(drv)
    }
}

/// A grid-stride launch over `n` elements: 256 threads per block, at most 16 blocks per
/// SM of an H100-sized GPU (the kernels loop over the rest).
pub(crate) fn grid_for(n: usize) -> LaunchConfig {
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

/// NVRTC's (major, minor) version: part of the disk cache's key and of the validators.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: writes two ints.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| Error::runtime(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// Device buffers `inspect` reuses (allocation and free synchronize the device): the
/// report it reads back, the sampled indices and which indices those are.
pub struct Scratch {
    report: DevBuf,
    idx: DevBuf,
    indices: Vec<usize>,
    cap: usize,
}

/// The report's header: the non-finite count, the first non-finite index (u64::MAX when
/// none) and the count of guard bytes changed, then the sampled values as f32.
const HEADER: usize = 24;

impl Scratch {
    fn ensure(slot: &mut Option<Scratch>, gpu: &Gpu, n: usize) -> Result<()> {
        if slot.as_ref().is_none_or(|s| s.cap < n) {
            let cap = n.max(1 << 16);
            *slot = Some(Scratch { report: gpu.alloc_bytes(HEADER + 4 * cap)?, idx: gpu.alloc_bytes(8 * cap)?, indices: Vec::new(), cap });
        }
        Ok(())
    }
}

/// Non-finite count, first non-finite index, the values at `indices` and, with `guard`,
/// whether the guard region behind Y is untouched (see `Gpu::guard_intact`), computed on
/// the device so a multi-gigabyte Y never crosses PCIe, and read back in one copy: the
/// tuner validates every candidate so, and each wait on the GPU cost it ~0.05 ms (4 of the
/// 5 it made per candidate are gone: 15,000 candidates for the 63 Llama shapes). Without
/// `guard` the guard is reported intact.
pub fn inspect(
    rtc: &Rtc,
    gpu: &Gpu,
    slot: &mut Option<Scratch>,
    y: &DevBuf,
    indices: &[usize],
    guard: bool,
) -> Result<(crate::backend::Inspection, bool)> {
    Scratch::ensure(slot, gpu, indices.len())?;
    let sc = slot.as_mut().expect("ensured");
    let report = sc.report.ptr;
    // The header's counts to zero, the first non-finite index to u64::MAX.
    gpu.memset_range(&sc.report, 0, 0, HEADER)?;
    gpu.memset_range(&sc.report, 8, 0xff, 8)?;
    let f = util(rtc, gpu, &format!("nonfinite_{}", suffix(y.dtype)))?;
    let n = y.len as u64;
    // SAFETY: reads `n` elements of y, writes the header's first two u64.
    unsafe {
        gpu.stream.launch_builder(&f).arg(&y.ptr).arg(&n).arg(&report).launch(grid_for(y.len)).map_err(drv)?;
    }
    if guard {
        let g = util(rtc, gpu, "guard_changed")?;
        let (at, bytes, out) = (y.ptr + y.bytes as u64, super::device::GUARD_BYTES as u64, report + 16);
        // SAFETY: the guard lies within y's allocation (Gpu::alloc adds it); writes one u64.
        unsafe {
            gpu.stream.launch_builder(&g).arg(&at).arg(&bytes).arg(&out).launch(grid_for(bytes as usize)).map_err(drv)?;
        }
    }
    if !indices.is_empty() {
        // The same indices for every candidate of a draw: uploaded (a synchronized copy)
        // only when they change.
        if sc.indices != indices {
            let idx: Vec<u64> = indices.iter().map(|&i| i as u64).collect();
            gpu.upload(&sc.idx, &idx)?;
            sc.indices = indices.to_vec();
        }
        let g = util(rtc, gpu, &format!("gather_{}", suffix(y.dtype)))?;
        let (m, out) = (indices.len() as u64, report + HEADER as u64);
        // SAFETY: every index is < y.len (Sample indices of this problem); writes m f32.
        unsafe {
            gpu.stream.launch_builder(&g).arg(&y.ptr).arg(&sc.idx.ptr).arg(&out).arg(&m).launch(grid_for(indices.len())).map_err(drv)?;
        }
    }
    let bytes: Vec<u8> = gpu.download_raw(&sc.report, HEADER + 4 * indices.len())?;
    let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let values = bytes[HEADER..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
    let nonfinite = word(0);
    let seen = crate::backend::Inspection { nonfinite: nonfinite as usize, first_nonfinite: (nonfinite > 0).then_some(word(1) as usize), values };
    Ok((seen, word(2) == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn util_and_llama_kernels_and_arch_names() {
        let l = assemble(LLAMA, &[("LL_DTYPE", "0")]);
        for f in ["embed_rows", "rmsnorm_rows", "rope_store", "attention", "silu_mul", "add_residual", "fill_scaled"] {
            assert!(l.contains(&format!("__global__ void {f}(")), "{f}");
        }
        // A directive, not the comment that says common.cuh is spliced in.
        assert!(!l.lines().any(|x| x.trim_start().starts_with("#include")));
        let u = assemble(UTIL, &[]);
        for f in ["fill_random_bf16", "nonfinite_f16", "gather_f32", "guard_changed"] {
            assert!(u.contains(f), "{f}");
        }
        assert_eq!(arch_name((9, 0)), Some("sm_90"));
        assert_eq!([(8, 7), (10, 3), (12, 1), (8, 9)].map(arch_name), [Some("sm_86"), Some("sm_100"), Some("sm_120"), Some("sm_89")]);
        assert_eq!([(7, 5), (7, 0), (11, 0)].map(arch_name), [None, None, None]);
        assert_eq!(module_target("sm_90", "wg_bf16_n32_g1_t1_s4"), "sm_90a");
        assert_eq!(module_target("sm_90", "wgt_bf16_n32_g1_t1_s16"), "sm_90a");
        assert_eq!(module_target("sm_90", "mma_bf16_mt1_w4_v1_n1_k1"), "sm_90");
    }

    /// Every kernel source the tuner and the runtime compile at run time compiles for
    /// sm_90: each variant of our GEMM families that is a candidate for some problem (every
    /// M bound, both 16-bit types, both int4 formats), the runtime's kernels, the
    /// utilities. Needs NVRTC only, no GPU: scripts/dev/check-cuda-kernels.sh runs it with
    /// the NVRTC of the `nvidia-cuda-nvrtc` wheel.
    #[test]
    #[ignore = "needs libnvrtc (scripts/dev/check-cuda-kernels.sh)"]
    fn nvrtc_compiles_every_kernel_for_sm90() {
        use super::super::custom::Custom;
        use crate::problem::{DType, Problem, WeightFormat};
        use rayon::prelude::*;
        use std::collections::BTreeMap;
        // SAFETY: only tries to dlopen the library's candidate names.
        assert!(unsafe { cudarc::nvrtc::sys::is_culib_present() }, "libnvrtc not found (set LD_LIBRARY_PATH)");
        let mut jobs: BTreeMap<String, String> = BTreeMap::new();
        for d in [DType::BF16, DType::F16] {
            for m in [1, 2, 4, 8, 16, 32, 64, 128] {
                let dense = Problem::linear(d, m, 4096, 4096).unwrap();
                let mut problems = vec![dense];
                problems.extend([WeightFormat::Q4_1, WeightFormat::G128].map(|f| dense.with_weights(f).unwrap()));
                for p in problems {
                    jobs.extend(Custom::candidates(&p, "sm_90").into_iter().map(|c| c.module(&p)));
                }
            }
            jobs.insert(format!("llama_{d}"), crate::model::cuda::llama_source(d));
            jobs.insert(format!("quant_{d}"), super::super::quant_source(d));
        }
        jobs.insert("util".into(), assemble(UTIL, &[]));
        // NVRTC_CHECK_ONLY=<substring>: only the modules whose name contains it (quick checks).
        let only = std::env::var("NVRTC_CHECK_ONLY").unwrap_or_default();
        let jobs: Vec<(String, String)> = jobs.into_iter().filter(|(name, _)| name.contains(&only)).collect();
        // NVRTC_PTXAS_INFO=1: print each module's ptxas figures (registers, spills, smem).
        let info = std::env::var_os("NVRTC_PTXAS_INFO").is_some();
        let extra: &[&str] = if info { &["--ptxas-options=-v"] } else { &[] };
        type Compiled = Result<(Vec<u8>, String)>;
        let results: Vec<(String, Compiled)> =
            jobs.par_iter().map(|(name, src)| (name.clone(), compile_cubin_with(src, name, &module_target("sm_90", name), extra))).collect();
        let failed: Vec<String> = results.iter().filter_map(|(_, r)| r.as_ref().err().map(|e| e.to_string())).collect();
        assert!(failed.is_empty(), "{} of {} modules failed:\n{}", failed.len(), jobs.len(), failed.join("\n"));
        // NVRTC_CUBIN_DIR=<dir>: also write each module's CUBIN there (for `cuobjdump -sass`).
        let cubin_dir = std::env::var_os("NVRTC_CUBIN_DIR").map(std::path::PathBuf::from);
        if let Some(dir) = &cubin_dir {
            std::fs::create_dir_all(dir).unwrap();
        }
        for (name, r) in &results {
            let (bin, log) = r.as_ref().expect("checked above");
            if let Some(dir) = &cubin_dir {
                std::fs::write(dir.join(format!("{name}.cubin")), bin).unwrap();
            }
            if info {
                let figures: Vec<&str> = log.lines().filter(|l| l.contains("Used") || l.contains("spill")).map(|l| l.split_once([':', '.']).map_or(l, |(_, rest)| rest).trim()).collect();
                eprintln!("{name}: {}", figures.join("; "));
            }
        }
        eprintln!("{} modules compiled for sm_90", jobs.len());
    }
}
