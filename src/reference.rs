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
use rand::{rngs::SmallRng, seq::index::sample, Rng, SeedableRng};
use rayon::prelude::*;

/// Multiply-adds per checked batch item the reference may spend.
pub const CHECK_MACS: u64 = 1 << 25;

/// Batch items, beyond the first, a random middle one and the last (which get the full
/// grid), that get a few entries each: a kernel with a wrong batch stride or offset
/// overflow far into the batch shows there, at 2·K multiply-adds an item.
pub const SPOT_ITEMS: usize = 256;

/// The checked entries: for each block, every (row, col) of `rows × cols` in batch
/// item `batch`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub blocks: Vec<Block>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub batch: usize,
    pub rows: Vec<usize>,
    pub cols: Vec<usize>,
}

impl Sample {
    pub fn choose(p: &Problem, seed: u64) -> Sample {
        let mut rng = SmallRng::seed_from_u64(seed);
        let full: Vec<usize> = if p.batch <= 2 {
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
        let (rows, cols) = (pick(p.m, rows, &mut rng), pick(p.n, cols, &mut rng));
        let mut blocks: Vec<Block> =
            full.iter().map(|&batch| Block { batch, rows: rows.clone(), cols: cols.clone() }).collect();
        // The other items, all of them or SPOT_ITEMS spread evenly: one random entry and
        // the item's last entry (its tail) each.
        let others: Vec<usize> = (0..p.batch).filter(|b| !full.contains(b)).collect();
        let step = others.len().div_ceil(SPOT_ITEMS).max(1);
        for &batch in others.iter().step_by(step) {
            let (i, j) = (rng.random_range(0..p.m), rng.random_range(0..p.n));
            blocks.push(Block { batch, rows: vec![i], cols: vec![j] });
            if (i, j) != (p.m - 1, p.n - 1) {
                blocks.push(Block { batch, rows: vec![p.m - 1], cols: vec![p.n - 1] });
            }
        }
        Sample { blocks }
    }

    pub fn len(&self) -> usize {
        self.blocks.iter().map(|b| b.rows.len() * b.cols.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat indices into row-major Y `[batch, M, N]` of the entries, in reference order.
    pub fn y_indices(&self, p: &Problem) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.len());
        for b in &self.blocks {
            for &i in &b.rows {
                for &j in &b.cols {
                    v.push(b.batch * p.m * p.n + i * p.n + j);
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
    for blk in &s.blocks {
        let b = blk.batch;
        let row = |seed: u64, idx: &dyn Fn(usize) -> usize, value: &dyn Fn(u64, u64) -> f64| -> Vec<f64> {
            (0..p.k).map(|kk| value(seed, idx(kk) as u64)).collect()
        };
        let x_value = |seed: u64, i: u64| random::element(d, seed, i) as f64;
        let xs: Vec<Vec<f64>> =
            blk.rows.par_iter().map(|&i| row(x_seed, &|kk| x_index(p, b, i, kk), &x_value)).collect();
        let ws: Vec<Vec<f64>> =
            blk.cols.par_iter().map(|&j| row(w_seed, &|kk| w_index(p, b, j, kk), &w_value)).collect();
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
            let b = &s.blocks[0];
            assert!(b.rows.contains(&0) && b.rows.contains(&(m - 1)), "{m} {n} {k}");
            assert!(b.cols.contains(&0) && b.cols.contains(&(n - 1)), "{m} {n} {k}");
            let macs = s.len() as u64 * k as u64;
            assert!(macs <= CHECK_MACS + k as u64 * 4, "{m} {n} {k}: {macs}");
            assert!(s.len() >= 1000.min(m * n), "{m} {n} {k}: only {} entries", s.len());
        }
    }

    /// Every batch item is checked somewhere: three with the full grid, the others with a
    /// random entry and their tail; a large batch spreads SPOT_ITEMS over its items.
    #[test]
    fn every_batch_item_is_checked_up_to_the_spot_cap() {
        let items = |p: &Problem| {
            let s = Sample::choose(p, 5);
            let mut b: Vec<usize> = s.blocks.iter().map(|b| b.batch).collect();
            b.dedup();
            (s, b)
        };
        let p = Problem::new(DType::BF16, Layout::TN, 64, 96, 128, 40).unwrap();
        let (s, b) = items(&p);
        let mut sorted = b.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..40).collect::<Vec<_>>());
        assert!(s.blocks.iter().all(|b| b.rows.len() * b.cols.len() == 64 * 96 || b.rows.len() * b.cols.len() == 1));
        for item in s.blocks[3..].iter().map(|b| b.batch) {
            assert!(s.blocks.iter().any(|b| b.batch == item && b.rows == [63] && b.cols == [95]), "item {item}'s tail");
        }
        let p = Problem::new(DType::BF16, Layout::TN, 2, 3, 4, 5000).unwrap();
        let (_, b) = items(&p);
        assert!(b.len() >= SPOT_ITEMS * 9 / 10 && b.len() <= SPOT_ITEMS + 3, "{}", b.len());
        assert!(b.contains(&4999) && b.contains(&0));
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
