//! cuBLASLt: problem descriptors, the heuristic list, and the configuration
//! neighbourhood beyond it (split-K and reduction scheme, custom option, CTA swizzle,
//! cluster shape, tile, stages), each configuration filtered by `cublasLtMatmulAlgoCheck`.
//!
//! A candidate's kernel id stores the whole 64-byte algo blob (hex) with the cuBLASLt
//! version, so a table replays exactly that algorithm; a blob from another cuBLASLt
//! version is refused rather than reinterpreted.

use super::device::DevBuf;
use crate::error::{Error, Result};
use crate::problem::{DType, Problem};
use cudarc::cublaslt::sys::{self as lt, cublasLtMatmulAlgo_t as Algo};
use std::collections::HashSet;
use std::ffi::c_void;

pub fn lt_err(e: cudarc::cublaslt::result::CublasError) -> Error {
    Error::runtime(format!("cuBLASLt: {e:?}"))
}

fn check(s: lt::cublasStatus_t) -> Result<()> {
    if s == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::runtime(format!("cuBLASLt: {s:?}")))
    }
}

pub fn data_type(d: DType) -> lt::cudaDataType {
    match d {
        DType::F32 => lt::cudaDataType::CUDA_R_32F,
        DType::F16 => lt::cudaDataType::CUDA_R_16F,
        DType::BF16 => lt::cudaDataType::CUDA_R_16BF,
    }
}

/// f32 accumulation, or TF32 tensor-core math for f32 problems.
pub fn compute_type(tf32: bool) -> lt::cublasComputeType_t {
    if tf32 {
        lt::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
    } else {
        lt::cublasComputeType_t::CUBLAS_COMPUTE_32F
    }
}

/// Workspace every cuBLASLt candidate may use (the size NVIDIA recommends for Hopper).
pub const WORKSPACE: usize = 32 << 20;

pub struct Lt {
    pub handle: lt::cublasLtHandle_t,
    pub version: usize,
}

// SAFETY: the handle is used from one thread at a time (the backend serializes calls).
unsafe impl Send for Lt {}
unsafe impl Sync for Lt {}

impl Lt {
    pub fn new() -> Result<Lt> {
        let handle = cudarc::cublaslt::result::create_handle().map_err(lt_err)?;
        // SAFETY: plain version query.
        let version = unsafe { lt::cublasLtGetVersion() };
        Ok(Lt { handle, version })
    }
}

impl Drop for Lt {
    fn drop(&mut self) {
        // SAFETY: created in new(), destroyed once.
        unsafe {
            let _ = cudarc::cublaslt::result::destroy_handle(self.handle);
        }
    }
}

/// Descriptors of one problem: `C[N,M] = op(W)·op(X)` column-major (see problem.rs).
pub struct Desc {
    pub tf32: bool,
    pub op: lt::cublasLtMatmulDesc_t,
    pub a: lt::cublasLtMatrixLayout_t,
    pub b: lt::cublasLtMatrixLayout_t,
    pub c: lt::cublasLtMatrixLayout_t,
    pub pref: lt::cublasLtMatmulPreference_t,
}

unsafe impl Send for Desc {}
unsafe impl Sync for Desc {}

impl Desc {
    /// Descriptors for `p`; `tf32` computes an f32 problem on tensor cores in TF32.
    pub fn new(p: &Problem, tf32: bool) -> Result<Desc> {
        use cudarc::cublaslt::result as r;
        let t = data_type(p.dtype);
        let (m, n, k) = (p.m as u64, p.n as u64, p.k as u64);
        // cublasOperation_t values (cublas_api.h): CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
        let op_of = |trans: bool| -> i32 { if trans { 1 } else { 0 } };
        let (ta, tb) = (op_of(p.layout.w_trans), op_of(p.layout.x_trans));
        let a = if p.layout.w_trans { r::create_matrix_layout(t, k, n, k as i64) } else { r::create_matrix_layout(t, n, k, n as i64) }
            .map_err(lt_err)?;
        let b = if p.layout.x_trans { r::create_matrix_layout(t, m, k, m as i64) } else { r::create_matrix_layout(t, k, m, k as i64) }
            .map_err(lt_err)?;
        let c = r::create_matrix_layout(t, n, m, n as i64).map_err(lt_err)?;
        let op = r::create_matmul_desc(compute_type(tf32), lt::cudaDataType::CUDA_R_32F)
            .map_err(lt_err)?;
        let pref = r::create_matmul_pref().map_err(lt_err)?;
        let d = Desc { tf32, op, a, b, c, pref };
        // SAFETY: attribute buffers match the documented types and sizes.
        unsafe {
            use lt::cublasLtMatmulDescAttributes_t as D;
            r::set_matmul_desc_attribute(op, D::CUBLASLT_MATMUL_DESC_TRANSA, &ta as *const _ as *const c_void, 4).map_err(lt_err)?;
            r::set_matmul_desc_attribute(op, D::CUBLASLT_MATMUL_DESC_TRANSB, &tb as *const _ as *const c_void, 4).map_err(lt_err)?;
            let ws = WORKSPACE as u64;
            r::set_matmul_pref_attribute(
                pref,
                lt::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &ws as *const u64 as *const c_void,
                8,
            )
            .map_err(lt_err)?;
            if p.batch > 1 {
                use lt::cublasLtMatrixLayoutAttribute_t as L;
                let count = p.batch as i32;
                for (layout, stride) in [(a, (p.n * p.k) as i64), (b, (p.m * p.k) as i64), (c, (p.m * p.n) as i64)] {
                    r::set_matrix_layout_attribute(layout, L::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count as *const i32 as *const c_void, 4)
                        .map_err(lt_err)?;
                    r::set_matrix_layout_attribute(
                        layout,
                        L::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                        &stride as *const i64 as *const c_void,
                        8,
                    )
                    .map_err(lt_err)?;
                }
            }
        }
        Ok(d)
    }

    /// Up to `count` algorithms from the library heuristic, best first.
    pub fn heuristic(&self, lt_: &Lt, count: usize) -> Result<Vec<(Algo, usize)>> {
        // SAFETY: the result array has room for `count` entries.
        unsafe {
            let mut res: Vec<lt::cublasLtMatmulHeuristicResult_t> = vec![std::mem::zeroed(); count];
            let mut got = 0;
            check(lt::cublasLtMatmulAlgoGetHeuristic(
                lt_.handle, self.op, self.a, self.b, self.c, self.c, self.pref, count as i32, res.as_mut_ptr(), &mut got,
            ))?;
            Ok(res
                .into_iter()
                .take(got.max(0) as usize)
                .filter(|r| r.state == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS)
                .map(|r| (r.algo, r.workspaceSize))
                .collect())
        }
    }

    /// Whether `algo` can run this problem, and the workspace it needs.
    pub fn check(&self, lt_: &Lt, algo: &Algo) -> Result<usize> {
        // SAFETY: one result struct written.
        unsafe {
            let mut r: lt::cublasLtMatmulHeuristicResult_t = std::mem::zeroed();
            check(lt::cublasLtMatmulAlgoCheck(lt_.handle, self.op, self.a, self.b, self.c, self.c, algo, &mut r))?;
            check(r.state)?;
            if r.workspaceSize > WORKSPACE {
                return Err(Error::runtime(format!("needs {} bytes of workspace", r.workspaceSize)));
            }
            Ok(r.workspaceSize)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn matmul(&self, lt_: &Lt, algo: &Algo, x: &DevBuf, w: &DevBuf, y: &DevBuf, ws: &DevBuf, stream: &cudarc::driver::CudaStream) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: buffers hold the problem's operands (checked by the backend).
        unsafe {
            cudarc::cublaslt::result::matmul(
                lt_.handle,
                self.op,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                w.ptr as *const c_void,
                self.a,
                x.ptr as *const c_void,
                self.b,
                y.ptr as *const c_void,
                self.c,
                y.ptr as *mut c_void,
                self.c,
                algo,
                ws.ptr as *mut c_void,
                WORKSPACE,
                stream.cu_stream() as lt::cudaStream_t,
            )
            .map_err(lt_err)
        }
    }
}

impl Drop for Desc {
    fn drop(&mut self) {
        use cudarc::cublaslt::result as r;
        // SAFETY: each descriptor created once in new().
        unsafe {
            let _ = r::destroy_matmul_pref(self.pref);
            let _ = r::destroy_matrix_layout(self.a);
            let _ = r::destroy_matrix_layout(self.b);
            let _ = r::destroy_matrix_layout(self.c);
            let _ = r::destroy_matmul_desc(self.op);
        }
    }
}

/// The configuration attributes that name an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Config {
    pub id: u32,
    pub tile: u32,
    pub splitk: u32,
    pub reduction: u32,
    pub swizzle: u32,
    pub custom: u32,
    pub stages: u32,
    pub inner: u16,
    pub cluster: u16,
}

use lt::cublasLtMatmulAlgoConfigAttributes_t as C;

/// A configuration attribute; u32::MAX where the query fails, so a failure never reads as
/// a real value 0 (two different algorithms would then merge under one name).
fn get_u32(a: &Algo, attr: C) -> u32 {
    let mut v = 0u32;
    let mut written = 0usize;
    // SAFETY: 4-byte buffer for a 4-byte attribute.
    let s = unsafe { lt::cublasLtMatmulAlgoConfigGetAttribute(a, attr, &mut v as *mut u32 as *mut c_void, 4, &mut written) };
    if s == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS { v } else { u32::MAX }
}
fn get_u16(a: &Algo, attr: C) -> u16 {
    let mut v = 0u16;
    let mut written = 0usize;
    // SAFETY: 2-byte buffer for a 2-byte attribute.
    let s = unsafe { lt::cublasLtMatmulAlgoConfigGetAttribute(a, attr, &mut v as *mut u16 as *mut c_void, 2, &mut written) };
    if s == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS { v } else { u16::MAX }
}
fn set_u32(a: &mut Algo, attr: C, v: u32) -> bool {
    // SAFETY: as above.
    unsafe { lt::cublasLtMatmulAlgoConfigSetAttribute(a, attr, &v as *const u32 as *const c_void, 4) == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS }
}
fn set_u16(a: &mut Algo, attr: C, v: u16) -> bool {
    // SAFETY: as above.
    unsafe { lt::cublasLtMatmulAlgoConfigSetAttribute(a, attr, &v as *const u16 as *const c_void, 2) == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS }
}

impl Config {
    pub fn of(a: &Algo) -> Config {
        Config {
            id: get_u32(a, C::CUBLASLT_ALGO_CONFIG_ID),
            tile: get_u32(a, C::CUBLASLT_ALGO_CONFIG_TILE_ID),
            splitk: get_u32(a, C::CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
            reduction: get_u32(a, C::CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME),
            swizzle: get_u32(a, C::CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
            custom: get_u32(a, C::CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION),
            stages: get_u32(a, C::CUBLASLT_ALGO_CONFIG_STAGES_ID),
            inner: get_u16(a, C::CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID),
            cluster: get_u16(a, C::CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID),
        }
    }

    /// A readable name, e.g. `a66-t20-s8-k1-r0-w0-c0-i0-l0`.
    pub fn name(&self) -> String {
        format!(
            "a{}-t{}-s{}-k{}-r{}-w{}-c{}-i{}-l{}",
            self.id, self.tile, self.stages, self.splitk, self.reduction, self.swizzle, self.custom, self.inner, self.cluster
        )
    }

    /// Applies this configuration to an algo initialized with its id.
    fn apply(&self, a: &mut Algo) -> bool {
        set_u32(a, C::CUBLASLT_ALGO_CONFIG_TILE_ID, self.tile)
            && set_u32(a, C::CUBLASLT_ALGO_CONFIG_STAGES_ID, self.stages)
            && set_u32(a, C::CUBLASLT_ALGO_CONFIG_SPLITK_NUM, self.splitk)
            && set_u32(a, C::CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, self.reduction)
            && set_u32(a, C::CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, self.swizzle)
            && set_u32(a, C::CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, self.custom)
            && set_u16(a, C::CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, self.inner)
            && set_u16(a, C::CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, self.cluster)
    }
}

fn cap_u32(a: &Algo, attr: lt::cublasLtMatmulAlgoCapAttributes_t) -> u32 {
    let mut v = 0u32;
    let mut w = 0usize;
    // SAFETY: 4-byte scalar capability.
    unsafe { lt::cublasLtMatmulAlgoCapGetAttribute(a, attr, &mut v as *mut u32 as *mut c_void, 4, &mut w) };
    v
}
fn cap_list(a: &Algo, attr: lt::cublasLtMatmulAlgoCapAttributes_t) -> Vec<u32> {
    let mut w = 0usize;
    // SAFETY: first call asks for the size, second fills a buffer of that size.
    unsafe {
        lt::cublasLtMatmulAlgoCapGetAttribute(a, attr, std::ptr::null_mut(), 0, &mut w);
        let mut v = vec![0u32; w / 4];
        if !v.is_empty() {
            lt::cublasLtMatmulAlgoCapGetAttribute(a, attr, v.as_mut_ptr() as *mut c_void, w, &mut w);
        }
        v
    }
}

/// Configurations around the heuristic's picks, each passing `AlgoCheck`, at most `budget`
/// in all (heuristic picks first). Returns (algo, workspace, config).
pub fn enumerate(lt_: &Lt, d: &Desc, p: &Problem, budget: usize) -> Result<Vec<(Algo, usize, Config)>> {
    let base = d.heuristic(lt_, 64)?;
    let mut out: Vec<(Algo, usize, Config)> = Vec::new();
    let mut seen: HashSet<Config> = HashSet::new();
    let mut push = |a: Algo, out: &mut Vec<(Algo, usize, Config)>| {
        let c = Config::of(&a);
        if out.len() < budget && seen.insert(c) {
            if let Ok(ws) = d.check(lt_, &a) {
                out.push((a, ws, c));
            }
        }
    };
    for (a, _) in &base {
        push(*a, &mut out);
    }
    let t = data_type(p.dtype);
    use lt::cublasLtMatmulAlgoCapAttributes_t as Cap;
    for (a0, _) in &base {
        let c0 = Config::of(a0);
        let fresh = || -> Option<Algo> {
            // SAFETY: initializes one algo struct for the same types and id.
            unsafe {
                let mut a: Algo = std::mem::zeroed();
                let s = lt::cublasLtMatmulAlgoInit(
                    lt_.handle,
                    compute_type(d.tf32),
                    lt::cudaDataType::CUDA_R_32F,
                    t, t, t, t,
                    c0.id as i32,
                    &mut a,
                );
                (s == lt::cublasStatus_t::CUBLAS_STATUS_SUCCESS).then_some(a)
            }
        };
        let Some(probe) = fresh() else { continue };
        let splitk_ok = cap_u32(&probe, Cap::CUBLASLT_ALGO_CAP_SPLITK_SUPPORT) != 0;
        let red_mask = cap_u32(&probe, Cap::CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK);
        let swizzle_ok = cap_u32(&probe, Cap::CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT) != 0;
        let custom_max = cap_u32(&probe, Cap::CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX).min(7);
        let tiles = cap_list(&probe, Cap::CUBLASLT_ALGO_CAP_TILE_IDS);
        let stages = cap_list(&probe, Cap::CUBLASLT_ALGO_CAP_STAGES_IDS);
        let mut variants: Vec<Config> = Vec::new();
        if splitk_ok {
            for k in [1u32, 2, 3, 4, 6, 8, 12, 16] {
                if k == 1 {
                    variants.push(Config { splitk: 1, reduction: 0, ..c0 });
                    continue;
                }
                for r in [1u32, 2, 4] {
                    if red_mask & r != 0 {
                        variants.push(Config { splitk: k, reduction: r, ..c0 });
                    }
                }
            }
        }
        for c in 0..=custom_max {
            variants.push(Config { custom: c, ..c0 });
        }
        if swizzle_ok {
            variants.push(Config { swizzle: 1 - c0.swizzle.min(1), ..c0 });
        }
        for cl in 0..=12u16 {
            variants.push(Config { cluster: cl, ..c0 });
        }
        // Tiles nearest the heuristic's in the library's own order, stages left to it.
        if let Some(pos) = tiles.iter().position(|&t| t == c0.tile) {
            let lo = pos.saturating_sub(6);
            for &tile in &tiles[lo..(pos + 7).min(tiles.len())] {
                variants.push(Config { tile, ..c0 });
                if stages.contains(&0) {
                    variants.push(Config { tile, stages: 0, ..c0 });
                }
            }
        }
        for v in variants {
            if out.len() >= budget {
                break;
            }
            if let Some(mut a) = fresh() {
                if v.apply(&mut a) {
                    push(a, &mut out);
                }
            }
        }
    }
    Ok(out)
}

/// `cuda:cublaslt:<version>:<config name>:<128 hex digits of the algo blob>`
/// (`cuda:cublaslt-tf32:...` for TF32 math).
pub fn encode_id(version: usize, a: &Algo, tf32: bool) -> String {
    let mut hex = String::with_capacity(128);
    for word in a.data {
        for byte in word.to_le_bytes() {
            hex.push_str(&format!("{byte:02x}"));
        }
    }
    let family = if tf32 { "cublaslt-tf32" } else { "cublaslt" };
    format!("cuda:{family}:{version}:{}:{hex}", Config::of(a).name())
}

/// The algo blob of an id, if it was written by cuBLASLt `version`.
pub fn decode_id(id: &str, version: usize) -> std::result::Result<Algo, String> {
    let parts: Vec<&str> = id.split(':').collect();
    let [_, _, ver, _, hex] = parts.as_slice() else {
        return Err(format!("'{id}' is not a cuBLASLt kernel id"));
    };
    let blob = decode_blob(hex)?;
    if ver.parse::<usize>().ok() != Some(version) {
        return Err(format!("tuned with cuBLASLt {ver}, this is {version}: re-tune"));
    }
    Ok(Algo { data: blob })
}

pub fn decode_blob(hex: &str) -> std::result::Result<[u64; 8], String> {
    if hex.len() != 128 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the algo blob must be 128 hex digits".into());
    }
    let mut data = [0u64; 8];
    for (w, word) in data.iter_mut().enumerate() {
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().enumerate() {
            let at = (w * 8 + i) * 2;
            *b = u8::from_str_radix(&hex[at..at + 2], 16).map_err(|e| e.to_string())?;
        }
        *word = u64::from_le_bytes(bytes);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algo_blob_round_trips_through_the_id() {
        let a = Algo { data: [1, 0xdead_beef, u64::MAX, 0, 42, 7, 0x0102_0304_0506_0708, 9] };
        // Config::of would call into cuBLASLt; build the id's blob part directly.
        let mut hex = String::new();
        for word in a.data {
            for byte in word.to_le_bytes() {
                hex.push_str(&format!("{byte:02x}"));
            }
        }
        let id = format!("cuda:cublaslt:130100:a66-t20:{hex}");
        assert_eq!(decode_id(&id, 130100).unwrap().data, a.data);
        assert!(decode_id(&id, 130200).unwrap_err().contains("re-tune"));
        assert!(decode_id("cuda:cublaslt:130100:x:abc", 130100).is_err());
        assert!(decode_blob(&"zz".repeat(64)).is_err());
    }
}
