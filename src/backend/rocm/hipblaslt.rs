//! hipBLASLt: handle, per-problem descriptors, the algorithm list, the matmul, and the
//! kernel ids that carry an algorithm.
//!
//! hipBLASLt has no C equivalent of cuBLASLt's AlgoInit/AlgoCheck/ConfigSetAttribute, but
//! `hipblasLtMatmulAlgoGetHeuristic` asked for many algorithms returns its heuristic picks
//! followed by every other solution that supports the problem (rocblaslt_auxiliary.cpp,
//! shared/reference/apis.md §4). That list is the candidate set, and also how an id is
//! checked: an algorithm is usable for a problem iff the list for that problem holds it.
//!
//! Id: `rocm:hipblaslt:<hipblasLtGetVersion>:<48 hex digits of the 24-byte algo blob>`.
//! The blob is replayed as stored and never built from its solution index (int32 in bytes
//! 0..4, TunableOp's `Gemm_Hipblaslt_<TA><TB>_<index>`); a blob from another hipBLASLt
//! version is refused.

use super::hip::{DevBuf, Gpu};
use super::sys::{self, hipblasLtMatmulAlgo_t as Algo, Libs};
use crate::error::{Error, Result};
use crate::problem::{DType, Problem};
use std::ffi::{c_char, c_void};

/// Workspace every hipBLASLt candidate may use.
pub const WORKSPACE: usize = 32 << 20;
/// Algorithms requested from the heuristic: more than any problem has, so the library
/// appends every supported solution to its picks.
pub const REQUEST: usize = 8192;

pub fn status_name(s: sys::hipblasStatus_t) -> String {
    sys::HIPBLAS_STATUS_NAMES.get(s as usize).map_or_else(|| format!("hipblasStatus_t {s}"), |n| n.to_string())
}

fn check(s: sys::hipblasStatus_t, what: &str) -> Result<()> {
    if s == sys::HIPBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(Error::runtime(format!("{what}: {}", status_name(s))))
    }
}

fn data_type(d: DType) -> sys::hipDataType {
    match d {
        DType::F32 => sys::HIP_R_32F,
        DType::F16 => sys::HIP_R_16F,
        DType::BF16 => sys::HIP_R_16BF,
    }
}

pub struct Lt {
    l: &'static Libs,
    handle: sys::hipblasLtHandle_t,
    /// `hipblasLtGetVersion`: major*100000 + minor*100 + patch.
    pub version: i32,
    /// `<major>.<minor>.<patch>-<git revision>`, the form of TunableOp's HIPBLASLT_VERSION
    /// (e.g. `0.6.0-a9c5cc7` in PyTorch's TunableOp README).
    pub full_version: String,
}

// SAFETY: one handle per stream; used under the backend's lock only.
unsafe impl Send for Lt {}
unsafe impl Sync for Lt {}

impl Lt {
    pub fn new(l: &'static Libs) -> Result<Lt> {
        let mut handle: sys::hipblasLtHandle_t = std::ptr::null_mut();
        // SAFETY: creates one handle, destroyed in Drop.
        check(unsafe { (l.lt.hipblasLtCreate)(&mut handle) }, "hipblasLtCreate")?;
        let mut lt = Lt { l, handle, version: 0, full_version: String::new() };
        let mut rev = [0 as c_char; 128];
        // SAFETY: version writes an int; the revision is a short NUL-terminated hash.
        unsafe {
            check((l.lt.hipblasLtGetVersion)(handle, &mut lt.version), "hipblasLtGetVersion")?;
            check((l.lt.hipblasLtGetGitRevision)(handle, rev.as_mut_ptr()), "hipblasLtGetGitRevision")?;
            let rev = std::ffi::CStr::from_ptr(rev.as_ptr()).to_string_lossy().trim().to_string();
            lt.full_version = format!("{}-{rev}", dotted(lt.version));
        }
        Ok(lt)
    }
}

impl Drop for Lt {
    fn drop(&mut self) {
        // SAFETY: created in new(), destroyed once.
        unsafe {
            let _ = (self.l.lt.hipblasLtDestroy)(self.handle);
        }
    }
}

/// Descriptors of one problem: `C[N,M] = op(W)·op(X)` column-major (see problem.rs).
pub struct Desc {
    l: &'static Libs,
    op: sys::hipblasLtMatmulDesc_t,
    a: sys::hipblasLtMatrixLayout_t,
    b: sys::hipblasLtMatrixLayout_t,
    c: sys::hipblasLtMatrixLayout_t,
    pref: sys::hipblasLtMatmulPreference_t,
}

// SAFETY: descriptors are only read after creation; calls are serialized by the backend.
unsafe impl Send for Desc {}
unsafe impl Sync for Desc {}

impl Desc {
    pub fn new(l: &'static Libs, p: &Problem) -> Result<Desc> {
        let f = &l.lt;
        let t = data_type(p.dtype);
        let (m, n, k) = (p.m as u64, p.n as u64, p.k as u64);
        let mut d = Desc {
            l,
            op: std::ptr::null_mut(),
            a: std::ptr::null_mut(),
            b: std::ptr::null_mut(),
            c: std::ptr::null_mut(),
            pref: std::ptr::null_mut(),
        };
        let (ta, tb) = (
            if p.layout.w_trans { sys::HIPBLAS_OP_T } else { sys::HIPBLAS_OP_N },
            if p.layout.x_trans { sys::HIPBLAS_OP_T } else { sys::HIPBLAS_OP_N },
        );
        // SAFETY: each create writes one handle (destroyed in Drop, null ones skipped);
        // attribute buffers have the documented types and sizes.
        unsafe {
            let (ar, ac, alda) = if p.layout.w_trans { (k, n, k) } else { (n, k, n) };
            let (br, bc, bld) = if p.layout.x_trans { (m, k, m) } else { (k, m, k) };
            check((f.hipblasLtMatrixLayoutCreate)(&mut d.a, t, ar, ac, alda as i64), "hipblasLtMatrixLayoutCreate")?;
            check((f.hipblasLtMatrixLayoutCreate)(&mut d.b, t, br, bc, bld as i64), "hipblasLtMatrixLayoutCreate")?;
            check((f.hipblasLtMatrixLayoutCreate)(&mut d.c, t, n, m, n as i64), "hipblasLtMatrixLayoutCreate")?;
            check((f.hipblasLtMatmulDescCreate)(&mut d.op, sys::HIPBLAS_COMPUTE_32F, sys::HIP_R_32F), "hipblasLtMatmulDescCreate")?;
            check((f.hipblasLtMatmulPreferenceCreate)(&mut d.pref), "hipblasLtMatmulPreferenceCreate")?;
            for (attr, v) in [(sys::HIPBLASLT_MATMUL_DESC_TRANSA, ta), (sys::HIPBLASLT_MATMUL_DESC_TRANSB, tb)] {
                check((f.hipblasLtMatmulDescSetAttribute)(d.op, attr, &v as *const i32 as *const c_void, 4), "hipblasLtMatmulDescSetAttribute")?;
            }
            let ws = WORKSPACE as u64;
            check(
                (f.hipblasLtMatmulPreferenceSetAttribute)(d.pref, sys::HIPBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws as *const u64 as *const c_void, 8),
                "hipblasLtMatmulPreferenceSetAttribute",
            )?;
            if p.batch > 1 {
                let count = p.batch as i32;
                for (layout, stride) in [(d.a, (p.n * p.k) as i64), (d.b, (p.m * p.k) as i64), (d.c, (p.m * p.n) as i64)] {
                    check(
                        (f.hipblasLtMatrixLayoutSetAttribute)(layout, sys::HIPBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count as *const i32 as *const c_void, 4),
                        "hipblasLtMatrixLayoutSetAttribute",
                    )?;
                    check(
                        (f.hipblasLtMatrixLayoutSetAttribute)(
                            layout,
                            sys::HIPBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                            &stride as *const i64 as *const c_void,
                            8,
                        ),
                        "hipblasLtMatrixLayoutSetAttribute",
                    )?;
                }
            }
        }
        Ok(d)
    }

    /// Every algorithm hipBLASLt offers for the problem, heuristic picks first, with the
    /// workspace each needs (within WORKSPACE).
    pub fn algorithms(&self, lt: &Lt) -> Result<Vec<(Algo, usize)>> {
        let mut res: Vec<sys::hipblasLtMatmulHeuristicResult_t> = vec![
            sys::hipblasLtMatmulHeuristicResult_t {
                algo: Algo::default(),
                workspaceSize: 0,
                state: 0,
                wavesCount: 0.0,
                reserved: [0; 4],
            };
            REQUEST
        ];
        let mut got = 0;
        // SAFETY: the result array holds REQUEST entries.
        check(
            unsafe {
                (self.l.lt.hipblasLtMatmulAlgoGetHeuristic)(
                    lt.handle, self.op, self.a, self.b, self.c, self.c, self.pref, REQUEST as i32, res.as_mut_ptr(), &mut got,
                )
            },
            "hipblasLtMatmulAlgoGetHeuristic",
        )?;
        Ok(res
            .into_iter()
            .take(got.clamp(0, REQUEST as i32) as usize)
            .filter(|r| r.state == sys::HIPBLAS_STATUS_SUCCESS && r.workspaceSize <= WORKSPACE)
            .map(|r| (r.algo, r.workspaceSize))
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn matmul(&self, lt: &Lt, algo: &Algo, x: &DevBuf, w: &DevBuf, y: &DevBuf, ws: &DevBuf, gpu: &Gpu) -> Result<()> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: buffers hold the problem's operands (checked by the backend).
        check(
            unsafe {
                (self.l.lt.hipblasLtMatmul)(
                    lt.handle,
                    self.op,
                    &alpha as *const f32 as *const c_void,
                    w.ptr as *const c_void,
                    self.a,
                    x.ptr as *const c_void,
                    self.b,
                    &beta as *const f32 as *const c_void,
                    y.ptr as *const c_void,
                    self.c,
                    y.ptr as *mut c_void,
                    self.c,
                    algo,
                    ws.ptr as *mut c_void,
                    WORKSPACE,
                    gpu.stream,
                )
            },
            "hipblasLtMatmul",
        )
    }
}

impl Drop for Desc {
    fn drop(&mut self) {
        let f = &self.l.lt;
        // SAFETY: each created at most once in new(); null ones were never created.
        unsafe {
            if !self.pref.is_null() {
                let _ = (f.hipblasLtMatmulPreferenceDestroy)(self.pref);
            }
            for layout in [self.a, self.b, self.c] {
                if !layout.is_null() {
                    let _ = (f.hipblasLtMatrixLayoutDestroy)(layout);
                }
            }
            if !self.op.is_null() {
                let _ = (f.hipblasLtMatmulDescDestroy)(self.op);
            }
        }
    }
}

/// `major*100000 + minor*100 + patch` (hipblasLtGetVersion) as `major.minor.patch`.
pub fn dotted(version: i32) -> String {
    format!("{}.{}.{}", version / 100000, version / 100 % 1000, version % 100)
}

/// The solution index hipBLASLt keeps in an algorithm: int32 in bytes 0..4.
pub fn index_of(a: &Algo) -> i32 {
    i32::from_le_bytes([a.data[0], a.data[1], a.data[2], a.data[3]])
}

/// The 24 bytes of the blob, in memory order.
fn blob_bytes(a: &Algo) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..16].copy_from_slice(&a.data);
    b[16..].copy_from_slice(&(a.max_workspace_bytes as u64).to_le_bytes());
    b
}

/// `rocm:hipblaslt:<version>:<48 hex digits>`.
pub fn encode_id(version: i32, a: &Algo) -> String {
    let hex: String = blob_bytes(a).iter().map(|b| format!("{b:02x}")).collect();
    format!("rocm:hipblaslt:{version}:{hex}")
}

/// The algorithm of an id, if it was written by hipBLASLt `version`.
pub fn decode_id(id: &str, version: i32) -> std::result::Result<Algo, String> {
    let parts: Vec<&str> = id.split(':').collect();
    let ["rocm", "hipblaslt", ver, hex] = parts.as_slice() else {
        return Err(format!("'{id}' is not a hipBLASLt kernel id (rocm:hipblaslt:<version>:<blob>)"));
    };
    if hex.len() != 48 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{id}': the algo blob must be 48 hex digits"));
    }
    if ver.parse::<i32>().ok() != Some(version) {
        return Err(format!("tuned with hipBLASLt {ver}, this is {version}: re-tune"));
    }
    let mut b = [0u8; 24];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    let mut data = [0u8; 16];
    data.copy_from_slice(&b[..16]);
    let ws = u64::from_le_bytes(b[16..].try_into().expect("8 bytes"));
    Ok(Algo { data, max_workspace_bytes: ws as usize })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::KernelId;
    use crate::problem::Layout;

    #[test]
    fn algo_blob_round_trips_through_the_id() {
        let mut data = [0u8; 16];
        data[..4].copy_from_slice(&56537i32.to_le_bytes());
        data[4..].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff]);
        let a = Algo { data, max_workspace_bytes: 32 << 20 };
        let id = encode_id(100100, &a);
        assert!(id.starts_with("rocm:hipblaslt:100100:d9dc0000"), "{id}");
        assert_eq!(id.len(), "rocm:hipblaslt:100100:".len() + 48);
        assert_eq!(decode_id(&id, 100100).unwrap(), a);
        assert_eq!(index_of(&a), 56537);
        assert!(decode_id(&id, 100200).unwrap_err().contains("re-tune"));
        assert!(decode_id("rocm:hipblaslt:100100:abc", 100100).is_err());
        assert!(decode_id(&format!("rocm:hipblaslt:100100:{}", "zz".repeat(24)), 100100).is_err());
        assert!(decode_id("rocm:rocblas:100100:00", 100100).is_err());
        // TunableOp export reads the same index out of the id (src/tunableop.rs).
        assert_eq!(crate::tunableop::kernel_to(&KernelId::new(id), Layout::TN).unwrap(), "Gemm_Hipblaslt_TN_56537");
        assert_eq!(dotted(100100), "1.1.0");
        assert_eq!(dotted(1102), "0.11.2");
        let neg = Algo { data: [0xff; 16], max_workspace_bytes: 0 };
        assert_eq!(index_of(&neg), -1);
    }
}
