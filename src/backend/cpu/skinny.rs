//! Our own decode kernel: `Y[M,N] = X[M,K] · W[N,K]^T` for small M (≤ 16), layout TN.
//!
//! Decode is memory-bound: W (megabytes) streams from memory once while X (a few rows)
//! stays in L1. So the kernel walks W row by row, each W row loaded once and dotted with
//! `mt` rows of X at a time, and splits N across threads. bf16/f16 weights are widened
//! to f32 on the fly, which halves the bytes streamed compared with f32 weights.
//!
//! No crate offers a GEMV-shaped kernel with this loop order and on-the-fly widening
//! (`gemm` and `matrixmultiply` pack panels, which costs more than it saves at M ≤ 16),
//! hence written here. The inner loop is written once over a small `Simd` trait with
//! AVX-512, AVX2+FMA and portable implementations (LLVM does not vectorize lane-array
//! FMAs on its own), and the instruction set is part of the kernel id, checked at run
//! time before use.

use super::libs::SendPtr;
use super::sysinfo::Isa;
use super::tensor::HostTensor;
use super::vector::{self as simd, F32s};
use crate::problem::Problem;
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;

/// Largest M the kernel is offered for.
pub const MAX_M: usize = 16;

/// Parameters of one variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Skinny {
    pub isa: Isa,
    /// X rows dotted per loaded W row.
    pub mt: usize,
    pub threads: usize,
}

pub const TILES: [usize; 3] = [1, 4, 8];

impl Skinny {
    pub fn supports(p: &Problem) -> bool {
        p.m <= MAX_M && p.layout.w_trans && !p.layout.x_trans
    }

    pub fn run(&self, p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor) {
        assert!(Skinny::supports(p), "skinny kernel called for unsupported {p}");
        let xf = x.as_f32();
        let mut yf = vec![0.0f32; p.m * p.n];
        for b in 0..p.batch {
            let xb = &xf[b * p.m * p.k..(b + 1) * p.m * p.k];
            let (n, k) = (p.n, p.k);
            match w {
                HostTensor::F32(v) => self.run_batch(p, xb, &v[b * n * k..(b + 1) * n * k], &mut yf),
                HostTensor::BF16(v) => self.run_batch(p, xb, &v[b * n * k..(b + 1) * n * k], &mut yf),
                HostTensor::F16(v) => self.run_batch(p, xb, &v[b * n * k..(b + 1) * n * k], &mut yf),
                HostTensor::Quant(_) => unreachable!("resolve refuses packed weights"),
            }
            let out = b * p.m * p.n..(b + 1) * p.m * p.n;
            match y {
                HostTensor::F32(v) => v[out].copy_from_slice(&yf),
                HostTensor::BF16(v) => v[out].convert_from_f32_slice(&yf),
                HostTensor::F16(v) => v[out].convert_from_f32_slice(&yf),
                HostTensor::Quant(_) => unreachable!("packed weights are never an output"),
            }
        }
    }

    fn run_batch<E: Widen>(&self, p: &Problem, x: &[f32], w: &[E], y: &mut [f32]) {
        let (n, k) = (p.n, p.k);
        // Enough tasks to balance the threads, each a few hundred KB of W.
        let tasks = if self.threads <= 1 { 1 } else { (self.threads * 4).min(n) };
        let rows_per_task = n.div_ceil(tasks);
        let yp = SendPtr(y.as_mut_ptr());
        let task = |t: usize| {
            let j0 = t * rows_per_task;
            let j1 = (j0 + rows_per_task).min(n);
            if j0 >= j1 {
                return;
            }
            let job = Job { x, w: &w[j0 * k..j1 * k], m: p.m, k, n, j0, mt: self.mt, y: yp };
            // SAFETY: the ISA was checked when the kernel was resolved (`Isa::available`);
            // the job writes only columns j0..j1 of Y, disjoint across tasks.
            unsafe {
                match self.isa {
                    Isa::Avx512 => job_avx512(&job),
                    Isa::Avx2 => job_avx2(&job),
                    Isa::Portable => job.run::<simd::Scalar>(),
                }
            }
        };
        if tasks == 1 {
            task(0);
        } else {
            (0..tasks).into_par_iter().for_each(task);
        }
    }
}

/// Weight element types widened to f32 on the fly.
pub trait Widen: Copy + Send + Sync {
    fn widen(src: &[Self], dst: &mut [f32]);
    /// Borrow as f32 when no conversion is needed.
    fn as_f32(src: &[Self]) -> Option<&[f32]>;
}
impl Widen for f32 {
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src)
    }
    fn as_f32(src: &[f32]) -> Option<&[f32]> {
        Some(src)
    }
}
impl Widen for bf16 {
    #[inline(always)]
    fn widen(src: &[bf16], dst: &mut [f32]) {
        // A shift, which vectorizes in the caller's instruction set.
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits((s.to_bits() as u32) << 16);
        }
    }
    fn as_f32(_: &[bf16]) -> Option<&[f32]> {
        None
    }
}
impl Widen for f16 {
    fn widen(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst) // F16C when present
    }
    fn as_f32(_: &[f16]) -> Option<&[f32]> {
        None
    }
}

struct Job<'a, E> {
    x: &'a [f32],
    w: &'a [E],
    m: usize,
    k: usize,
    n: usize,
    j0: usize,
    mt: usize,
    y: SendPtr<f32>,
}

impl<E: Widen> Job<'_, E> {
    #[inline(always)]
    unsafe fn run<S: F32s>(&self) {
        let (k, m) = (self.k, self.m);
        let mut wide = vec![0.0f32; if E::as_f32(self.w).is_some() { 0 } else { k }];
        for (r, wrow) in self.w.chunks_exact(k).enumerate() {
            let wrow: &[f32] = match E::as_f32(wrow) {
                Some(f) => f,
                None => {
                    E::widen(wrow, &mut wide);
                    &wide
                }
            };
            let j = self.j0 + r;
            let mut i = 0;
            while i < m {
                let left = m - i;
                let y = self.y.get();
                macro_rules! tile {
                    ($t:literal) => {{
                        let d = dots::<S, $t>(self.x, i, k, wrow);
                        for t in 0..$t {
                            *y.add((i + t) * self.n + j) = d[t];
                        }
                        i += $t;
                    }};
                }
                match (self.mt, left) {
                    (8.., 8..) => tile!(8),
                    (4.., 4..) => tile!(4),
                    (2.., 2..) => tile!(2),
                    _ => tile!(1),
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn job_avx512<E: Widen>(job: &Job<'_, E>) {
    job.run::<simd::Avx512>()
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn job_avx2<E: Widen>(job: &Job<'_, E>) {
    job.run::<simd::Avx2>()
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn job_avx512<E: Widen>(job: &Job<'_, E>) {
    job.run::<simd::Scalar>()
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn job_avx2<E: Widen>(job: &Job<'_, E>) {
    job.run::<simd::Scalar>()
}

/// Dot products of X rows `i0..i0+T` with one W row: two accumulator vectors per row
/// (enough independent FMAs in flight), then a horizontal sum and a scalar tail.
///
/// SAFETY: the caller's instruction set must support `S`; `x` holds rows `i0..i0+T` of
/// length `k`, `w` holds `k` elements.
#[inline(always)]
unsafe fn dots<S: F32s, const T: usize>(x: &[f32], i0: usize, k: usize, w: &[f32]) -> [f32; T] {
    debug_assert!(x.len() >= (i0 + T) * k && w.len() >= k);
    let xp: [*const f32; T] = std::array::from_fn(|t| x.as_ptr().add((i0 + t) * k));
    let wp = w.as_ptr();
    let step = 2 * S::LANES;
    let body = k / step * step;
    let mut a0 = [S::zero(); T];
    let mut a1 = [S::zero(); T];
    let mut c = 0;
    while c < body {
        let w0 = S::load(wp.add(c));
        let w1 = S::load(wp.add(c + S::LANES));
        for t in 0..T {
            a0[t] = S::fma(S::load(xp[t].add(c)), w0, a0[t]);
            a1[t] = S::fma(S::load(xp[t].add(c + S::LANES)), w1, a1[t]);
        }
        c += step;
    }
    std::array::from_fn(|t| {
        let mut s = S::hsum(S::add(a0[t], a1[t]));
        for kk in body..k {
            s += *xp[t].add(kk) * *wp.add(kk);
        }
        s
    })
}

