//! The two CPU GEMM crates as candidates: `gemm` (candle's CPU matmul; f32 and f16
//! native, bf16 through f32) and `matrixmultiply` (BLIS-style, f32 only; threaded here by
//! splitting N into panels, since its own threading reads a process-wide setting once).

use super::tensor::HostTensor;
use crate::problem::Problem;
use gemm::Parallelism;
use rayon::prelude::*;

/// `Y = X · W^T` through the `gemm` crate. Its convention is `dst = alpha·dst +
/// beta·lhs·rhs` (alpha scales dst, the opposite of BLAS), with lhs = X `[M,K]` and
/// rhs = W^T `[K,N]` given by strides.
pub fn gemm_crate(p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor, threads: usize) {
    let par = if threads <= 1 { Parallelism::None } else { Parallelism::Rayon(threads) };
    match (x, w, y) {
        (HostTensor::F16(xv), HostTensor::F16(wv), HostTensor::F16(yv)) => {
            gemm_typed(p, xv, wv, yv, half::f16::ZERO, half::f16::ONE, par)
        }
        (x, w, y) => {
            // f32 natively; bf16 converted to f32 and back (the crate has no bf16).
            let (xf, wf) = (x.as_f32(), w.as_f32());
            y.write_f32(|yf| gemm_typed(p, &xf, &wf, yf, 0.0f32, 1.0f32, par));
        }
    }
}

/// One `gemm::gemm` call per batch item, in the element type the crate computes in.
pub(crate) fn gemm_typed<T: 'static + Copy>(p: &Problem, x: &[T], w: &[T], y: &mut [T], zero: T, one: T, par: Parallelism) {
    let (xs, ws) = (p.x_strides(), p.w_strides());
    for b in 0..p.batch {
        // SAFETY: every stride and extent below stays inside the operand of batch item `b`,
        // whose lengths Problem guarantees (checked by the backend before running).
        unsafe {
            gemm_raw(
                p.m, p.n, p.k,
                y[b * p.m * p.n..].as_mut_ptr(), p.n,
                x[b * p.m * p.k..].as_ptr(), xs.col, xs.row,
                w[b * p.n * p.k..].as_ptr(), ws.row, ws.col,
                zero, one, par,
            )
        }
    }
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`, dst row-major with row stride `dst_rs`, lhs and
/// rhs given by column and row strides (in elements).
///
/// SAFETY: every element addressed by the extents and strides must lie inside the
/// operands, and no other thread may touch the dst elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw<T: 'static + Copy>(
    m: usize, n: usize, k: usize,
    dst: *mut T, dst_rs: usize,
    lhs: *const T, lhs_cs: usize, lhs_rs: usize,
    rhs: *const T, rhs_cs: usize, rhs_rs: usize,
    zero: T, one: T, par: Parallelism,
) {
    gemm::gemm(
        m, n, k,
        dst, 1, dst_rs as isize, false,
        lhs, lhs_cs as isize, lhs_rs as isize,
        rhs, rhs_cs as isize, rhs_rs as isize,
        zero, one, false, false, false, par,
    )
}

/// `Y = X · W^T` through `matrixmultiply::sgemm`, N split into one panel per thread.
pub fn matrixmultiply(p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor, threads: usize) {
    let (xf, wf) = (x.as_f32(), w.as_f32());
    y.write_f32(|yf| matrixmultiply_f32(p, &xf, &wf, yf, threads));
}

fn matrixmultiply_f32(p: &Problem, xf: &[f32], wf: &[f32], yf: &mut [f32], threads: usize) {
    let (xs, ws) = (p.x_strides(), p.w_strides());
    let panel = p.n.div_ceil(threads.max(1)).max(1);
    for b in 0..p.batch {
        let xb = &xf[b * p.m * p.k..(b + 1) * p.m * p.k];
        let wb = &wf[b * p.n * p.k..(b + 1) * p.n * p.k];
        let yb = SendPtr(yf[b * p.m * p.n..].as_mut_ptr());
        let run = |j0: usize| {
            let nj = panel.min(p.n - j0);
            // SAFETY: each panel writes only columns j0..j0+nj of Y; panels are disjoint,
            // and all reads stay inside X and W of this batch item.
            unsafe {
                matrixmultiply::sgemm(
                    p.m, p.k, nj, 1.0,
                    xb.as_ptr(), xs.row as isize, xs.col as isize,
                    wb.as_ptr().add(j0 * ws.row), ws.col as isize, ws.row as isize,
                    0.0,
                    yb.get().add(j0), p.n as isize, 1,
                )
            }
        };
        if threads <= 1 {
            run(0);
        } else {
            (0..p.n).step_by(panel).collect::<Vec<_>>().into_par_iter().for_each(run);
        }
    }
}

/// A raw pointer that may cross threads; users guarantee disjoint writes.
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// A method (not field access) so closures capture the whole Send wrapper.
    pub fn get(self) -> *mut T {
        self.0
    }
}
