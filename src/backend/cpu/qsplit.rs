//! `cpu:qsplit:avx2:x<terms>:m<tile>:n<rows>:t<threads>`: decode on quantized weights with integer dot
//! products, accurate to the f32 error bound.
//!
//! llama.cpp's CPU kernels quantize the activations to 8 bits per block of 32 and dot
//! them with the weights' integers (`maddubs`: 32 products per instruction), an error
//! of about 1e-2 relative: far outside the f32 bound the tuner applies. Here each
//! activation block is split into three 8-bit terms instead: `x ≈ s·(a + b/256 + c/256²)`
//! with `s = max|x|/127`, `a = round(x/s)`, `b` and `c` the rounded residuals at 256 and
//! 256² times finer steps, so what is left is at most `s/(2·256²) ≈ max|x|·6e-8`, the
//! order of f32 rounding. The weights' integers are dotted with all three terms, exactly
//! in 32-bit integers: `Σ q·x ≈ s/256·(256·Σ q·a + Σ q·b) + s/256²·Σ q·c`. Measured on
//! q4_1 1536 x 576 at M = 1: relative error ~8e-7 (`cpu:qdot`: 1e-7); with the first two
//! terms only (`x2`) ~1.4e-5, within the f32 bound on whole layers but not on single
//! outputs that happen to be near zero (9 % of random 1 x 1 problems exceed 1e-4), so
//! `x2` resolves for N ≥ 64 only; it skips a third of the integer work. It is not
//! listed as a candidate (see `QSplit::offered_for`): on the SmolLM2 runtime its error
//! flipped a low-margin greedy step that the f32 path and the three-term kernel keep. The per-block
//! offset term uses exact f32 block sums of X. 4-bit values are centred (`q − 8`, offset
//! `m + 8d` or `s·(8 − z)`, see `quant.rs`), in integers: `Σ (q − 8)·a = Σ q·a − 8·Σ a`,
//! with the `8·Σ a` per lane precomputed. A 32-value block costs ~24 vector
//! instructions per X row with three terms, ~17 with two, against ~30 for widening every
//! weight to f32 (`cpu:qdot`).
//!
//! AVX2 only (machines with AVX-512 have it too): `maddubs` needs 256-bit integer SIMD.

use super::libs::SendPtr;
use super::sysinfo::Isa;
use super::tensor::HostTensor;
use crate::problem::{Problem, WeightFormat};
use crate::quant::QuantTensor;

pub const TILES: [usize; 3] = [1, 2, 4];
/// W rows per step (`n<rows>`): 1, or 8 whose integer sums are reduced together so that
/// the float work (conversion, scaling, offsets) runs once per 8 rows (X rows one at a
/// time: `m1` only).
pub const ROWS: [usize; 2] = [1, 8];
pub const TERMS: [usize; 2] = [2, 3];
/// Smallest N the two-term variant resolves for (see `QSplit::accurate_for`).
pub const MIN_N_TWO_TERMS: usize = 64;
/// Smallest N the three-term variant resolves for (see `QSplit::accurate_for`).
pub const MIN_N_THREE_TERMS: usize = 8;
/// Largest M offered.
pub const MAX_M: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QSplit {
    /// Activation terms: 3 (residual at f32 rounding) or 2 (residual ~1.5e-5 of a
    /// block's largest value, see the module docs).
    pub terms: usize,
    pub mt: usize,
    pub nr: usize,
    pub threads: usize,
}

/// X rows split into two 8-bit terms per 32 values (see the module docs).
struct SplitX {
    a: Vec<i8>,
    b: Vec<i8>,
    c: Vec<i8>,
    /// Per 32 values and per lane of 4: `8·(256·Σ a + Σ b)` and `8·Σ c`, the centring
    /// corrections of 4-bit weights.
    corr_ab: Vec<i32>,
    corr_c: Vec<i32>,
    /// `s/256` per 32 values.
    scale: Vec<f32>,
    /// Exact sums of X per weight block (the offset term).
    xsum: Vec<f32>,
}

impl SplitX {
    fn new(x: &[f32], block: usize, terms: usize) -> SplitX {
        let n = x.len();
        let mut sx = SplitX {
            a: vec![0; n],
            b: vec![0; n],
            c: vec![0; n],
            corr_ab: vec![0; n / 4],
            corr_c: vec![0; n / 4],
            scale: vec![0.0; n / 32],
            xsum: x.chunks_exact(block).map(|c| c.iter().sum()).collect(),
        };
        // Round half away from zero with a truncating conversion (`f32::round` is a libm
        // call here); the clamps keep rounding slips inside i8.
        let round = |v: f32| ((v + 0.5f32.copysign(v)) as i32).clamp(-127, 127);
        for (c, xs) in x.chunks_exact(32).enumerate() {
            let max = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            if max == 0.0 {
                continue; // terms, corrections and the scale stay zero
            }
            let s = max / 127.0;
            let (inv, s_b) = (1.0 / s, s / 256.0);
            for (j, &v) in xs.iter().enumerate() {
                let qa = round(v * inv);
                let r = v - s * qa as f32;
                let qb = round(r * 256.0 * inv);
                let qc = if terms == 3 { round((r - s_b * qb as f32) * 65536.0 * inv) } else { 0 };
                let i = c * 32 + j;
                (sx.a[i], sx.b[i], sx.c[i]) = (qa as i8, qb as i8, qc as i8);
                sx.corr_ab[i / 4] += 8 * (256 * qa + qb);
                sx.corr_c[i / 4] += 8 * qc;
            }
            sx.scale[c] = s_b;
        }
        sx
    }
}

impl QSplit {
    /// Decode and short prefills: each W row is unpacked once for all M rows of X (their
    /// split terms, 2·M·K bytes, stay in L1/L2).
    pub fn supports(p: &Problem) -> bool {
        !p.wformat.is_dense() && p.m <= MAX_M && p.layout.w_trans && !p.layout.x_trans
    }

    pub fn available() -> bool {
        Isa::Avx2.available()
    }

    /// The split's error is relative to `Σ|w·x|`, not to each output: two terms leave
    /// ~1.5e-5 of it, three ~8e-7. Over many outputs that is within the f32 bound
    /// (relative Frobenius over Y), but a lone output that happens to be near zero can
    /// exceed it: 9 % of random 1 x 1 problems do with two terms, and with three terms a
    /// 1 x 1 x 32 q8_0 draw did (1.3e-4, seen on a 16-core machine whose extra thread
    /// variants shifted the validation seeds). Resolved for N ≥ 64 with two terms, N ≥ 8
    /// with three.
    pub fn accurate_for(&self, p: &Problem) -> bool {
        p.n >= if self.terms == 3 { MIN_N_THREE_TERMS } else { MIN_N_TWO_TERMS }
    }

    /// What `candidates` lists: three terms only. Two terms pass the bound on the model's
    /// layers, but with them the SmolLM2 runtime's greedy tokens left the f32 path at a
    /// low-margin step (the 7th token of scripts/bench-int4-cpu.sh's prompt, where
    /// llama.cpp's 8-bit activations leave it too), so `x2` runs only when a table names
    /// it.
    pub fn offered_for(&self, p: &Problem) -> bool {
        self.terms == 3 && self.accurate_for(p)
    }

    /// The (tile, rows) pairs that exist: any tile with one row, eight rows with tile 1.
    pub fn valid(mt: usize, nr: usize) -> bool {
        TILES.contains(&mt) && ROWS.contains(&nr) && (nr == 1 || mt == 1)
    }

    pub fn run(&self, p: &Problem, x: &HostTensor, w: &QuantTensor, y: &mut HostTensor) {
        assert!(QSplit::supports(p) && QSplit::available(), "qsplit kernel called for unsupported {p}");
        let xf = x.as_f32();
        let (m, n, k) = (p.m, p.n, p.k);
        let rb = w.row_bytes();
        y.write_f32(|yf| {
            for bi in 0..p.batch {
                let sx = SplitX::new(&xf[bi * m * k..(bi + 1) * m * k], w.format.block(), self.terms);
                let wrows = &w.data[bi * n * rb..(bi + 1) * n * rb];
                let yp = SendPtr(yf[bi * m * n..].as_mut_ptr());
                super::quant::split_rows(n, self.threads, self.nr, |j0, j1| {
                    let job = Job { f: w.format, x: &sx, w: wrows, rb, m, k, n, j0, j1, mt: self.mt, nr: self.nr, terms: self.terms, y: yp };
                    // SAFETY: AVX2 was checked when the kernel was resolved; the job writes
                    // only columns j0..j1 of Y, disjoint across tasks.
                    unsafe { job_avx2(&job) }
                });
            }
        });
    }
}

struct Job<'a> {
    f: WeightFormat,
    x: &'a SplitX,
    w: &'a [u8],
    rb: usize,
    m: usize,
    k: usize,
    n: usize,
    j0: usize,
    j1: usize,
    mt: usize,
    nr: usize,
    terms: usize,
    y: SendPtr<f32>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn job_avx2(job: &Job<'_>) {
    match (job.f, job.terms == 3) {
        (WeightFormat::Q4_1, true) => job.run::<{ x86::Q4_1 }, true>(),
        (WeightFormat::Q8_0, true) => job.run::<{ x86::Q8_0 }, true>(),
        (WeightFormat::G128, true) => job.run::<{ x86::G128 }, true>(),
        (WeightFormat::Q4_1, false) => job.run::<{ x86::Q4_1 }, false>(),
        (WeightFormat::Q8_0, false) => job.run::<{ x86::Q8_0 }, false>(),
        (WeightFormat::G128, false) => job.run::<{ x86::G128 }, false>(),
        (WeightFormat::Dense, _) => unreachable!("qsplit on dense weights"),
    }
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn job_avx2(_job: &Job<'_>) {
    unreachable!("qsplit is offered on x86-64 with AVX2 only")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Job;
    use std::arch::x86_64::*;

    pub const Q4_1: u8 = 0;
    pub const Q8_0: u8 = 1;
    pub const G128: u8 = 2;

    impl Job<'_> {
        #[inline(always)]
        pub(super) unsafe fn run<const F: u8, const C: bool>(&self) {
            let mut j0 = self.j0;
            if self.nr == 8 {
                while j0 + 8 <= self.j1 {
                    for i in 0..self.m {
                        self.rows8::<F, C>(j0, i);
                    }
                    j0 += 8;
                }
            }
            for j in j0..self.j1 {
                for (i, rows) in crate::backend::cpu::quant::tiles_4_2_1(self.m, self.mt) {
                    match rows {
                        4 => self.tile::<F, 4, C>(j, i),
                        2 => self.tile::<F, 2, C>(j, i),
                        _ => self.tile::<F, 1, C>(j, i),
                    }
                }
            }
        }

        /// `Y[i0..i0+T, j]`: 32 weights at a time, dotted as integers with both terms of
        /// each of the T X rows; even and odd sub-blocks go to two accumulator sets
        /// (independent FMA chains, indexed statically so they stay in registers).
        #[inline(always)]
        unsafe fn tile<const F: u8, const T: usize, const C: bool>(&self, j: usize, i0: usize) {
            let subs = self.k / 32;
            let mut acc0 = [_mm256_setzero_ps(); T];
            let mut acc1 = [_mm256_setzero_ps(); T];
            let mut off = [0f32; T];
            let mut s = 0;
            while s + 2 <= subs {
                self.sub::<F, T, C>(j, i0, s, &mut acc0, &mut off);
                self.sub::<F, T, C>(j, i0, s + 1, &mut acc1, &mut off);
                s += 2;
            }
            if s < subs {
                self.sub::<F, T, C>(j, i0, s, &mut acc0, &mut off);
            }
            let y = self.y.get();
            for t in 0..T {
                *y.add((i0 + t) * self.n + j) = hsum(_mm256_add_ps(acc0[t], acc1[t])) + off[t];
            }
        }

        /// Sub-block `s` (values 32·s..32·s+32) of W row `j` against X rows `i0..i0+T`.
        #[inline(always)]
        unsafe fn sub<const F: u8, const T: usize, const C: bool>(&self, j: usize, i0: usize, s: usize, acc: &mut [__m256; T], off: &mut [f32; T]) {
            let (k, row) = (self.k, self.w.as_ptr().add(j * self.rb));
            let per = if F == G128 { 4 } else { 1 }; // sub-blocks per weight block
            let (bk, part) = (s / per, s % per);
            let (d, c) = params::<F>(row, k, bk);
            let (q, sign) = weights32::<F>(row, bk, part);
            let (ones, x256) = (_mm256_set1_epi16(1), _mm256_set1_epi16(256));
            for t in 0..T {
                let r = (i0 + t) * k + 32 * s;
                let load = |v: &[i8]| {
                    let v = _mm256_loadu_si256(v.as_ptr().add(r) as *const __m256i);
                    // maddubs multiplies unsigned by signed: |w| times x with w's sign.
                    if F == Q8_0 {
                        _mm256_sign_epi8(v, sign)
                    } else {
                        v
                    }
                };
                let (a, b, c3) = (load(&self.x.a), load(&self.x.b), load(&self.x.c));
                // 256·Σ q·a + Σ q·b (the factor 256 folded into the pair sums), and Σ q·c;
                // lane l holds the sums over values 4l..4l+4.
                let pa = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), x256);
                let pb = _mm256_madd_epi16(_mm256_maddubs_epi16(q, b), ones);
                // The third term (`C`): skipped, its sums are zero.
                let mut pc = if C { _mm256_madd_epi16(_mm256_maddubs_epi16(q, c3), ones) } else { ones };
                let mut pab = _mm256_add_epi32(pa, pb);
                if F != Q8_0 {
                    // Centred nibbles: subtract 8 times the sums of the terms.
                    let corr = |v: &[i32]| _mm256_loadu_si256(v.as_ptr().add(r / 4) as *const __m256i);
                    pab = _mm256_sub_epi32(pab, corr(&self.x.corr_ab));
                    if C {
                        pc = _mm256_sub_epi32(pc, corr(&self.x.corr_c));
                    }
                }
                let sc = d * *self.x.scale.as_ptr().add((i0 + t) * (k / 32) + s);
                let hi = _mm256_fmadd_ps(_mm256_set1_ps(sc), _mm256_cvtepi32_ps(pab), acc[t]);
                acc[t] = if C { _mm256_fmadd_ps(_mm256_set1_ps(sc * (1.0 / 256.0)), _mm256_cvtepi32_ps(pc), hi) } else { hi };
                if F != Q8_0 && part == 0 {
                    off[t] += c * *self.x.xsum.as_ptr().add((i0 + t) * (k / (32 * per)) + bk);
                }
            }
        }
    }

    impl Job<'_> {
        /// `Y[i, j..j+8]`: the integer sums of 8 W rows reduced into one vector (lane r
        /// for row j + r), so conversion, scaling and the offset term run once per 8 rows.
        #[inline(always)]
        unsafe fn rows8<const F: u8, const C: bool>(&self, j: usize, i: usize) {
            let k = self.k;
            let per = if F == G128 { 4 } else { 1 }; // sub-blocks per weight block
            let rows: [*const u8; 8] = std::array::from_fn(|r| self.w.as_ptr().add((j + r) * self.rb));
            // The 8 rows are read 8 blocks apart, which the hardware prefetcher does not
            // follow well: fetch the 8 rows after the next (contiguous) ahead, once per X row 0.
            if i == 0 && j + 24 <= self.j1 {
                let next = self.w.as_ptr().add((j + 16) * self.rb);
                for line in (0..8 * self.rb).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(next.add(line) as *const i8);
                }
            }
            let (ones, x256) = (_mm256_set1_epi16(1), _mm256_set1_epi16(256));
            let (mut acc, mut off) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut d = _mm256_setzero_ps();
            for s in 0..k / 32 {
                let (bk, part) = (s / per, s % per);
                if part == 0 {
                    let c;
                    (d, c) = params8::<F>(&rows, k, bk);
                    if F != Q8_0 {
                        let xs = *self.x.xsum.as_ptr().add(i * (k / (32 * per)) + bk);
                        off = _mm256_fmadd_ps(c, _mm256_set1_ps(xs), off);
                    }
                }
                let r0 = i * k + 32 * s;
                let load = |v: &[i8]| _mm256_loadu_si256(v.as_ptr().add(r0) as *const __m256i);
                let (xa, xb, xc) = (load(&self.x.a), load(&self.x.b), load(&self.x.c));
                let corr = |v: &[i32]| _mm256_loadu_si256(v.as_ptr().add(r0 / 4) as *const __m256i);
                let (cab, cc) = if F != Q8_0 { (corr(&self.x.corr_ab), corr(&self.x.corr_c)) } else { (ones, ones) };
                // One W row's integer sums (per lane of 4 values), centred.
                let sums = |r: usize| {
                    let (q, sign) = weights32::<F>(rows[r], bk, part);
                    let (a, b, c3) = if F == Q8_0 {
                        (_mm256_sign_epi8(xa, sign), _mm256_sign_epi8(xb, sign), _mm256_sign_epi8(xc, sign))
                    } else {
                        (xa, xb, xc)
                    };
                    let pa = _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), x256);
                    let pb = _mm256_madd_epi16(_mm256_maddubs_epi16(q, b), ones);
                    let pc = if C { _mm256_madd_epi16(_mm256_maddubs_epi16(q, c3), ones) } else { ones };
                    let pab = _mm256_add_epi32(pa, pb);
                    if F != Q8_0 {
                        (_mm256_sub_epi32(pab, cab), if C { _mm256_sub_epi32(pc, cc) } else { pc })
                    } else {
                        (pab, pc)
                    }
                };
                // Pairwise horizontal adds as the rows come, to keep few registers live.
                let mut hab = [_mm256_setzero_si256(); 4];
                let mut hc = [_mm256_setzero_si256(); 4];
                for pair in 0..4 {
                    let (ab0, c0) = sums(2 * pair);
                    let (ab1, c1) = sums(2 * pair + 1);
                    hab[pair] = _mm256_hadd_epi32(ab0, ab1);
                    if C {
                        hc[pair] = _mm256_hadd_epi32(c0, c1);
                    }
                }
                let vab = reduce8(&hab);
                let sc = _mm256_mul_ps(d, _mm256_set1_ps(*self.x.scale.as_ptr().add(i * (k / 32) + s)));
                acc = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(vab), acc);
                if C {
                    let vc = reduce8(&hc);
                    acc = _mm256_fmadd_ps(_mm256_mul_ps(sc, _mm256_set1_ps(1.0 / 256.0)), _mm256_cvtepi32_ps(vc), acc);
                }
            }
            _mm256_storeu_ps(self.y.get().add(i * self.n + j), _mm256_add_ps(acc, off));
        }
    }

    /// Finishes the reduction of 8 rows: `h[p]` = hadd(row 2p, row 2p+1); the result's
    /// lane r is the sum of all 8 lanes of row r.
    #[inline(always)]
    unsafe fn reduce8(h: &[__m256i; 4]) -> __m256i {
        let u0 = _mm256_hadd_epi32(h[0], h[1]); // rows 0..4: lanes 0..4 sums | lanes 4..8 sums
        let u1 = _mm256_hadd_epi32(h[2], h[3]); // rows 4..8
        let lo = _mm256_permute2x128_si256(u0, u1, 0x20);
        let hi = _mm256_permute2x128_si256(u0, u1, 0x31);
        _mm256_add_epi32(lo, hi)
    }

    /// Scales and centred offsets of block `b` of 8 rows as vectors (lane r: row r).
    #[inline(always)]
    unsafe fn params8<const F: u8>(rows: &[*const u8; 8], k: usize, b: usize) -> (__m256, __m256) {
        let at = |r: usize| -> i32 {
            let p = match F {
                Q4_1 => rows[r].add(20 * b),
                Q8_0 => rows[r].add(34 * b),
                _ => rows[r].add(k / 2 + 4 * b),
            };
            (p as *const i32).read_unaligned()
        };
        // Each lane holds (first f16, second f16); split into two vectors of 8 f16.
        let raw = _mm256_setr_epi32(at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7));
        let firsts = _mm256_shuffle_epi8(raw, _mm256_setr_epi8(
            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
        ));
        // 64-bit lanes: [firsts 0..4, seconds 0..4, firsts 4..8, seconds 4..8].
        let ordered = _mm256_permute4x64_epi64(firsts, 0b11_01_10_00);
        let d = _mm256_cvtph_ps(_mm256_castsi256_si128(ordered));
        let o = _mm256_cvtph_ps(_mm256_extracti128_si256(ordered, 1));
        let c = match F {
            Q4_1 => _mm256_fmadd_ps(_mm256_set1_ps(8.0), d, o),
            Q8_0 => _mm256_setzero_ps(),
            _ => _mm256_mul_ps(d, _mm256_sub_ps(_mm256_set1_ps(8.0), o)),
        };
        (d, c)
    }

    /// Scale and offset of block `b` for centred values: q4_1 (d, m + 8d), q8_0 (d, 0),
    /// g128 (s, s·(8 − z)).
    #[inline(always)]
    unsafe fn params<const F: u8>(row: *const u8, k: usize, b: usize) -> (f32, f32) {
        let at = match F {
            Q4_1 => row.add(20 * b),
            Q8_0 => row.add(34 * b),
            _ => row.add(k / 2 + 4 * b),
        };
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128((at as *const i32).read_unaligned()));
        let (d, o) = (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)));
        match F {
            Q4_1 => (d, o + 8.0 * d),
            Q8_0 => (d, 0.0),
            _ => (d, d * (8.0 - o)),
        }
    }

    /// The 32 weights of sub-block `sub` of block `b` as unsigned bytes in element order
    /// (q8_0: their absolute values), and for q8_0 the signed bytes (for their signs).
    #[inline(always)]
    unsafe fn weights32<const F: u8>(row: *const u8, b: usize, sub: usize) -> (__m256i, __m256i) {
        if F == Q8_0 {
            let w = _mm256_loadu_si256(row.add(34 * b + 2) as *const __m256i);
            return (_mm256_sign_epi8(w, w), w);
        }
        let p = if F == Q4_1 { row.add(20 * b + 4) } else { row.add(64 * b + 16 * sub) };
        let raw = _mm_loadu_si128(p as *const __m128i);
        if F == G128 {
            // GPTQ order: element 2i low nibble, 2i+1 high nibble of byte i.
            let mask = _mm_set1_epi8(0x0f);
            let (lo, hi) = (_mm_and_si128(raw, mask), _mm_and_si128(_mm_srli_epi16(raw, 4), mask));
            (_mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi)), _mm256_setzero_si256())
        } else {
            // GGUF order: elements 0..16 low nibbles, 16..32 high nibbles.
            let both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
            (_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_setzero_si256())
        }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_terms_reconstruct_x_within_f32_rounding() {
        let x: Vec<f32> = (0..256).map(|i| crate::random::value(5, i) * if i % 37 == 0 { 9.0 } else { 1.0 }).collect();
        let s = SplitX::new(&x, 32, 3);
        for (c, xs) in x.chunks_exact(32).enumerate() {
            let max = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            for j in 0..32 {
                let i = c * 32 + j;
                let sc = s.scale[c] as f64;
                let back = sc * (256.0 * s.a[i] as f64 + s.b[i] as f64 + s.c[i] as f64 / 256.0);
                assert!((back - x[i] as f64).abs() <= max as f64 * 2e-7, "{i}: {back} vs {}", x[i]);
            }
        }
        let zeros = SplitX::new(&[0.0; 32], 32, 3);
        assert!(zeros.a.iter().chain(&zeros.b).chain(&zeros.c).all(|&v| v == 0) && zeros.scale[0] == 0.0);
    }
}
