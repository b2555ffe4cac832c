//! Our own decode kernel: `Y[M,N] = X[M,K] · W[N,K]^T` for small M (≤ 16), layout TN.
//!
//! Decode is memory-bound: W (megabytes) streams from memory once while X (a few rows)
//! stays in cache. So the kernel walks W in blocks of `nr` rows (1, 2 or 4), each block
//! loaded once and dotted with `mt` rows of X at a time, prefetches W into L2 ahead of
//! the loads, and splits N across threads. bf16/f16 weights are widened to f32 in
//! registers as they are loaded, which halves the bytes streamed compared with f32.
//!
//! No crate offers a GEMV-shaped kernel with this loop order and on-the-fly widening
//! (`gemm` and `matrixmultiply` pack panels, which costs more than it saves at M ≤ 16),
//! hence written here. The inner loop is written once over a small `Simd` trait with
//! AVX-512, AVX2+FMA and portable implementations (LLVM does not vectorize lane-array
//! FMAs on its own), and the instruction set is part of the kernel id, checked at run
//! time before use.

use super::libs::SendPtr;
use super::quant::split_rows;
use super::sysinfo::Isa;
use super::tensor::HostTensor;
use super::vector::{self as simd, F32s};
use crate::problem::Problem;
use half::{bf16, f16};

/// Largest M the kernel is offered for.
pub const MAX_M: usize = 16;

/// Parameters of one variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Skinny {
    pub isa: Isa,
    /// X rows dotted per loaded W row.
    pub mt: usize,
    /// W rows dotted together: each loaded X vector serves `nr` W rows, which cuts the
    /// X traffic (from L2 once X outgrows L1) and the loads per FMA by `nr`.
    pub nr: usize,
    pub threads: usize,
}

pub const TILES: [usize; 3] = [1, 4, 8];
pub const ROWS: [usize; 3] = [1, 2, 4];

impl Skinny {
    /// Ids that parse: at most 16 accumulators (`mt * nr`).
    pub fn valid(mt: usize, nr: usize) -> bool {
        TILES.contains(&mt) && ROWS.contains(&nr) && mt * nr <= 16
    }

    /// Variants the tuner tries: with W rows blocked (`nr > 1`), the accumulators, the
    /// `nr` W vectors and one X vector must fit the registers (32 with AVX-512, 16 with
    /// AVX2, where 4x4 and 8x2 would spill). `nr = 1` keeps every tile it always had.
    pub fn offered(isa: Isa, mt: usize, nr: usize) -> bool {
        Skinny::valid(mt, nr) && (nr == 1 || isa == Isa::Avx512 || mt * nr <= 8)
    }

    pub fn supports(p: &Problem) -> bool {
        p.m <= MAX_M && p.layout.w_trans && !p.layout.x_trans
    }

    pub fn run(&self, p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor) {
        assert!(Skinny::supports(p), "skinny kernel called for unsupported {p}");
        let xf = x.as_f32();
        let (m, n, k) = (p.m, p.n, p.k);
        // In place for f32 outputs, through one converted copy for half ones.
        y.write_f32(|yf| {
            for b in 0..p.batch {
                let (xb, wb) = (&xf[b * m * k..(b + 1) * m * k], b * n * k..(b + 1) * n * k);
                let yb = &mut yf[b * m * n..(b + 1) * m * n];
                match w {
                    HostTensor::F32(v) => self.run_batch(p, xb, &v[wb], yb),
                    HostTensor::BF16(v) => self.run_batch(p, xb, &v[wb], yb),
                    HostTensor::F16(v) => self.run_batch(p, xb, &v[wb], yb),
                    HostTensor::Quant(_) => unreachable!("resolve refuses packed weights"),
                }
            }
        });
    }

    fn run_batch<E: Weight>(&self, p: &Problem, x: &[f32], w: &[E], y: &mut [f32]) {
        let (n, k) = (p.n, p.k);
        let yp = SendPtr(y.as_mut_ptr());
        split_rows(n, self.threads, self.nr, |j0, j1| {
            let job = Job { x, w: &w[j0 * k..j1 * k], m: p.m, k, n, j0, mt: self.mt, nr: self.nr, y: yp };
            // SAFETY: the ISA was checked when the kernel was resolved (`Isa::available`);
            // the job writes only columns j0..j1 of Y, disjoint across tasks.
            unsafe {
                match self.isa {
                    Isa::Avx512 => job_avx512(&job),
                    Isa::Avx2 => job_avx2(&job),
                    Isa::Portable => job.run::<simd::Scalar>(),
                }
            }
        });
    }
}

/// Weight element types, widened to f32 in registers as they are loaded (no staging
/// buffer: a widened copy would be stored and loaded again, which at bf16 cost more than
/// the halved memory traffic saved).
pub trait Weight: Copy + Send + Sync {
    /// `S::LANES` weights from `p` as f32.
    ///
    /// # Safety
    /// As `F32s::load`: inside code compiled for `S`, `S::LANES` values readable at `p`.
    unsafe fn load<S: F32s>(p: *const Self) -> S::V;
    fn to_f32(self) -> f32;
}
impl Weight for f32 {
    #[inline(always)]
    unsafe fn load<S: F32s>(p: *const f32) -> S::V {
        S::load(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}
impl Weight for bf16 {
    #[inline(always)]
    unsafe fn load<S: F32s>(p: *const bf16) -> S::V {
        S::load_bf16(p as *const u16)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}
impl Weight for f16 {
    #[inline(always)]
    unsafe fn load<S: F32s>(p: *const f16) -> S::V {
        S::load_f16(p as *const u16)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
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
    nr: usize,
    y: SendPtr<f32>,
}

impl<E: Weight> Job<'_, E> {
    #[inline(always)]
    unsafe fn run<S: F32s>(&self) {
        let k = self.k;
        let rows = self.w.len() / k;
        let mut r = 0;
        while r < rows {
            r += match (self.nr, rows - r) {
                (4.., 4..) => self.rows::<S, 4>(r),
                (2.., 2..) => self.rows::<S, 2>(r),
                _ => self.rows::<S, 1>(r),
            };
        }
    }

    /// Y columns of W rows `r..r + R` of this job, for every X row; returns R.
    #[inline(always)]
    unsafe fn rows<S: F32s, const R: usize>(&self, r: usize) -> usize {
        let (k, m) = (self.k, self.m);
        let group = &self.w[r * k..(r + R) * k];
        simd::prefetch_ahead(group.as_ptr() as *const u8, std::mem::size_of_val(group), self.w.as_ptr_range().end as *const u8);
        let w: [*const E; R] = std::array::from_fn(|q| group[q * k..].as_ptr());
        let j = self.j0 + r;
        let y = self.y.get();
        let mut i = 0;
        while i < m {
            macro_rules! tile {
                ($t:literal) => {{
                    let d = dots::<S, E, R, $t>(self.x, i, k, w);
                    for (q, dq) in d.iter().enumerate() {
                        for (t, v) in dq.iter().enumerate() {
                            *y.add((i + t) * self.n + j + q) = *v;
                        }
                    }
                    i += $t;
                }};
            }
            match (self.mt, m - i) {
                (8.., 8..) => tile!(8),
                (4.., 4..) => tile!(4),
                (2.., 2..) => tile!(2),
                _ => tile!(1),
            }
        }
        R
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn job_avx512<E: Weight>(job: &Job<'_, E>) {
    job.run::<simd::Avx512>()
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn job_avx2<E: Weight>(job: &Job<'_, E>) {
    job.run::<simd::Avx2>()
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn job_avx512<E: Weight>(job: &Job<'_, E>) {
    job.run::<simd::Scalar>()
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn job_avx2<E: Weight>(job: &Job<'_, E>) {
    job.run::<simd::Scalar>()
}

/// Dot products of X rows `i0..i0+T` with W rows `w[0..R]`: one accumulator per pair,
/// doubled (two vectors per step) when there are 4 pairs or fewer, so enough independent
/// FMAs are in flight; then a horizontal sum and a scalar tail. With R = 1 this is the
/// kernel's original loop, so ids without an `n` part give the same results as before.
///
/// SAFETY: the caller's instruction set must support `S`; `x` holds rows `i0..i0+T` of
/// length `k`, each `w[q]` points at `k` readable elements.
#[inline(always)]
unsafe fn dots<S: F32s, E: Weight, const R: usize, const T: usize>(
    x: &[f32],
    i0: usize,
    k: usize,
    w: [*const E; R],
) -> [[f32; T]; R] {
    debug_assert!(x.len() >= (i0 + T) * k);
    let xp: [*const f32; T] = std::array::from_fn(|t| x.as_ptr().add((i0 + t) * k));
    let two = R * T <= 4 || R == 1;
    let step = if two { 2 * S::LANES } else { S::LANES };
    let body = k / step * step;
    let mut a0 = [[S::zero(); T]; R];
    let mut a1 = [[S::zero(); T]; R];
    let mut c = 0;
    while c < body {
        let w0: [S::V; R] = std::array::from_fn(|q| E::load::<S>(w[q].add(c)));
        for t in 0..T {
            let xv = S::load(xp[t].add(c));
            for q in 0..R {
                a0[q][t] = S::fma(xv, w0[q], a0[q][t]);
            }
        }
        if two {
            let w1: [S::V; R] = std::array::from_fn(|q| E::load::<S>(w[q].add(c + S::LANES)));
            for t in 0..T {
                let xv = S::load(xp[t].add(c + S::LANES));
                for q in 0..R {
                    a1[q][t] = S::fma(xv, w1[q], a1[q][t]);
                }
            }
        }
        c += step;
    }
    // Plain loops rather than nested `array::from_fn`: with those, LLVM kept the
    // accumulators in memory (a store after every FMA above, 1.5x slower at M = 8).
    let mut out = [[0.0f32; T]; R];
    for q in 0..R {
        for t in 0..T {
            let mut s = S::hsum(if two { S::add(a0[q][t], a1[q][t]) } else { a0[q][t] });
            for kk in body..k {
                s += *xp[t].add(kk) * (*w[q].add(kk)).to_f32();
            }
            out[q][t] = s;
        }
    }
    out
}
