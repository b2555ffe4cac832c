//! rocBLAS: the handle, `rocblas_gemm_ex` (batched problems:
//! `rocblas_gemm_strided_batched_ex`) with the default or a chosen solution, the solutions
//! that can solve a problem (`..._get_solutions`, count then fill).
//! Shared/reference/apis.md §3.
//!
//! Whether a solution can solve a problem is asked only through that list (it holds the
//! solutions whose predicates accept the problem), never with `rocblas_gemm_ex` and
//! `rocblas_gemm_flags_check_solution_index`: rocBLAS honours that flag on its Tensile path
//! only, and when it routes the GEMM to hipBLASLt (`ROCBLAS_USE_HIPBLASLT=1`, or by default
//! on gfx12) it runs the GEMM anyway (rocBLAS `tensile_host.cpp`, `hipblaslt_host.cpp`), which
//! on stand-in operands would read and write past them.
//!
//! Solution indices are valid only for the same rocBLAS build, and they name hipBLASLt
//! solutions when rocBLAS routes GEMMs through hipBLASLt (`ROCBLAS_USE_HIPBLASLT`): both
//! go into the table's validators.

use super::hip::{DevBuf, Gpu};
use super::sys::{self, Libs};
use crate::error::{Error, Result};
use crate::problem::{DType, Problem};
use std::ffi::{c_char, c_void};

fn check(s: sys::rocblas_status, what: &str) -> Result<()> {
    if s == sys::rocblas_status_success {
        Ok(())
    } else {
        Err(Error::runtime(format!("{what}: {}", status_name(s))))
    }
}

pub fn status_name(s: sys::rocblas_status) -> String {
    sys::ROCBLAS_STATUS_NAMES.get(s as usize).map_or_else(|| format!("rocblas_status {s}"), |n| n.to_string())
}

fn datatype(d: DType) -> sys::rocblas_datatype {
    match d {
        DType::F32 => sys::rocblas_datatype_f32_r,
        DType::F16 => sys::rocblas_datatype_f16_r,
        DType::BF16 => sys::rocblas_datatype_bf16_r,
    }
}

fn op(trans: bool) -> sys::rocblas_operation {
    if trans {
        sys::rocblas_operation_transpose
    } else {
        sys::rocblas_operation_none
    }
}

/// The environment's `ROCBLAS_USE_HIPBLASLT` ("unset" when absent): it changes what the
/// solution indices mean, so rows tuned under another setting are not reused.
pub fn use_hipblaslt() -> String {
    std::env::var("ROCBLAS_USE_HIPBLASLT").unwrap_or_else(|_| "unset".into())
}

/// Which solution a `gemm` call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solution {
    Default,
    Index(i32),
}

pub struct Blas {
    l: &'static Libs,
    handle: sys::rocblas_handle,
    pub version: String,
}

// SAFETY: the handle is used under the backend's lock only.
unsafe impl Send for Blas {}
unsafe impl Sync for Blas {}

/// `gemm_ex_call!((table.f)(handle, p, w, x, y, rest...))` calls `rocblas_gemm_ex` or
/// `rocblas_gemm_ex_get_solutions` (same first 20 parameters) for `p` on W, X, Y at device
/// addresses `w`, `x`, `y`: `Y = X·Wᵀ` as column-major `C = op(W)·op(X)`, alpha 1, beta
/// 0, C and D both Y, f32 compute; `$rest` are the function's own trailing arguments.
/// `gemm_ex_call!(batched (table.f)(...))` calls the strided batched forms for all of
/// `p`'s batch items (each matrix followed by its stride, the count after D). One place
/// for the long argument lists, so the queries and the runs cannot drift apart.
macro_rules! gemm_ex_call {
    (($f:expr)($handle:expr, $p:expr, $w:expr, $x:expr, $y:expr, $($rest:expr),+)) => {{
        let (p, a): (&Problem, GemmArgs) = ($p, GemmArgs::of($p));
        ($f)(
            $handle, a.op_w, a.op_x, p.n as i32, p.m as i32, p.k as i32,
            a.alpha, $w as *const c_void, a.t, a.lda,
            $x as *const c_void, a.t, a.ldb,
            a.beta, $y as *const c_void, a.t, a.ldc,
            $y as *mut c_void, a.t, a.ldc,
            sys::rocblas_datatype_f32_r,
            $($rest),+
        )
    }};
    (batched ($f:expr)($handle:expr, $p:expr, $w:expr, $x:expr, $y:expr, $($rest:expr),+)) => {{
        let (p, a): (&Problem, GemmArgs) = ($p, GemmArgs::of($p));
        let (sw, sx, sy) = ((p.n * p.k) as i64, (p.m * p.k) as i64, (p.m * p.n) as i64);
        ($f)(
            $handle, a.op_w, a.op_x, p.n as i32, p.m as i32, p.k as i32,
            a.alpha, $w as *const c_void, a.t, a.lda, sw,
            $x as *const c_void, a.t, a.ldb, sx,
            a.beta, $y as *const c_void, a.t, a.ldc, sy,
            $y as *mut c_void, a.t, a.ldc, sy,
            p.batch as i32,
            sys::rocblas_datatype_f32_r,
            $($rest),+
        )
    }};
}

/// What every GEMM call of `p` passes: operations, types, leading dimensions, and alpha 1
/// and beta 0 (host pointers to statics, valid for any call).
struct GemmArgs {
    op_w: sys::rocblas_operation,
    op_x: sys::rocblas_operation,
    t: sys::rocblas_datatype,
    lda: i32,
    ldb: i32,
    ldc: i32,
    alpha: *const c_void,
    beta: *const c_void,
}

static ONE: f32 = 1.0;
static ZERO: f32 = 0.0;

impl GemmArgs {
    fn of(p: &Problem) -> GemmArgs {
        GemmArgs {
            op_w: op(p.layout.w_trans),
            op_x: op(p.layout.x_trans),
            t: datatype(p.dtype),
            lda: (if p.layout.w_trans { p.k } else { p.n }) as i32,
            ldb: (if p.layout.x_trans { p.m } else { p.k }) as i32,
            ldc: p.n as i32,
            alpha: &ONE as *const f32 as *const c_void,
            beta: &ZERO as *const f32 as *const c_void,
        }
    }
}

impl Blas {
    /// A handle on `stream`, host pointer mode (alpha/beta on the host: graph-capturable),
    /// Tensile loaded up front so the first timed call does not pay for it.
    pub fn new(gpu: &Gpu) -> Result<Blas> {
        let l = gpu.l;
        let version = version_string(l)?;
        let mut handle: sys::rocblas_handle = std::ptr::null_mut();
        let b = &l.blas;
        // SAFETY: creates one handle (destroyed in Drop), then plain setters.
        unsafe {
            (b.rocblas_initialize)();
            check((b.rocblas_create_handle)(&mut handle), "rocblas_create_handle")?;
        }
        let blas = Blas { l, handle, version };
        // SAFETY: the handle is valid; the stream outlives it (the backend drops it last).
        unsafe {
            check((b.rocblas_set_stream)(handle, gpu.stream), "rocblas_set_stream")?;
            check((b.rocblas_set_pointer_mode)(handle, sys::rocblas_pointer_mode_host), "rocblas_set_pointer_mode")?;
        }
        Ok(blas)
    }

    /// `Y = X·Wᵀ` for `p` as column-major `C = op(W)·op(X)`: `rocblas_gemm_ex`, or for a
    /// batched problem one `rocblas_gemm_strided_batched_ex` (what PyTorch's bmm calls;
    /// its solution indices are those its own query lists).
    fn gemm_ex(&self, p: &Problem, x: u64, w: u64, y: u64, s: Solution) -> sys::rocblas_status {
        let (algo, index) = match s {
            Solution::Default => (sys::rocblas_gemm_algo_standard, 0),
            Solution::Index(i) => (sys::rocblas_gemm_algo_solution_index, i),
        };
        let flags = sys::rocblas_gemm_flags_none;
        let b = &self.l.blas;
        // SAFETY: the operands hold the problem's elements (checked by the backend), batch
        // items at the strides given; C and D are Y (beta = 0).
        unsafe {
            if p.batch == 1 {
                gemm_ex_call!((b.rocblas_gemm_ex)(self.handle, p, w, x, y, algo, index, flags))
            } else {
                gemm_ex_call!(batched(b.rocblas_gemm_strided_batched_ex)(self.handle, p, w, x, y, algo, index, flags))
            }
        }
    }

    pub fn gemm(&self, p: &Problem, x: &DevBuf, w: &DevBuf, y: &DevBuf, s: Solution) -> Result<()> {
        check(self.gemm_ex(p, x.ptr, w.ptr, y.ptr, s), "rocblas_gemm_ex")
    }

    /// Every solution index that can solve `p` (count, then fill; nothing runs, on either of
    /// rocBLAS's paths). `scratch` stands in for the operands, which are not read.
    pub fn solutions(&self, p: &Problem, scratch: &DevBuf) -> Result<Vec<i32>> {
        let s = scratch.ptr;
        let (algo, flags, b) = (sys::rocblas_gemm_algo_solution_index, sys::rocblas_gemm_flags_none, &self.l.blas);
        let query = |list: *mut i32, size: &mut i32| {
            // SAFETY: `list` is null (count query) or holds `*size` entries.
            unsafe {
                if p.batch == 1 {
                    gemm_ex_call!((b.rocblas_gemm_ex_get_solutions)(self.handle, p, s, s, s, algo, flags, list, size))
                } else {
                    gemm_ex_call!(batched(b.rocblas_gemm_strided_batched_ex_get_solutions)(
                        self.handle, p, s, s, s, algo, flags, list, size
                    ))
                }
            }
        };
        let mut count = 0;
        check(query(std::ptr::null_mut(), &mut count), "rocblas_gemm_ex_get_solutions (count)")?;
        let mut list = vec![0i32; count.max(0) as usize];
        if !list.is_empty() {
            check(query(list.as_mut_ptr(), &mut count), "rocblas_gemm_ex_get_solutions")?;
            list.truncate(count.max(0) as usize);
        }
        Ok(list)
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: created in new(), destroyed once.
        unsafe {
            let _ = (self.l.blas.rocblas_destroy_handle)(self.handle);
        }
    }
}

/// `rocblas_get_version_string` (what TunableOp records as ROCBLAS_VERSION).
pub fn version_string(l: &Libs) -> Result<String> {
    let mut len = 0usize;
    // SAFETY: size query, then a buffer of that size.
    unsafe {
        check((l.blas.rocblas_get_version_string_size)(&mut len), "rocblas_get_version_string_size")?;
        let mut buf = vec![0 as c_char; len.max(1)];
        check((l.blas.rocblas_get_version_string)(buf.as_mut_ptr(), buf.len()), "rocblas_get_version_string")?;
        Ok(std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().trim().to_string())
    }
}
