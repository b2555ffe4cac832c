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
//! Against `cpu:qdot` on Zen 3: ~20 instead of ~27 instructions per q4_1 block, the block
//! parameters read 8 at a time (4-byte loads and inserts: `vpgatherdd` measured 12 %
//! slower overall) instead of ~6 scalar instructions per block; 2.44 against 3.08 ns per
//! block on one core (`examples/qbench.rs`). Tried and not kept: four accumulator chains
//! per pair (slower), software prefetch of the next W rows (no change: the kernel is
//! compute-bound), two W rows per pass sharing X loads (2-6 %, not worth a second code path),
//! q4_1 nibbles made floats `1 + q/16` by an OR of 1.0's exponent instead of `vcvtdq2ps`
//! (2026-12-03: 2.79-3.10 against 3.02-3.06 ns per block, within the noise).
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
    /// Per row: whole groups' sums in lane order, then the tail blocks' in block order.
    xsum: Vec<f32>,
    /// Floats per permuted row, sums per row.
    row: usize,
    sums: usize,
    blocks: usize,
}

/// Lane i of a reduced q4_1 vector holds block `Q4_LANES[i]` of its group (two blocks per
/// widened vector, one per 128-bit lane; see `reduce_pairs`).
#[cfg_attr(not(test), allow(dead_code))]
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
            // Runs of 4 elements move together: element e of a block sits in byte e % 16
            // of the low (e < 16) or high half, and vector `k4` of a lane takes bytes
            // 4·k4..4·k4 + 4. (Called on every GEMM: a decode step makes 210 of them.)
            for b in 0..blocks {
                for half in 0..2 {
                    for k4 in 0..4 {
                        let at = match f {
                            // Two blocks per vector: block b in lane b % 2; low nibbles
                            // (elements 0..16) in vectors 0..4, high ones in vectors 4..8.
                            WeightFormat::Q4_1 => 64 * (b / 2) + 8 * (4 * half + k4) + 4 * (b % 2),
                            // One block per vector: bytes 0..16 in the low lane, 16..32 high.
                            _ => 32 * b + 8 * k4 + 4 * half,
                        };
                        let from = 32 * b + 16 * half + 4 * k4;
                        out[at..at + 4].copy_from_slice(&xr[from..from + 4]);
                    }
                }
            }
            if f == WeightFormat::Q4_1 {
                let sums = &mut px.xsum[i * sums..(i + 1) * sums];
                let whole = blocks / GROUP * GROUP;
                for b in 0..blocks {
                    let (g, j) = (b / GROUP, b % GROUP);
                    // Q4_LANES inverted: block j of a whole group sits in lane j / 2 + 4·(j % 2).
                    let lane = if b < whole { j / 2 + 4 * (j % 2) } else { j };
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
    use crate::backend::cpu::vector::{f16_at, Avx2, F32s};
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

    impl Job<'_> {
        #[inline(always)]
        pub(super) unsafe fn run<const Q4: bool>(&self) {
            for j in self.j0..self.j1 {
                for (i, rows) in crate::backend::cpu::quant::tiles_4_2_1(self.m, self.mt) {
                    match rows {
                        4 => self.tile::<Q4, 4>(j, i),
                        2 => self.tile::<Q4, 2>(j, i),
                        _ => self.tile::<Q4, 1>(j, i),
                    }
                }
            }
        }

        /// `Y[i0..i0+T, j]`: group by group, 8 blocks' dot products in one vector, scaled
        /// (and offset) by the group's parameters; the blocks past the last whole group
        /// (K = 576: 2 of 18) scaled one by one.
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
                self.group::<Q4, T>(row, g * GROUP, &xq, &xs, &mut acc, &mut off);
            }
            let mut tail_off = [0f32; T];
            if full * GROUP < px.blocks {
                self.tail::<Q4, T>(row, full * GROUP, &xq, &xs, &mut acc, &mut tail_off);
            }
            let y = self.y.get();
            for t in 0..T {
                *y.add((i0 + t) * self.n + j) = Avx2::hsum(_mm256_add_ps(acc[t], off[t])) + tail_off[t];
            }
        }

        /// Blocks b0..b0+8 of W row `row`.
        #[inline(always)]
        unsafe fn group<const Q4: bool, const T: usize>(
            &self,
            row: *const u8,
            b0: usize,
            xq: &[*const f32; T],
            xs: &[*const f32; T],
            acc: &mut [__m256; T],
            off: &mut [__m256; T],
        ) {
            let red = if Q4 { self.reduce_pairs::<T>(row, b0, xq) } else { self.reduce_q8::<T>(row, b0, xq) };
            // The group's parameters, in the lane order of `red`.
            let (d, c) = if Q4 { params_q4_1(row, b0) } else { (params_q8_0(row, b0), _mm256_setzero_ps()) };
            let dq = _mm256_mul_ps(d, _mm256_set1_ps(Q_SCALE));
            for t in 0..T {
                acc[t] = _mm256_fmadd_ps(dq, red[t], acc[t]);
                if Q4 {
                    off[t] = _mm256_fmadd_ps(c, _mm256_loadu_ps(xs[t].add(b0)), off[t]);
                }
            }
        }

        /// Blocks b0.. to the end of the row (fewer than 8): each block's (or pair's)
        /// partial sums scaled directly, lanes summed at the end with the rest.
        #[inline(always)]
        unsafe fn tail<const Q4: bool, const T: usize>(
            &self,
            row: *const u8,
            b0: usize,
            xq: &[*const f32; T],
            xs: &[*const f32; T],
            acc: &mut [__m256; T],
            off: &mut [f32; T],
        ) {
            let blocks = self.x.blocks;
            if !Q4 {
                for b in b0..blocks {
                    let s = self.q8_block::<T>(row, b, xq);
                    let d = _mm256_set1_ps(f16_at(row.add(34 * b)) * Q_SCALE);
                    for t in 0..T {
                        acc[t] = _mm256_fmadd_ps(d, s[t], acc[t]);
                    }
                }
                return;
            }
            let mut b = b0;
            while b < blocks {
                let two = b + 1 < blocks;
                let s = self.pair_dot::<T>(row, b, two, xq);
                // (d, m) of both blocks converted together: [d0 m0 d1 m1]; lanes 0..4 of
                // the scale take block b's d, lanes 4..8 the next's.
                let w0 = (row.add(20 * b) as *const i32).read_unaligned();
                let w1 = if two { (row.add(20 * b + 20) as *const i32).read_unaligned() } else { 0 };
                let dm = _mm_cvtph_ps(_mm_insert_epi32::<1>(_mm_cvtsi32_si128(w0), w1));
                let [d0, m0, d1, m1]: [f32; 4] = std::mem::transmute(dm);
                let spread = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
                let dq = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_mul_ps(dm, _mm_set1_ps(Q_SCALE))), spread);
                for t in 0..T {
                    acc[t] = _mm256_fmadd_ps(dq, s[t], acc[t]);
                    // Tail sums are in block order; the partner of a lone block counts zero.
                    let s1 = if two { *xs[t].add(b + 1) } else { 0.0 };
                    off[t] += (m0 + 8.0 * d0) * *xs[t].add(b) + (m1 + 8.0 * d1) * s1;
                }
                b += 2;
            }
        }

        /// q4_1 blocks b and b + 1 (`two`; else b alone, its X lanes' partner zero) in one
        /// vector per X row: lanes 0..4 block b's partial sums (unscaled, `·2^24`), 4..8
        /// block b + 1's.
        #[inline(always)]
        unsafe fn pair_dot<const T: usize>(&self, row: *const u8, b: usize, two: bool, xq: &[*const f32; T]) -> [__m256; T] {
            let idx = [widen_index(0), widen_index(1), widen_index(2), widen_index(3)];
            let (mask, eight) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(8));
            let nib = row.add(20 * b + 4) as *const __m128i;
            let v = if two {
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
            let mut s = [_mm256_setzero_ps(); T];
            for t in 0..T {
                let x = xq[t].add(32 * b);
                let mut e = _mm256_mul_ps(q[0], _mm256_loadu_ps(x));
                let mut o = _mm256_mul_ps(q[1], _mm256_loadu_ps(x.add(8)));
                for u in (2..8).step_by(2) {
                    e = _mm256_fmadd_ps(q[u], _mm256_loadu_ps(x.add(8 * u)), e);
                    o = _mm256_fmadd_ps(q[u + 1], _mm256_loadu_ps(x.add(8 * u + 8)), o);
                }
                s[t] = _mm256_add_ps(e, o);
            }
            s
        }

        /// q4_1: the 8 blocks' dot products (unscaled, `·2^24`) of each X row, lane i holding
        /// block `Q4_LANES[i]`: each pair vector holds blocks 2p (low lane) and 2p + 1, and
        /// `vhaddps` of the four pair vectors leaves lanes [0, 2, 4, 6 | 1, 3, 5, 7].
        #[inline(always)]
        unsafe fn reduce_pairs<const T: usize>(&self, row: *const u8, b0: usize, xq: &[*const f32; T]) -> [__m256; T] {
            let s0 = self.pair_dot::<T>(row, b0, true, xq);
            let s1 = self.pair_dot::<T>(row, b0 + 2, true, xq);
            let mut h = [_mm256_setzero_ps(); T];
            for t in 0..T {
                h[t] = _mm256_hadd_ps(s0[t], s1[t]);
            }
            let s2 = self.pair_dot::<T>(row, b0 + 4, true, xq);
            let s3 = self.pair_dot::<T>(row, b0 + 6, true, xq);
            for t in 0..T {
                h[t] = _mm256_hadd_ps(h[t], _mm256_hadd_ps(s2[t], s3[t]));
            }
            h
        }

        /// q8_0: the 8 blocks' dot products (unscaled, `·2^24`) of each X row in block
        /// order: a block's 32 bytes are one vector, its halves in the two lanes.
        #[inline(always)]
        unsafe fn reduce_q8<const T: usize>(&self, row: *const u8, b0: usize, xq: &[*const f32; T]) -> [__m256; T] {
            // Pairs of blocks are added as they come (fewer live registers): after two
            // levels of vhaddps lane i of `lo4` holds block i's low-lane sum (i < 4) and
            // lane 4 + i its high-lane sum; the same for blocks 4..8 in `hi4`.
            let (lo4, hi4) = (self.q8_quad::<T>(row, b0, xq), self.q8_quad::<T>(row, b0 + 4, xq));
            let mut red = [_mm256_setzero_ps(); T];
            for t in 0..T {
                let first = _mm256_permute2f128_ps(lo4[t], hi4[t], 0x20);
                let second = _mm256_permute2f128_ps(lo4[t], hi4[t], 0x31);
                red[t] = _mm256_add_ps(first, second);
            }
            red
        }

        /// q8_0 blocks b..b+4 reduced by two levels of vhaddps.
        #[inline(always)]
        unsafe fn q8_quad<const T: usize>(&self, row: *const u8, b: usize, xq: &[*const f32; T]) -> [__m256; T] {
            let (s0, s1) = (self.q8_block::<T>(row, b, xq), self.q8_block::<T>(row, b + 1, xq));
            let mut h = [_mm256_setzero_ps(); T];
            for t in 0..T {
                h[t] = _mm256_hadd_ps(s0[t], s1[t]);
            }
            let (s2, s3) = (self.q8_block::<T>(row, b + 2, xq), self.q8_block::<T>(row, b + 3, xq));
            for t in 0..T {
                h[t] = _mm256_hadd_ps(h[t], _mm256_hadd_ps(s2[t], s3[t]));
            }
            h
        }

        /// One q8_0 block's dot products with each X row (partial sums per lane).
        #[inline(always)]
        unsafe fn q8_block<const T: usize>(&self, row: *const u8, b: usize, xq: &[*const f32; T]) -> [__m256; T] {
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

    /// The (d, m + 8d) of the q4_1 blocks b0..b0+8, lanes in `Q4_LANES` order.
    #[inline(always)]
    unsafe fn params_q4_1(row: *const u8, b0: usize) -> (__m256, __m256) {
        // Word i = (d, m) of block [0, 2, 1, 3, 4, 6, 5, 7][i]: converting the low and high
        // 4 words gives [d m d m ...] of blocks 0, 2, 1, 3 and 4, 6, 5, 7; shuffling the
        // d's (and m's) of both leaves blocks [0, 2, 4, 6 | 1, 3, 5, 7].
        // Eight 4-byte loads inserted (vpgatherdd is slow on AMD).
        let base = row.add(20 * b0);
        let w = |b: usize| (base.add(20 * b) as *const i32).read_unaligned();
        let lo = _mm_insert_epi32::<3>(_mm_insert_epi32::<2>(_mm_insert_epi32::<1>(_mm_cvtsi32_si128(w(0)), w(2)), w(1)), w(3));
        let hi = _mm_insert_epi32::<3>(_mm_insert_epi32::<2>(_mm_insert_epi32::<1>(_mm_cvtsi32_si128(w(4)), w(6)), w(5)), w(7));
        let words = _mm256_set_m128i(hi, lo);
        let a = _mm256_cvtph_ps(_mm256_castsi256_si128(words));
        let b = _mm256_cvtph_ps(_mm256_extracti128_si256(words, 1));
        let d = _mm256_shuffle_ps(a, b, 0x88);
        let m = _mm256_shuffle_ps(a, b, 0xdd);
        (d, _mm256_fmadd_ps(d, _mm256_set1_ps(8.0), m))
    }

    /// The d of the q8_0 blocks b0..b0+8, in block order.
    #[inline(always)]
    unsafe fn params_q8_0(row: *const u8, b0: usize) -> __m256 {
        let base = row.add(34 * b0);
        let h = |i: usize| (base.add(34 * i) as *const u16).read_unaligned() as i32;
        let mut v = _mm_cvtsi32_si128(h(0));
        v = _mm_insert_epi16::<1>(v, h(1));
        v = _mm_insert_epi16::<2>(v, h(2));
        v = _mm_insert_epi16::<3>(v, h(3));
        v = _mm_insert_epi16::<4>(v, h(4));
        v = _mm_insert_epi16::<5>(v, h(5));
        v = _mm_insert_epi16::<6>(v, h(6));
        v = _mm_insert_epi16::<7>(v, h(7));
        _mm256_cvtph_ps(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sums_sit_in_the_lanes_of_their_blocks() {
        // The inverse PermutedX uses for whole groups, and where the sums land.
        for (lane, &j) in Q4_LANES.iter().enumerate() {
            assert_eq!(j / 2 + 4 * (j % 2), lane);
        }
        let (m, k) = (2, 32 * 11); // one whole group and a tail of 3 blocks
        let x: Vec<f32> = (0..m * k).map(|i| (i % 97) as f32 - 40.0).collect();
        let px = PermutedX::new(&x, m, k, WeightFormat::Q4_1);
        for i in 0..m {
            for b in 0..11 {
                let want: f32 = x[i * k + 32 * b..i * k + 32 * b + 32].iter().sum();
                let at = if b < 8 { b / 2 + 4 * (b % 2) } else { b };
                assert_eq!(px.xsum[i * px.sums + at], want, "row {i} block {b}");
            }
            // Every element lands once.
            let mut seen: Vec<f32> = px.x[i * px.row..(i + 1) * px.row].to_vec();
            let mut orig: Vec<f32> = x[i * k..(i + 1) * k].to_vec();
            orig.resize(px.row, 0.0);
            seen.sort_by(f32::total_cmp);
            orig.sort_by(f32::total_cmp);
            assert_eq!(seen, orig);
        }
    }
}
