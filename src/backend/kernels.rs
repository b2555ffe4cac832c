//! What the GPU backends share about kernels of our own (kernels/*.cu): the sources and
//! how they are assembled for a run-time compiler, the parameter grids and the kernel ids
//! built from them, the disk cache of compiled code objects and the per-process module
//! cache. The compiler (NVRTC, hipRTC) and the module loader stay in each backend.
//!
//! A variant's id is `<backend>:<family>:<prefix><value>:...` in the order of its
//! family's parameters, e.g. `cuda:gemv:r2:t256:u4:m1` or `rocm:mfma:mt1:w4:v2:n1:k1`.

use crate::error::{Error, Result};
use crate::problem::{DType, Layout, Problem};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;

pub const COMMON: &str = include_str!("../../kernels/common.cuh");
pub const UTIL: &str = include_str!("../../kernels/util.cu");
pub const GEMV: &str = include_str!("../../kernels/gemv.cu");
pub const MMA: &str = include_str!("../../kernels/mma.cu");
/// The int4 tensor-core kernel: kernels/qmma.cu appended to kernels/mma.cu (whose
/// helpers it uses); the host defines QMMA_FORMAT.
pub const QMMA: &str = concat!(include_str!("../../kernels/mma.cu"), include_str!("../../kernels/qmma.cu"));
/// kernels/mmal.cu after kernels/mma.cu (whose helpers it uses); the host defines MMA_LINE.
pub const MMAL: &str = concat!(include_str!("../../kernels/mma.cu"), include_str!("../../kernels/mmal.cu"));
pub const WGMMA: &str = include_str!("../../kernels/wgmma.cu");
pub const QUANT: &str = include_str!("../../kernels/quant.cu");
pub const MFMA: &str = include_str!("../../kernels/hip/mfma.cu");

/// Splices the shared header into a kernel source behind the given defines (run-time
/// compilers get no include path).
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

/// `f32`, `f16`, `bf16`: the suffix of per-dtype kernels and module names.
pub fn suffix(d: DType) -> &'static str {
    d.name()
}

/// 16-bit values (raw bits of `d`, f16 or bf16) as f32.
pub fn widen(d: DType, bits: &[u16]) -> Vec<f32> {
    match d {
        DType::F16 => bits.iter().map(|&b| half::f16::from_bits(b).to_f32()).collect(),
        DType::BF16 => bits.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect(),
        DType::F32 => panic!("f32 buffers are not 16-bit"),
    }
}

/// 64-bit FNV-1a: a stable content hash for the disk cache (std's hasher is not
/// guaranteed stable across Rust releases).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
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

/// Compiled code objects on disk, keyed by a content hash of everything that decides the
/// binary (source, target, compiler version): `$GEMMTUNE_CACHE_DIR/<compiler>/`, else
/// `$XDG_CACHE_HOME/gemmtune/<compiler>/`, else `~/.cache/gemmtune/<compiler>/`.
pub struct DiskCache {
    dir: Option<PathBuf>,
    ext: &'static str,
}

impl DiskCache {
    pub fn new(compiler: &str, ext: &'static str) -> DiskCache {
        let dir = std::env::var_os("GEMMTUNE_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("gemmtune")))
            .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/gemmtune")))
            .map(|d| d.join(compiler));
        DiskCache { dir, ext }
    }

    /// Whether binaries are kept (a cache directory is known).
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// The cached binary for `name` under `key`, or `compile()`'s, then stored.
    pub fn get_or(&self, name: &str, key: &[&[u8]], compile: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
        let path = self.dir.as_ref().map(|d| d.join(format!("{name}-{:016x}.{}", fnv1a(key), self.ext)));
        if let Some(bin) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
            return Ok(bin);
        }
        let bin = compile()?;
        if let Some(p) = path {
            // Best effort: a cache that cannot be written only costs a recompile.
            let _ = crate::atomic::write_atomic(&p, |w| w.write_all(&bin));
        }
        Ok(bin)
    }
}

/// Modules loaded in this process by name, and those that failed with the reason (so one
/// bad variant only rejects itself and is not compiled again).
pub struct Modules<M> {
    loaded: Mutex<HashMap<String, M>>,
    failed: Mutex<HashMap<String, String>>,
}

impl<M: Clone> Default for Modules<M> {
    fn default() -> Self {
        Modules { loaded: Mutex::new(HashMap::new()), failed: Mutex::new(HashMap::new()) }
    }
}

impl<M: Clone> Modules<M> {
    /// Whether module `name` was loaded, or failed, in this process.
    pub fn known(&self, name: &str) -> bool {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).contains_key(name)
            || self.failed.lock().unwrap_or_else(|e| e.into_inner()).contains_key(name)
    }

    /// Runs `compile` (which stores into the on-disk cache) on `jobs` not known here yet,
    /// in their order, on all cores but two, until `stop()` says so; loads nothing, so no
    /// device context is needed: `prepare` later finds the binaries on disk and only
    /// loads them. Its own worker threads rather than `prepare`'s rayon batch: the jobs
    /// are taken in order (the next shapes' first), the stop is checked between them, and
    /// two cores stay with the tuner meanwhile. Returns how many it compiled.
    pub fn precompile(
        &self,
        jobs: &[(String, String)],
        compile: impl Fn(&str, &str) -> Result<Vec<u8>> + Sync,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> usize
    where
        M: Send,
    {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(2).max(1));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((name, src)) = jobs.get(i).filter(|_| !stop()) else { break };
                    // A failure is compiled again, and reported, when the module is asked for.
                    if !self.known(name) && compile(name, src).is_ok() {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        done.into_inner()
    }

    /// Compiles `(name, source)` jobs not seen yet in parallel on every core, then loads
    /// them one by one.
    pub fn prepare(
        &self,
        jobs: Vec<(String, String)>,
        compile: impl Fn(&str, &str) -> Result<Vec<u8>> + Sync,
        mut load: impl FnMut(Vec<u8>) -> Result<M>,
    ) {
        use rayon::prelude::*;
        // Variants differing only in launch parameters share a module: compile it once.
        let mut seen = std::collections::HashSet::new();
        let todo: Vec<(String, String)> =
            jobs.into_iter().filter(|(name, _)| !self.known(name) && seen.insert(name.clone())).collect();
        let bins: Vec<(String, Result<Vec<u8>>)> =
            todo.par_iter().map(|(name, src)| (name.clone(), compile(name, src))).collect();
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        for (name, bin) in bins {
            match bin.and_then(&mut load) {
                Ok(m) => {
                    loaded.insert(name, m);
                }
                Err(e) => {
                    failed.insert(name, e.to_string());
                }
            }
        }
    }

    /// Module `name`, compiled from `source()` and loaded if needed.
    pub fn get(
        &self,
        name: &str,
        source: impl FnOnce() -> String,
        compile: impl Fn(&str, &str) -> Result<Vec<u8>> + Sync,
        load: impl FnMut(Vec<u8>) -> Result<M>,
    ) -> Result<M> {
        if let Some(m) = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(m.clone());
        }
        self.prepare(vec![(name.to_string(), source())], compile, load);
        if let Some(m) = self.loaded.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(m.clone());
        }
        let why = self.failed.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned();
        Err(Error::runtime(why.unwrap_or_else(|| format!("module {name} did not load"))))
    }
}

/// A kernel family: its source, entry point, the define selecting the 16-bit type
/// (0 bf16, 1 f16) and its parameters as (id prefix, define, allowed values). Parameters
/// named in `launch` are part of the id but chosen at launch (grid size), not compiled in:
/// their variants share one module.
#[derive(Debug)]
pub struct Spec {
    pub family: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    pub dtype_define: &'static str,
    pub params: &'static [(&'static str, &'static str, &'static [u32])],
    pub launch: &'static [&'static str],
}

/// The decode GEMV of kernels/gemv.cu (both GPU backends).
pub static GEMV_SPEC: Spec = Spec {
    family: "gemv",
    source: GEMV,
    entry: "gemv_kernel",
    dtype_define: "GEMV_DTYPE",
    params: &[
        ("r", "GEMV_ROWS", &[1, 2, 4]),
        ("t", "GEMV_THREADS", &[128, 256]),
        ("u", "GEMV_UNROLL", &[1, 2, 4]),
        ("m", "GEMV_MAXM", &[1, 2, 4]),
    ],
    launch: &[],
};

const MAX_PARAMS: usize = 6;

/// One point of a family's grid.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub spec: &'static Spec,
    values: [u32; MAX_PARAMS],
}

impl PartialEq for Variant {
    fn eq(&self, o: &Variant) -> bool {
        self.spec.family == o.spec.family && self.values == o.values
    }
}
impl Eq for Variant {}
impl Hash for Variant {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.spec.family.hash(h);
        self.values.hash(h);
    }
}

impl Spec {
    /// Every point of the grid, first parameter slowest.
    pub fn all(&'static self) -> Vec<Variant> {
        let mut out = vec![Variant { spec: self, values: [0; MAX_PARAMS] }];
        for (i, (_, _, values)) in self.params.iter().enumerate() {
            out = out
                .into_iter()
                .flat_map(|v| {
                    values.iter().map(move |&x| {
                        let mut v = v;
                        v.values[i] = x;
                        v
                    })
                })
                .collect();
        }
        out
    }
}

impl Variant {
    /// The value of the parameter with id prefix `prefix`.
    pub fn get(&self, prefix: &str) -> u32 {
        let i = self.spec.params.iter().position(|(p, _, _)| *p == prefix);
        self.values[i.unwrap_or_else(|| panic!("family {} has no parameter '{prefix}'", self.spec.family))]
    }

    fn params(&self) -> impl Iterator<Item = (&'static str, &'static str, u32)> + '_ {
        self.spec.params.iter().zip(self.values).map(|((p, d, _), v)| (*p, *d, v))
    }

    /// The parameters compiled into the module (not those chosen at launch).
    fn compiled(&self) -> impl Iterator<Item = (&'static str, &'static str, u32)> + '_ {
        self.params().filter(|(p, _, _)| !self.spec.launch.contains(p))
    }

    pub fn id(&self, backend: &str) -> String {
        let mut s = format!("{backend}:{}", self.spec.family);
        for (p, _, v) in self.params() {
            s.push_str(&format!(":{p}{v}"));
        }
        s
    }

    /// The variant an id names, among `specs`, checked against the grid.
    pub fn parse(backend: &str, specs: &[&'static Spec], id: &str) -> std::result::Result<Variant, String> {
        let parts: Vec<&str> = id.split(':').collect();
        let spec = match parts.as_slice() {
            [b, family, ..] if *b == backend => specs.iter().find(|s| s.family == *family),
            _ => None,
        }
        .ok_or_else(|| format!("'{id}' is not a kernel id of our own {backend} kernels"))?;
        if parts.len() != 2 + spec.params.len() {
            return Err(format!("bad {} kernel id '{id}'", spec.family.to_uppercase()));
        }
        let mut v = Variant { spec, values: [0; MAX_PARAMS] };
        for (i, ((prefix, _, allowed), part)) in spec.params.iter().zip(&parts[2..]).enumerate() {
            let x = part
                .strip_prefix(prefix)
                .and_then(|x| x.parse::<u32>().ok())
                .ok_or_else(|| format!("bad {} kernel id '{id}'", spec.family.to_uppercase()))?;
            if !allowed.contains(&x) {
                return Err(format!("'{id}' names a variant that does not exist"));
            }
            v.values[i] = x;
        }
        Ok(v)
    }

    /// Module name of this variant compiled for `d`, e.g. `gemv_bf16_r1_t128_u1_m1`.
    pub fn module_name(&self, d: DType) -> String {
        let mut s = format!("{}_{}", self.spec.family, suffix(d));
        for (p, _, v) in self.compiled() {
            s.push_str(&format!("_{p}{v}"));
        }
        s
    }

    /// The assembled source of this variant for `d`; `extra` defines go first.
    pub fn source(&self, d: DType, extra: &[(&str, &str)]) -> String {
        let values: Vec<(&str, String)> = self.compiled().map(|(_, def, v)| (def, v.to_string())).collect();
        let mut defines: Vec<(&str, &str)> = extra.to_vec();
        defines.push((self.spec.dtype_define, if d == DType::F16 { "1" } else { "0" }));
        defines.extend(values.iter().map(|(d, v)| (*d, v.as_str())));
        assemble(self.spec.source, &defines)
    }
}

/// The modules (name, source) of every candidate of `problems` after the first, each once,
/// in order of first use, less those the first problem needs: what `tune` can compile
/// ahead while the tuner compiles the first problem's own. `candidates`, `name` and
/// `source` are the backend's (sources are assembled only for the modules returned).
pub fn modules_after_first<V>(
    problems: &[Problem],
    candidates: impl Fn(&Problem) -> Vec<V>,
    name: impl Fn(&V, &Problem) -> String,
    source: impl Fn(&V, &Problem) -> String,
) -> Vec<(String, String)> {
    let Some((first, rest)) = problems.split_first() else { return Vec::new() };
    let mut seen: std::collections::HashSet<String> = candidates(first).iter().map(|c| name(c, first)).collect();
    let mut out = Vec::new();
    for p in rest {
        for c in candidates(p) {
            let n = name(&c, p);
            if seen.insert(n.clone()) {
                out.push((n, source(&c, p)));
            }
        }
    }
    out
}

/// What every kernel of ours requires: 16-bit types, the linear layer's layout, one
/// batch, 16-byte aligned rows (K % 8), decode-sized M.
pub fn base_ok(p: &Problem) -> bool {
    p.dtype != DType::F32 && p.layout == Layout::TN && p.batch == 1 && p.k.is_multiple_of(8) && p.m <= 32
}

pub fn base_requirement(p: &Problem) -> String {
    format!("needs bf16/f16, layout TN, batch 1, K % 8 == 0 and M <= 32 (got {p})")
}

/// The GEMV variants for `p`: those compiled for the smallest M bound that covers it.
pub fn gemv_candidates(p: &Problem) -> Vec<Variant> {
    if !base_ok(p) {
        return Vec::new();
    }
    match [1u32, 2, 4].into_iter().find(|&x| x as usize >= p.m) {
        Some(max_m) => GEMV_SPEC.all().into_iter().filter(|v| v.get("m") == max_m).collect(),
        None => Vec::new(),
    }
}

/// Why a GEMV variant cannot run `p`, if it cannot.
pub fn gemv_unsupported(v: &Variant, p: &Problem) -> Option<String> {
    if !base_ok(p) {
        return Some(base_requirement(p));
    }
    let max_m = v.get("m");
    (p.m > max_m as usize).then(|| format!("compiled for M <= {max_m}, got M = {}", p.m))
}

/// (grid x, block x) of a GEMV launch: one block per `rows` rows of W.
pub fn gemv_launch(v: &Variant, p: &Problem) -> (u32, u32) {
    ((p.n as u32).div_ceil(v.get("r")), v.get("t"))
}

/// The number of rotating sets a GPU timing call walks over, which must be some (it
/// launches call i on set i mod n).
pub fn rotating_count<T>(sets: &[T]) -> Result<usize> {
    match sets.len() {
        0 => Err(Error::runtime("time: no operand sets")),
        n => Ok(n),
    }
}

/// Hash of the operand addresses `(x, w, y)` of rotating sets, in order, and their count:
/// the key, with the kernel and call count, of a captured timing graph on both GPU
/// backends. A graph holds those addresses, so sets rebuilt elsewhere (even with the first
/// at the same address, which the allocator often reuses) get a graph of their own.
pub fn sets_key(addrs: impl ExactSizeIterator<Item = (u64, u64, u64)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addrs.len().hash(&mut h);
    for a in addrs {
        a.hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets that differ anywhere, in count or order, key different graphs; the same sets
    /// the same one (the first set's X alone let rebuilt sets replay freed addresses).
    #[test]
    fn timing_graphs_are_keyed_by_every_operand_address() {
        let key = |v: &[(u64, u64, u64)]| sets_key(v.iter().copied());
        let a = [(1, 2, 3), (4, 5, 6)];
        assert_eq!(key(&a), key(&a));
        for other in [vec![(1, 2, 3), (4, 5, 7)], vec![(1, 2, 3)], vec![(4, 5, 6), (1, 2, 3)], vec![(1, 2, 3), (4, 5, 6), (7, 8, 9)]] {
            assert_ne!(key(&a), key(&other), "{other:?}");
        }
    }

    #[test]
    fn grid_ids_round_trip_and_reject_what_the_grid_lacks() {
        let all = GEMV_SPEC.all();
        assert_eq!(all.len(), 3 * 2 * 3 * 3);
        let specs = [&GEMV_SPEC];
        for v in &all {
            assert_eq!(Variant::parse("rocm", &specs, &v.id("rocm")).unwrap(), *v);
            assert!(Variant::parse("cuda", &specs, &v.id("rocm")).is_err());
        }
        let v = Variant::parse("cuda", &specs, "cuda:gemv:r2:t256:u4:m1").unwrap();
        assert_eq!((v.get("r"), v.get("t"), v.get("u"), v.get("m")), (2, 256, 4, 1));
        assert_eq!(v.module_name(DType::BF16), "gemv_bf16_r2_t256_u4_m1");
        let src = v.source(DType::F16, &[("GEMMTUNE_HIP", "1")]);
        assert!(src.starts_with("#define GEMMTUNE_HIP 1\n#define GEMV_DTYPE 1\n#define GEMV_ROWS 2\n"), "{src}");
        for bad in ["cuda:gemv:r3:t128:u1:m1", "cuda:gemv:r1:t128:u1", "cuda:gemv:x1:t128:u1:m1", "cuda:gemv:r1:t128:u1:m1:k1", "cuda:mma:r1"] {
            assert!(Variant::parse("cuda", &specs, bad).is_err(), "{bad}");
        }
        assert!(Variant::parse("cuda", &specs, "cuda:gemv:r3:t128:u1:m1").unwrap_err().contains("does not exist"));
    }

    #[test]
    fn gemv_applicability() {
        let p = Problem::linear(DType::BF16, 3, 1280, 8192).unwrap();
        let c = gemv_candidates(&p);
        assert_eq!(c.len(), 18);
        assert!(c.iter().all(|v| v.get("m") == 4 && gemv_unsupported(v, &p).is_none()));
        assert!(gemv_unsupported(&c[0], &p.with_m(5)).unwrap().contains("M <= 4"));
        assert!(gemv_candidates(&p.with_m(5)).is_empty());
        assert!(gemv_candidates(&Problem::linear(DType::F32, 1, 64, 64).unwrap()).is_empty());
        assert!(gemv_candidates(&Problem::linear(DType::BF16, 1, 64, 60).unwrap()).is_empty());
        assert_eq!(gemv_launch(&c[0], &p), (1280, 128));
    }

    #[test]
    fn sources_assemble_without_includes() {
        let s = assemble(GEMV, &[("GEMV_DTYPE", "0")]);
        assert!(s.starts_with("#define GEMV_DTYPE 0\n"));
        assert!(s.contains("f32_to_bf16") && s.contains("gemv_kernel"));
        for src in [GEMV, UTIL, MMA, QMMA, MMAL, WGMMA, QUANT, MFMA] {
            let s = assemble(src, &[]);
            assert!(!s.lines().any(|l| l.trim_start().starts_with("#include")), "run-time compilers get no include path");
        }
        assert_ne!(fnv1a(&[b"a", b"bc"]), fnv1a(&[b"ab", b"c"]));
    }

    #[test]
    fn modules_remember_failures_and_compile_once() {
        let m: Modules<usize> = Modules::default();
        let compiled = std::sync::atomic::AtomicUsize::new(0);
        let compile = |name: &str, src: &str| {
            compiled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if src.contains("error") {
                Err(Error::runtime(format!("{name}: does not compile")))
            } else {
                Ok(src.as_bytes().to_vec())
            }
        };
        m.prepare(vec![("a".into(), "ok".into()), ("b".into(), "error".into())], compile, |b| Ok(b.len()));
        assert_eq!(m.get("a", || unreachable!(), compile, |b| Ok(b.len())).unwrap(), 2);
        let e = m.get("b", || "error".into(), compile, |b| Ok(b.len())).unwrap_err();
        assert!(e.to_string().contains("b: does not compile"), "{e}");
        assert_eq!(compiled.load(std::sync::atomic::Ordering::SeqCst), 2, "b is not compiled again");
        assert_eq!(m.get("c", || "fine".into(), compile, |b| Ok(b.len() * 10)).unwrap(), 40);
    }

    /// Compiling ahead: in order, each job not known here once, a failure not counted (it
    /// is compiled again when asked for), nothing after the stop.
    #[test]
    fn precompile_compiles_unknown_jobs_until_stopped() {
        let m: Modules<usize> = Modules::default();
        m.prepare(vec![("known".into(), "ok".into())], |_, s| Ok(s.as_bytes().to_vec()), |b| Ok(b.len()));
        let jobs: Vec<(String, String)> =
            ["a", "known", "b", "bad", "c"].iter().map(|n| (n.to_string(), if *n == "bad" { "error" } else { "ok" }.to_string())).collect();
        let seen = Mutex::new(Vec::new());
        let compile = |name: &str, src: &str| {
            seen.lock().unwrap().push(name.to_string());
            if src == "error" { Err(Error::runtime("does not compile")) } else { Ok(vec![0]) }
        };
        assert_eq!(m.precompile(&jobs, compile, &|| false), 3);
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["a", "b", "bad", "c"]);
        // Compiled ahead means cached, not loaded: `prepare` still loads them later.
        assert!(!m.known("a") && m.known("known"));
        seen.lock().unwrap().clear();
        assert_eq!(m.precompile(&jobs, compile, &|| true), 0);
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn disk_cache_stores_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache { dir: Some(dir.path().to_path_buf()), ext: "bin" };
        let a = c.get_or("k", &[b"src", b"gfx942"], || Ok(vec![1, 2, 3])).unwrap();
        let b = c.get_or("k", &[b"src", b"gfx942"], || panic!("cached")).unwrap();
        assert_eq!(a, b);
        let other = c.get_or("k", &[b"src", b"gfx90a"], || Ok(vec![9])).unwrap();
        assert_eq!(other, vec![9]);
    }
}
