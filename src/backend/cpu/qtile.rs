//! `cpu:qtile:avx2:t<threads>`: quantized weights (q4_1, q8_0, g128) at prefill-sized M
//! (2 to a few hundred rows), f32 activations, f32 arithmetic.
//!
//! W is dequantized `PANEL` rows at a time into a per-thread buffer that stays in L1/L2
//! (as `cpu:qpanel`), and each panel is multiplied by a register-blocked kernel instead of
//! a `gemm` call: the `gemm` crate packs X into its own layout on every call, once per
//! panel here, which at M = 25 (a SmolLM2 prompt) costs about as much as the products.
//! Both operands are K-contiguous (layout TN), so the kernel needs no packing at all: a
//! 4 x 3 tile of Y keeps 12 vector accumulators along K (8 values each), fed per step by 3
//! weight and 4 activation loads (12 FMAs: FMA-bound, 16 registers), and reduces them
//! horizontally once at the end of the row. The dequantized values are the ones
//! `cpu:dqgemm` multiplies (`quant::dequantize_row`), so the results stay within the f32
//! bound the same way.
//!
//! No crate offers a small-M microkernel over a dequantized panel without repacking
//! (`gemm`, `matrixmultiply` pack both operands), hence written on top of `std::arch`.

use super::libs::SendPtr;
use super::sysinfo::Isa;
use super::tensor::HostTensor;
use crate::problem::{Problem, WeightFormat};
use crate::quant::QuantTensor;
use std::cell::RefCell;

/// W rows dequantized per panel: a multiple of the tile's 3 rows; 24 rows of K = 1536
/// are 144 KiB (L2), of K = 576 54 KiB.
const PANEL: usize = 24;
/// Tile of Y: X rows by W rows.
const MR: usize = 4;
const NR: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QTile {
    pub threads: usize,
}

thread_local! {
    /// The current panel (reused: fresh pages on every call would cost more than the work).
    static PANEL_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl QTile {
    /// Offered from M = 2: at M = 1 each dequantized weight would serve one product, and
    /// the fused decode kernels, which never store W as f32, are faster.
    pub fn supports(p: &Problem) -> bool {
        !p.wformat.is_dense() && p.m >= 2 && p.layout.w_trans && !p.layout.x_trans
    }

    pub fn available() -> bool {
        Isa::Avx2.available()
    }

    pub fn run(&self, p: &Problem, x: &HostTensor, w: &QuantTensor, y: &mut HostTensor) {
        assert!(QTile::supports(p) && QTile::available(), "qtile kernel called for unsupported {p}");
        let xf = x.as_f32();
        let (m, n, k) = (p.m, p.n, p.k);
        y.write_f32(|yf| {
            for bi in 0..p.batch {
                let xb = &xf[bi * m * k..(bi + 1) * m * k];
                let yp = SendPtr(yf[bi * m * n..].as_mut_ptr());
                super::quant::split_rows(n, self.threads, PANEL, |j0, j1| {
                    PANEL_BUF.with_borrow_mut(|buf| {
                        buf.resize(PANEL * k, 0.0);
                        for j in (j0..j1).step_by(PANEL) {
                            let rows = PANEL.min(j1 - j);
                            for (r, o) in buf[..rows * k].chunks_exact_mut(k).enumerate() {
                                // SAFETY: AVX2 and FMA were checked when the kernel was resolved.
                                unsafe { dequantize_avx2(w.format, w.row(bi * n + j + r), o) }
                            }
                            let panel = Panel { x: xb, w: &buf[..rows * k], m, n, k, j, y: yp };
                            // SAFETY: AVX2 and FMA were checked when the kernel was resolved;
                            // the panel writes only columns j..j + rows of Y, disjoint across
                            // tasks.
                            unsafe { panel_avx2(&panel) }
                        }
                    })
                });
            }
        });
    }
}

/// `quant::dequantize_row` with AVX2 for q4_1 and q8_0 (g128 through it): the same
/// values, bit for bit (`d·q + m` as a product then a sum, not one fused operation), so
/// the panel holds what `cpu:dqgemm` and the f32 runtime multiply. By hand because the
/// portable loop, compiled for the crate's SSE2 baseline and not inlined here, took 30 %
/// of the kernel's time at M = 25.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequantize_avx2(f: WeightFormat, row: &[u8], out: &mut [f32]) {
    use super::vector::f16_at as f16;
    use std::arch::x86_64::*;
    match f {
        WeightFormat::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(32).zip(row.chunks_exact(20)) {
                let (d, m) = (_mm256_set1_ps(f16(b.as_ptr())), _mm256_set1_ps(f16(b.as_ptr().add(2))));
                let v = _mm_loadu_si128(b.as_ptr().add(4) as *const __m128i);
                let mask = _mm_set1_epi8(0x0f);
                // Elements 0..16: low nibbles of bytes 0..16; 16..32: high nibbles.
                let halves = [_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16(v, 4), mask)];
                for (h, q) in halves.into_iter().enumerate() {
                    for e in 0..2 {
                        let bytes = if e == 0 { q } else { _mm_unpackhi_epi64(q, q) };
                        let qf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
                        _mm256_storeu_ps(o.as_mut_ptr().add(16 * h + 8 * e), _mm256_add_ps(_mm256_mul_ps(d, qf), m));
                    }
                }
            }
        }
        WeightFormat::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(32).zip(row.chunks_exact(34)) {
                let d = _mm256_set1_ps(f16(b.as_ptr()));
                for e in 0..4 {
                    let bytes = _mm_loadl_epi64(b.as_ptr().add(2 + 8 * e) as *const __m128i);
                    let qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                    _mm256_storeu_ps(o.as_mut_ptr().add(8 * e), _mm256_mul_ps(d, qf));
                }
            }
        }
        _ => crate::quant::dequantize_row(f, row, out),
    }
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn dequantize_avx2(f: WeightFormat, row: &[u8], out: &mut [f32]) {
    crate::quant::dequantize_row(f, row, out)
}

/// One dequantized panel of W rows j.. against all of X.
struct Panel<'a> {
    x: &'a [f32],
    w: &'a [f32],
    m: usize,
    n: usize,
    k: usize,
    j: usize,
    y: SendPtr<f32>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_avx2(pn: &Panel<'_>) {
    let rows = pn.w.len() / pn.k;
    for (i, mt) in super::quant::tiles_4_2_1(pn.m, MR) {
        let mut r = 0;
        while r < rows {
            let nt = NR.min(rows - r);
            match (mt, nt) {
                (4, 3) => x86::tile::<4, 3>(pn, i, r),
                (4, 2) => x86::tile::<4, 2>(pn, i, r),
                (4, _) => x86::tile::<4, 1>(pn, i, r),
                (2, 3) => x86::tile::<2, 3>(pn, i, r),
                (2, 2) => x86::tile::<2, 2>(pn, i, r),
                (2, _) => x86::tile::<2, 1>(pn, i, r),
                (_, 3) => x86::tile::<1, 3>(pn, i, r),
                (_, 2) => x86::tile::<1, 2>(pn, i, r),
                _ => x86::tile::<1, 1>(pn, i, r),
            }
            r += nt;
        }
    }
}
#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel_avx2(_pn: &Panel<'_>) {
    unreachable!("qtile is offered on x86-64 with AVX2 only")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Panel;
    use crate::backend::cpu::vector::{Avx2, F32s};
    use std::arch::x86_64::*;

    /// `Y[i0..i0+MT, j+r0..j+r0+NT]` over all of K (a multiple of 8: blocks are 32 or 128).
    #[inline(always)]
    pub(super) unsafe fn tile<const MT: usize, const NT: usize>(pn: &Panel<'_>, i0: usize, r0: usize) {
        let k = pn.k;
        let xs: [*const f32; MT] = std::array::from_fn(|i| pn.x.as_ptr().add((i0 + i) * k));
        let ws: [*const f32; NT] = std::array::from_fn(|r| pn.w.as_ptr().add((r0 + r) * k));
        let mut acc = [[_mm256_setzero_ps(); NT]; MT];
        let mut kk = 0;
        while kk < k {
            let wv: [__m256; NT] = std::array::from_fn(|r| _mm256_loadu_ps(ws[r].add(kk)));
            for i in 0..MT {
                let xv = _mm256_loadu_ps(xs[i].add(kk));
                for r in 0..NT {
                    acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
                }
            }
            kk += 8;
        }
        let y = pn.y.get();
        for (i, row) in acc.iter().enumerate() {
            for (r, &a) in row.iter().enumerate() {
                *y.add((i0 + i) * pn.n + pn.j + r0 + r) = Avx2::hsum(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::DType;

    /// The AVX2 dequantization gives `quant::dequantize_row`'s values bit for bit.
    #[test]
    fn panel_values_are_those_of_dequantize_row() {
        if !QTile::available() {
            eprintln!("skipped: no AVX2 here");
            return;
        }
        for f in [WeightFormat::Q4_1, WeightFormat::Q8_0, WeightFormat::G128] {
            let (n, k) = (5, 384);
            let mut w = QuantTensor::zeros(f, n, k);
            w.fill_random(9);
            let (mut want, mut got) = (vec![0f32; k], vec![f32::NAN; k]);
            for r in 0..n {
                w.dequantize_row(r, &mut want);
                // SAFETY: AVX2 checked above.
                unsafe { dequantize_avx2(f, w.row(r), &mut got) };
                let same = want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{f} row {r}: {:?} vs {:?}", &got[..8], &want[..8]);
            }
        }
    }

    /// Every tile shape (M = 7: tiles 4, 2, 1; N = 29: a whole panel, then 5 rows = 3 + 2,
    /// across tasks) against the dequantized weights multiplied in f64.
    #[test]
    fn tiles_and_panel_edges_match_the_f64_product() {
        if !QTile::available() {
            eprintln!("skipped: no AVX2 here");
            return;
        }
        for f in [WeightFormat::Q4_1, WeightFormat::Q8_0, WeightFormat::G128] {
            let (m, n, k) = (7, 29, 256);
            let p = Problem::linear(DType::F32, m, n, k).unwrap().with_weights(f).unwrap();
            let mut w = QuantTensor::zeros(f, n, k);
            w.fill_random(5);
            let xv: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
            let x = HostTensor::F32(xv.clone());
            for threads in [1, 2] {
                let mut y = HostTensor::F32(vec![f32::NAN; m * n]);
                QTile { threads }.run(&p, &x, &w, &mut y);
                let got = y.as_f32();
                let mut row = vec![0f32; k];
                for j in 0..n {
                    w.dequantize_row(j, &mut row);
                    for i in 0..m {
                        let want: f64 = (0..k).map(|t| xv[i * k + t] as f64 * row[t] as f64).sum();
                        let scale: f64 = (0..k).map(|t| (xv[i * k + t] as f64 * row[t] as f64).abs()).sum();
                        let err = (got[i * n + j] as f64 - want).abs();
                        assert!(err <= 1e-5 * scale, "{f} t{threads} y[{i},{j}] = {} vs {want}", got[i * n + j]);
                    }
                }
            }
        }
    }
}
