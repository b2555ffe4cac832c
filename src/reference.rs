//! The f64 reference GEMM used only to validate candidates, and the choice of which
//! output entries it checks.
//!
//! A full f64 product is affordable for small problems only (the largest prefill shapes
//! are 10^12+ multiply-adds), so large problems check a grid of sampled rows × sampled
//! columns of Y, always including the first and last row and column (tails live there):
//! a wrong stride, a missed tail or a wrong split-K reduction shows up in those entries.
//! Unwritten outputs are caught separately: every output is poisoned with NaN before the
//! run and the whole of Y is scanned afterwards.

use crate::problem::Problem;
use crate::random;
use rand::{rngs::SmallRng, seq::index::sample, SeedableRng};
use rayon::prelude::*;

/// Multiply-adds per checked batch item the reference may spend.
pub const CHECK_MACS: u64 = 1 << 25;

/// The checked entries: every (row, col) of `rows × cols` in each batch item of `batches`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub batches: Vec<usize>,
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
}

impl Sample {
    pub fn choose(p: &Problem, seed: u64) -> Sample {
        let mut rng = SmallRng::seed_from_u64(seed);
        let batches: Vec<usize> = if p.batch <= 2 {
            (0..p.batch).collect()
        } else {
            vec![0, 1 + (seed as usize % (p.batch - 2)), p.batch - 1]
        };
        let entries = (CHECK_MACS / p.k as u64).max(4) as usize;
        let (rows, cols) = if p.m.saturating_mul(p.n) <= entries {
            (p.m, p.n)
        } else {
            let side = (entries as f64).sqrt() as usize;
            if p.m <= side {
                (p.m, (entries / p.m).min(p.n))
            } else if p.n <= side {
                ((entries / p.n).min(p.m), p.n)
            } else {
                (side, side)
            }
        };
        Sample { batches, rows: pick(p.m, rows, &mut rng), cols: pick(p.n, cols, &mut rng) }
    }

    pub fn len(&self) -> usize {
        self.batches.len() * self.rows.len() * self.cols.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat indices into row-major Y `[batch, M, N]` of the entries, in reference order.
    pub fn y_indices(&self, p: &Problem) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.len());
        for &b in &self.batches {
            for &i in &self.rows {
                for &j in &self.cols {
                    v.push(b * p.m * p.n + i * p.n + j);
                }
            }
        }
        v
    }
}

fn pick(len: usize, count: usize, rng: &mut SmallRng) -> Vec<usize> {
    let count = count.max(1);
    if count >= len {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = sample(rng, len, count).into_iter().collect();
    v.sort_unstable();
    // The edges are always checked.
    v[0] = 0;
    if count > 1 {
        let last = v.len() - 1;
        v[last] = len - 1;
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Flat element index of logical X[b, i, kk] (`[M, K]`) in the stored operand.
pub fn x_index(p: &Problem, b: usize, i: usize, kk: usize) -> usize {
    let s = p.x_strides();
    b * p.m * p.k + i * s.row + kk * s.col
}
/// Flat element index of logical W[b, j, kk] (`[N, K]`) in the stored operand.
pub fn w_index(p: &Problem, b: usize, j: usize, kk: usize) -> usize {
    let s = p.w_strides();
    b * p.n * p.k + j * s.row + kk * s.col
}

/// f64 reference of the sampled entries for operands drawn with `random::element`
/// from `x_seed` and `w_seed` (in `Sample::y_indices` order).
pub fn reference(p: &Problem, s: &Sample, x_seed: u64, w_seed: u64) -> Vec<f64> {
    let d = p.dtype;
    // Quantized weights: the exact values of the packed random weights (dequantized).
    let w_value = |seed: u64, i: u64| -> f64 {
        if p.wformat.is_dense() {
            random::element(d, seed, i) as f64
        } else {
            crate::quant::random_value(p.wformat, seed, i)
        }
    };
    let mut out = Vec::with_capacity(s.len());
    for &b in &s.batches {
        let row = |seed: u64, idx: &dyn Fn(usize) -> usize, value: &dyn Fn(u64, u64) -> f64| -> Vec<f64> {
            (0..p.k).map(|kk| value(seed, idx(kk) as u64)).collect()
        };
        let x_value = |seed: u64, i: u64| random::element(d, seed, i) as f64;
        let xs: Vec<Vec<f64>> =
            s.rows.par_iter().map(|&i| row(x_seed, &|kk| x_index(p, b, i, kk), &x_value)).collect();
        let ws: Vec<Vec<f64>> =
            s.cols.par_iter().map(|&j| row(w_seed, &|kk| w_index(p, b, j, kk), &w_value)).collect();
        let block: Vec<f64> = xs
            .par_iter()
            .flat_map_iter(|x| ws.iter().map(move |w| x.iter().zip(w).map(|(a, b)| a * b).sum()))
            .collect();
        out.extend(block);
    }
    out
}

/// Relative Frobenius error ‖got − want‖ / ‖want‖.
pub fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (g, w) in got.iter().zip(want) {
        num += (g - w) * (g - w);
        den += w * w;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// The largest entry error, each relative to |want| + the rms of `want` (an absolute
/// floor for entries near 0), and the index where it occurs.
pub fn entry_error(got: &[f64], want: &[f64]) -> (f64, usize) {
    let rms = (want.iter().map(|w| w * w).sum::<f64>() / want.len().max(1) as f64).sqrt();
    let mut worst = (0.0, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (g - w).abs() / (w.abs() + rms).max(f64::MIN_POSITIVE);
        if e > worst.0 || e.is_nan() {
            worst = (e, i);
            if e.is_nan() {
                break;
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{DType, Layout};

    #[test]
    fn small_problems_check_everything() {
        let p = Problem::linear(DType::F32, 3, 5, 7).unwrap();
        let s = Sample::choose(&p, 1);
        assert_eq!(s.len(), 15);
    }

    #[test]
    fn large_problems_sample_a_grid_with_edges_within_budget() {
        for (m, n, k) in [(4096, 8192, 4096), (1, 128256, 4096), (8192, 1280, 8192), (16, 49152, 576)] {
            let p = Problem::linear(DType::BF16, m, n, k).unwrap();
            let s = Sample::choose(&p, 3);
            assert!(s.rows.contains(&0) && s.rows.contains(&(m - 1)), "{m} {n} {k}");
            assert!(s.cols.contains(&0) && s.cols.contains(&(n - 1)), "{m} {n} {k}");
            let macs = s.len() as u64 * k as u64;
            assert!(macs <= CHECK_MACS + k as u64 * 4, "{m} {n} {k}: {macs}");
            assert!(s.len() >= 1000.min(m * n), "{m} {n} {k}: only {} entries", s.len());
        }
    }

    #[test]
    fn reference_matches_naive_product_in_every_layout() {
        for layout in [Layout::TN, Layout::NN, Layout::NT, Layout::TT] {
            let p = Problem::new(DType::F32, layout, 3, 4, 5, 2).unwrap();
            let s = Sample::choose(&p, 9);
            let got = reference(&p, &s, 11, 12);
            let x: Vec<f64> = (0..p.x_len()).map(|i| random::value(11, i as u64) as f64).collect();
            let w: Vec<f64> = (0..p.w_len()).map(|i| random::value(12, i as u64) as f64).collect();
            let mut want = Vec::new();
            for b in 0..2 {
                for i in 0..3 {
                    for j in 0..4 {
                        let mut acc = 0.0;
                        for kk in 0..5 {
                            // Stored X is [M,K] (or [K,M] for x_trans), W is [N,K] (or [K,N]).
                            let xv = if layout.x_trans { x[b * 15 + kk * 3 + i] } else { x[b * 15 + i * 5 + kk] };
                            let wv = if layout.w_trans { w[b * 20 + j * 5 + kk] } else { w[b * 20 + kk * 4 + j] };
                            acc += xv * wv;
                        }
                        want.push(acc);
                    }
                }
            }
            assert!(relative_error(&got, &want) < 1e-12, "{layout}");
        }
    }
}
