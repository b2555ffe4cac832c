//! `cpu:qpair:avx2:m<tile>:t<threads>`: decode on q4_1 and q8_0 weights (the formats of
//! GGUF checkpoints such as the shipped SmolLM2), f32 activations, f32 arithmetic.
//!
//! The same sums as `cpu:qdot` (`Σ_j x_j·(d·q_j + c) = d·Σ_j x_j·q_j + c·Σ_j x_j` per
//! block, values centred), with fewer instructions per block on AVX2:
//! - each 32-bit lane of a widened vector receives its byte by `vpshufb` into the top
//!   byte (`q·2^24`, converted exactly; the scale takes the `2^-24`), with no lane
//!   crossing: the 256-bit vector holds two q4_1 blocks (one per 128-bit lane) or the two
//!   halves of a q8_0 block, and X is permuted once per call into the matching order;
//! - a block's partial sums are not scaled one by one: 8 blocks' vectors are reduced by
//!   `vhaddps` into one vector whose lane i is block i's dot product, then scaled by the 8
//!   blocks' `d` (f16 → f32 eight at a time) with one FMA, and the offset term `c·Σx` is
//!   one more FMA per 8 blocks.
//!
//! Against `cpu:qdot` on Zen 3 (in isolation, one core): ~18 instead of ~27 vector
//! instructions per q4_1 block; the block parameters, gathered 8 at a time, replace ~6
//! scalar instructions per block.
//!
//! AVX2 only (machines with AVX-512 have it too). g128 stays with `cpu:qdot`/`cpu:qsplit`.

use super::libs::SendPtr;
use super::sysinfo::Isa;
use super::tensor::HostTensor;
use crate::problem::{Problem, WeightFormat};
use crate::quant::QuantTensor;

/// X rows per pass over a W row (`m<tile>`).
pub const TILES: [usize; 3] = [1, 2, 4];
/// Largest M offered.
pub const MAX_M: usize = 16;
/// Blocks reduced together (one 8-lane vector of block sums).
const GROUP: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QPair {
    pub mt: usize,
    pub threads: usize,
}

impl QPair {
    pub fn supports(p: &Problem) -> bool {
        matches!(p.wformat, WeightFormat::Q4_1 | WeightFormat::Q8_0)
            && p.m <= MAX_M
            && p.layout.w_trans
            && !p.layout.x_trans
    }

    pub fn available() -> bool {
        Isa::Avx2.available()
    }

    pub fn run(&self, p: &Problem, x: &HostTensor, w: &QuantTensor, y: &mut HostTensor) {
        assert!(QPair::supports(p) && QPair::available(), "qpair kernel called for unsupported {p}");
        let xf = x.as_f32();
        let (m, n, k) = (p.m, p.n, p.k);
        let rb = w.row_bytes();
        y.write_f32(|yf| {
            for bi in 0..p.batch {
                let px = PermutedX::new(&xf[bi * m * k..(bi + 1) * m * k], m, k, w.format);
                let wrows = &w.data[bi * n * rb..(bi + 1) * n * rb];
                let yp = SendPtr(yf[bi * m * n..].as_mut_ptr());
                super::quant::split_rows(n, self.threads, 1, |j0, j1| {
                    let job = Job { f: w.format, x: &px, w: wrows, rb, m, n, j0, j1, mt: self.mt, y: yp };
                    // SAFETY: AVX2 was checked when the kernel was resolved; the job writes
                    // only columns j0..j1 of Y, disjoint across tasks.
                    unsafe { job_avx2(&job) }
                });
            }
        });
    }
}

/// X rows in the order the widened weight vectors come in, zero-padded to whole groups of
/// 8 blocks, and (q4_1) each block's exact sum, in the lane order of the reduced vectors.
struct PermutedX {
    x: Vec<f32>,
    xsum: Vec<f32>,
    /// Floats per permuted row, sums per row.
    row: usize,
    sums: usize,
    blocks: usize,
}

/// Lane i of a reduced q4_1 vector holds block `Q4_LANES[i]` of its group (two blocks per
/// widened vector, one per 128-bit lane; see `reduce_pairs`).
const Q4_LANES: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

impl PermutedX {
    fn new(x: &[f32], m: usize, k: usize, f: WeightFormat) -> PermutedX {
        let blocks = k / 32;
        let groups = blocks.div_ceil(GROUP);
        let (row, sums) = (groups * GROUP * 32, groups * GROUP);
        let mut px = PermutedX { x: vec![0.0; m * row], xsum: vec![0.0; m * sums], row, sums, blocks };
        for i in 0..m {
            let xr = &x[i * k..(i + 1) * k];
            let out = &mut px.x[i * row..(i + 1) * row];
            for b in 0..blocks {
                let xb = &xr[32 * b..32 * b + 32];
                for e in 0..32 {
                    // Element e of a block sits in byte e % 16 of the low (e < 16) or high
                    // half; vector `k4` of a lane takes bytes 4·k4..4·k4 + 4.
                    let (half, byte) = (e / 16, e % 16);
                    let (k4, l) = (byte / 4, byte % 4);
                    let at = match f {
                        // Two blocks per vector: block b in lane b % 2; low nibbles
                        // (elements 0..16) in vectors 0..4, high ones in vectors 4..8.
                        WeightFormat::Q4_1 => 64 * (b / 2) + 8 * (4 * half + k4) + 4 * (b % 2) + l,
                        // One block per vector: bytes 0..16 in the low lane, 16..32 high.
                        _ => 32 * b + 8 * k4 + 4 * half + l,
                    };
                    out[at] = xb[e];
                }
            }
            if f == WeightFormat::Q4_1 {
                let sums = &mut px.xsum[i * sums..(i + 1) * sums];
                for b in 0..blocks {
                    let (g, j) = (b / GROUP, b % GROUP);
                    let lane = Q4_LANES.iter().position(|&q| q == j).expect("a lane per block");
                    sums[g * GROUP + lane] = xr[32 * b..32 * b + 32].iter().sum();
                }
            }
        }
        px
    }
}

struct Job<'a> {
    f: WeightFormat,
    x: &'a PermutedX,
    w: &'a [u8],
    rb: usize,
    m: usize,
    n: usize,
    j0: usize,
    j1: usize,
    mt: usize,
    y: SendPtr<f32>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn job_avx2(job: &Job<'_>) {
    match job.f {
        WeightFormat::Q4_1 => job.run::<true>(),
        WeightFormat::Q8_0 => job.run::<false>(),
        f => unreachable!("qpair on {f} weights"),
    }
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn job_avx2(_job: &Job<'_>) {
    unreachable!("qpair is offered on x86-64 with AVX2 only")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Job, GROUP};
    use std::arch::x86_64::*;

    /// `1/2^24`: the widened values are `q·2^24` (see the module docs).
    const Q_SCALE: f32 = 1.0 / (1u32 << 24) as f32;

    /// `vpshufb` indices putting bytes 4k..4k+4 of each 128-bit lane into the top byte of
    /// 32-bit lanes.
    #[inline(always)]
    unsafe fn widen_index(k: i8) -> __m256i {
        let b = 4 * k;
        #[rustfmt::skip]
        let v = _mm256_setr_epi8(
            -1, -1, -1, b, -1, -1, -1, b + 1, -1, -1, -1, b + 2, -1, -1, -1, b + 3,
            -1, -1, -1, b, -1, -1, -1, b + 1, -1, -1, -1, b + 2, -1, -1, -1, b + 3,
        );
        v
    }

    #[inline(always)]
    unsafe fn widen(v: __m256i, idx: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, idx))
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    impl Job<'_> {
        #[inline(always)]
        pub(super) unsafe fn run<const Q4: bool>(&self) {
            for j in self.j0..self.j1 {
                let mut i = 0;
                while i < self.m {
                    let step = match self.mt.min(self.m - i) {
                        4.. => 4,
                        2..=3 => 2,
                        _ => 1,
                    };
                    match step {
                        4 => self.tile::<Q4, 4>(j, i),
                        2 => self.tile::<Q4, 2>(j, i),
                        _ => self.tile::<Q4, 1>(j, i),
                    }
                    i += step;
                }
            }
        }

        /// `Y[i0..i0+T, j]`: group by group, 8 blocks' dot products in one vector, scaled
        /// (and offset) by the group's parameters.
        #[inline(always)]
        unsafe fn tile<const Q4: bool, const T: usize>(&self, j: usize, i0: usize) {
            let px = self.x;
            let row = self.w.as_ptr().add(j * self.rb);
            let (mut xq, mut xs) = ([px.x.as_ptr(); T], [px.xsum.as_ptr(); T]);
            for t in 0..T {
                xq[t] = px.x.as_ptr().add((i0 + t) * px.row);
                xs[t] = px.xsum.as_ptr().wrapping_add((i0 + t) * px.sums);
            }
            let mut acc = [_mm256_setzero_ps(); T];
            let mut off = [_mm256_setzero_ps(); T];
            let full = px.blocks / GROUP;
            for g in 0..full {
                self.group::<Q4, T, true>(row, g, &xq, &xs, &mut acc, &mut off);
            }
            if px.blocks % GROUP != 0 {
                self.group::<Q4, T, false>(row, full, &xq, &xs, &mut acc, &mut off);
            }
            let y = self.y.get();
            for t in 0..T {
                *y.add((i0 + t) * self.n + j) = hsum(_mm256_add_ps(acc[t], off[t]));
            }
        }

        /// Group `g` (blocks 8g..8g+8, fewer in a tail group: `FULL` false) of W row `row`.
        #[inline(always)]
        unsafe fn group<const Q4: bool, const T: usize, const FULL: bool>(
            &self,
            row: *const u8,
            g: usize,
            xq: &[*const f32; T],
            xs: &[*const f32; T],
            acc: &mut [__m256; T],
            off: &mut [__m256; T],
        ) {
            let b0 = g * GROUP;
            let have = if FULL { GROUP } else { self.x.blocks - b0 };
            let red = if Q4 { self.reduce_pairs::<T, FULL>(row, b0, have, xq) } else { self.reduce_q8::<T, FULL>(row, b0, have, xq) };
            // The group's parameters, in the lane order of `red`.
            let (d, c) = if Q4 { params_q4_1::<FULL>(row, b0, have) } else { (params_q8_0::<FULL>(row, b0, have), _mm256_setzero_ps()) };
            let dq = _mm256_mul_ps(d, _mm256_set1_ps(Q_SCALE));
            for t in 0..T {
                acc[t] = _mm256_fmadd_ps(dq, red[t], acc[t]);
                if Q4 {
                    off[t] = _mm256_fmadd_ps(c, _mm256_loadu_ps(xs[t].add(b0)), off[t]);
                }
            }
        }

        /// q4_1: the 8 blocks' dot products (unscaled, `·2^24`) of each X row, lane i holding
        /// block `Q4_LANES[i]`: each widened vector holds blocks 2p (low lane) and 2p + 1,
        /// and `vhaddps` of the four pair vectors leaves lanes [0, 2, 4, 6 | 1, 3, 5, 7].
        #[inline(always)]
        unsafe fn reduce_pairs<const T: usize, const FULL: bool>(
            &self,
            row: *const u8,
            b0: usize,
            have: usize,
            xq: &[*const f32; T],
        ) -> [__m256; T] {
            let idx = [widen_index(0), widen_index(1), widen_index(2), widen_index(3)];
            let (mask, eight) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(8));
            let mut s = [[_mm256_setzero_ps(); T]; 4];
            for (p, sp) in s.iter_mut().enumerate() {
                let b = b0 + 2 * p;
                if !FULL && 2 * p >= have {
                    break; // the remaining pairs stay zero
                }
                let nib = row.add(20 * b + 4) as *const __m128i;
                let v = if FULL || 2 * p + 1 < have {
                    _mm256_loadu2_m128i(nib.byte_add(20), nib)
                } else {
                    _mm256_castsi128_si256(_mm_loadu_si128(nib)) // its X lanes are zero
                };
                let lo = _mm256_sub_epi8(_mm256_and_si256(v, mask), eight);
                let hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask), eight);
                let q = [
                    widen(lo, idx[0]),
                    widen(lo, idx[1]),
                    widen(lo, idx[2]),
                    widen(lo, idx[3]),
                    widen(hi, idx[0]),
                    widen(hi, idx[1]),
                    widen(hi, idx[2]),
                    widen(hi, idx[3]),
                ];
                for t in 0..T {
                    let x = xq[t].add(32 * b);
                    let mut e = _mm256_mul_ps(q[0], _mm256_loadu_ps(x));
                    let mut o = _mm256_mul_ps(q[1], _mm256_loadu_ps(x.add(8)));
                    for u in (2..8).step_by(2) {
                        e = _mm256_fmadd_ps(q[u], _mm256_loadu_ps(x.add(8 * u)), e);
                        o = _mm256_fmadd_ps(q[u + 1], _mm256_loadu_ps(x.add(8 * u + 8)), o);
                    }
                    sp[t] = _mm256_add_ps(e, o);
                }
            }
            let mut red = [_mm256_setzero_ps(); T];
            for t in 0..T {
                red[t] = _mm256_hadd_ps(_mm256_hadd_ps(s[0][t], s[1][t]), _mm256_hadd_ps(s[2][t], s[3][t]));
            }
            red
        }

        /// q8_0: the 8 blocks' dot products (unscaled, `·2^24`) of each X row in block
        /// order: a block's 32 bytes are one vector, its halves in the two lanes.
        #[inline(always)]
        unsafe fn reduce_q8<const T: usize, const FULL: bool>(
            &self,
            row: *const u8,
            b0: usize,
            have: usize,
            xq: &[*const f32; T],
        ) -> [__m256; T] {
            // Pairs of blocks are added as they come (fewer live registers): after two
            // levels of vhaddps lane i of `lo4` holds block i's low-lane sum (i < 4) and
            // lane 4 + i its high-lane sum; the same for blocks 4..8 in `hi4`.
            let (lo4, hi4) = (self.q8_quad::<T, FULL>(row, b0, 0, have, xq), self.q8_quad::<T, FULL>(row, b0, 4, have, xq));
            let mut red = [_mm256_setzero_ps(); T];
            for t in 0..T {
                let first = _mm256_permute2f128_ps(lo4[t], hi4[t], 0x20);
                let second = _mm256_permute2f128_ps(lo4[t], hi4[t], 0x31);
                red[t] = _mm256_add_ps(first, second);
            }
            red
        }
    }

    impl Job<'_> {
        /// Blocks b0 + q0 .. b0 + q0 + 4 of a q8_0 group reduced by two levels of vhaddps.
        /// (Methods, not closures: closures may not inherit the caller's target features.)
        #[inline(always)]
        unsafe fn q8_quad<const T: usize, const FULL: bool>(
            &self,
            row: *const u8,
            b0: usize,
            q0: usize,
            have: usize,
            xq: &[*const f32; T],
        ) -> [__m256; T] {
            let a = self.q8_block::<T, FULL>(row, b0 + q0, q0 < have, xq);
            let b = self.q8_block::<T, FULL>(row, b0 + q0 + 1, q0 + 1 < have, xq);
            let mut h = [_mm256_setzero_ps(); T];
            for t in 0..T {
                h[t] = _mm256_hadd_ps(a[t], b[t]);
            }
            let c = self.q8_block::<T, FULL>(row, b0 + q0 + 2, q0 + 2 < have, xq);
            let d = self.q8_block::<T, FULL>(row, b0 + q0 + 3, q0 + 3 < have, xq);
            for t in 0..T {
                h[t] = _mm256_hadd_ps(h[t], _mm256_hadd_ps(c[t], d[t]));
            }
            h
        }

        /// One q8_0 block's dot products with each X row (zero for a block past the end).
        #[inline(always)]
        unsafe fn q8_block<const T: usize, const FULL: bool>(
            &self,
            row: *const u8,
            b: usize,
            present: bool,
            xq: &[*const f32; T],
        ) -> [__m256; T] {
            if !FULL && !present {
                return [_mm256_setzero_ps(); T];
            }
            let idx = [widen_index(0), widen_index(1), widen_index(2), widen_index(3)];
            let v = _mm256_loadu_si256(row.add(34 * b + 2) as *const __m256i);
            let q = [widen(v, idx[0]), widen(v, idx[1]), widen(v, idx[2]), widen(v, idx[3])];
            let mut s = [_mm256_setzero_ps(); T];
            for t in 0..T {
                let x = xq[t].add(32 * b);
                let e = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x.add(16)), _mm256_mul_ps(q[0], _mm256_loadu_ps(x)));
                let o = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x.add(24)), _mm256_mul_ps(q[1], _mm256_loadu_ps(x.add(8))));
                s[t] = _mm256_add_ps(e, o);
            }
            s
        }
    }

    /// The (d, m + 8d) of a q4_1 group, lanes in `Q4_LANES` order; zero for blocks past
    /// the row's end.
    #[inline(always)]
    unsafe fn params_q4_1<const FULL: bool>(row: *const u8, b0: usize, have: usize) -> (__m256, __m256) {
        // Word i = (d, m) of block ORDER[i]: converting the low and high 4 words gives
        // [d m d m ...] of blocks ORDER[0..4] and ORDER[4..8]; shuffling d's (and m's)
        // of both leaves blocks [0, 2, 4, 6 | 1, 3, 5, 7].
        const ORDER: [usize; 8] = [0, 2, 1, 3, 4, 6, 5, 7];
        let base = row.add(20 * b0);
        let words = if FULL {
            let offs = _mm256_setr_epi32(0, 40, 20, 60, 80, 120, 100, 140);
            _mm256_i32gather_epi32::<1>(base as *const i32, offs)
        } else {
            let mut w = [0u32; 8];
            for (wi, &b) in w.iter_mut().zip(&ORDER) {
                if b < have {
                    *wi = (base.add(20 * b) as *const u32).read_unaligned();
                }
            }
            _mm256_loadu_si256(w.as_ptr() as *const __m256i)
        };
        let a = _mm256_cvtph_ps(_mm256_castsi256_si128(words));
        let b = _mm256_cvtph_ps(_mm256_extracti128_si256(words, 1));
        let d = _mm256_shuffle_ps(a, b, 0x88);
        let m = _mm256_shuffle_ps(a, b, 0xdd);
        (d, _mm256_fmadd_ps(d, _mm256_set1_ps(8.0), m))
    }

    /// The d of a q8_0 group in block order; zero past the row's end.
    #[inline(always)]
    unsafe fn params_q8_0<const FULL: bool>(row: *const u8, b0: usize, have: usize) -> __m256 {
        let base = row.add(34 * b0);
        let mut h = [0u16; 8];
        for (i, hi) in h.iter_mut().enumerate() {
            if FULL || i < have {
                *hi = (base.add(34 * i) as *const u16).read_unaligned();
            }
        }
        _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const __m128i))
    }
}
