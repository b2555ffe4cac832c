//! Causal grouped-query attention on the CPU, f32, over each sequence's KV cache.
//!
//! Two forms. A decode step (one new row per sequence) runs a task per (row, query head)
//! that streams the head's keys and values once. A prefill chunk (many rows of one
//! sequence) runs tiles: a block of `ROWS` rows times the query heads that share a KV
//! head walks the keys and values in tiles of `KEYS` positions with an online softmax, so
//! each tile, read from memory once, serves every row and head of the block from L1/L2.
//! Per (row, head) the keys of a 3000-token context are 1.5 MB, more than a core's L2:
//! in the first form a long prompt streamed them from memory once per row and head, and
//! attention took ~75 % of a 3000-token SmolLM2 prefill (docs/PERFORMANCE.md).
//!
//! Rows are `(sequence, position)`; a row at position `p` attends to cached positions
//! `0..=p` of its sequence (the new rows' keys are already appended to the cache).

use super::llama::Config;
use rayon::prelude::*;

/// Query rows of one tile task (a prefill chunk of 128 rows is 8 of them per KV head).
const ROWS: usize = 16;
/// Key positions per tile: 256 keys and values of a 64-wide head are 128 KB, in L2, and
/// the scores of a block (48 queries × 256) 48 KB.
const KEYS: usize = 256;

/// Attention output `[rows × heads·head_dim]` of the query rows `q` (same layout), whose
/// sequence and position `rows` gives, against `caches[sequence]` = (keys, values) of
/// this layer, `[positions × kv_heads·head_dim]` each.
pub fn attention(q: &[f32], rows: &[(usize, usize)], caches: &[(&[f32], &[f32])], c: &Config) -> Vec<f32> {
    let (hd, qn) = (c.head_dim, c.heads * c.head_dim);
    let mut out = vec![0f32; rows.len() * qn];
    if rows.len() == caches.len() {
        // One row per sequence (decode): a task per (row, query head), as there are few rows.
        out.par_chunks_mut(hd).enumerate().for_each(|(i, o)| {
            let (r, hq) = (i / c.heads, i % c.heads);
            let (s, pos) = rows[r];
            let (k, v) = caches[s];
            attend_row(&q[r * qn + hq * hd..r * qn + (hq + 1) * hd], hq, k, v, pos + 1, c, o);
        });
        return out;
    }
    // Blocks of consecutive rows of one sequence, times KV heads.
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && end - start < ROWS && rows[end].0 == rows[start].0 {
            end += 1;
        }
        blocks.extend((0..c.kv_heads).map(|g| (start, end, g)));
        start = end;
    }
    let results: Vec<Vec<f32>> = blocks
        .par_iter()
        .map(|&(r0, r1, g)| {
            let (k, v) = caches[rows[r0].0];
            let mut o = vec![0f32; (r1 - r0) * (c.heads / c.kv_heads) * hd];
            attend_tile(q, &rows[r0..r1], r0, g, k, v, c, &mut o);
            o
        })
        .collect();
    let group = c.heads / c.kv_heads;
    for (&(r0, r1, g), o) in blocks.iter().zip(&results) {
        for (i, r) in (r0..r1).enumerate() {
            let dst = &mut out[r * qn + g * group * hd..r * qn + (g + 1) * group * hd];
            dst.copy_from_slice(&o[i * group * hd..(i + 1) * group * hd]);
        }
    }
    out
}

/// Query head `hq` of one row (`qh`) over the first `len` cached positions, into `o`.
fn attend_row(qh: &[f32], hq: usize, k: &[f32], v: &[f32], len: usize, c: &Config, o: &mut [f32]) {
    // The crate is built for baseline x86-64 (SSE2): the same loops compiled for AVX2 run
    // faster, and attention grows with the context (at 300 tokens it took 14 % of a SmolLM2
    // decode step in its SSE2 form; 3 % less time per step with this). One task per query
    // head stays: per KV head (3 tasks on 2 threads) measured slower.
    #[cfg(target_arch = "x86_64")]
    if crate::backend::cpu::sysinfo::Isa::Avx2.available() {
        // SAFETY: the instruction sets were just checked.
        return unsafe { attend_row_avx2(qh, hq, k, v, len, c, o) };
    }
    attend_row_body(qh, hq, k, v, len, c, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_row_avx2(qh: &[f32], hq: usize, k: &[f32], v: &[f32], len: usize, c: &Config, o: &mut [f32]) {
    attend_row_body(qh, hq, k, v, len, c, o)
}

#[inline(always)]
fn attend_row_body(qh: &[f32], hq: usize, k: &[f32], v: &[f32], len: usize, c: &Config, o: &mut [f32]) {
    let hd = c.head_dim;
    let kvn = c.kv_heads * hd;
    let kvh = hq / (c.heads / c.kv_heads);
    let scale = 1.0 / (hd as f32).sqrt();
    let mut scores = vec![0f32; len];
    let mut max = f32::NEG_INFINITY;
    for (t, s) in scores.iter_mut().enumerate() {
        let kt = &k[t * kvn + kvh * hd..t * kvn + (kvh + 1) * hd];
        *s = dot(qh, kt) * scale;
        max = max.max(*s);
    }
    scores.iter_mut().for_each(|s| *s -= max);
    exp_lanes(&mut scores);
    let sum: f32 = scores.iter().sum();
    o.fill(0.0);
    for (t, s) in scores.iter().enumerate() {
        let vt = &v[t * kvn + kvh * hd..t * kvn + (kvh + 1) * hd];
        let p = s / sum;
        for (oi, vi) in o.iter_mut().zip(vt) {
            *oi += p * vi;
        }
    }
}

/// The query heads of KV head `g` for `rows` (consecutive rows of one sequence, the first
/// at index `r0` of `q`), into `o` = `[rows × group × head_dim]`.
#[allow(clippy::too_many_arguments)]
fn attend_tile(q: &[f32], rows: &[(usize, usize)], r0: usize, g: usize, k: &[f32], v: &[f32], c: &Config, o: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::backend::cpu::sysinfo::Isa::Avx2.available() {
        // SAFETY: the instruction sets were just checked.
        return unsafe { attend_tile_avx2(q, rows, r0, g, k, v, c, o) };
    }
    attend_tile_body(q, rows, r0, g, k, v, c, o)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_tile_avx2(q: &[f32], rows: &[(usize, usize)], r0: usize, g: usize, k: &[f32], v: &[f32], c: &Config, o: &mut [f32]) {
    attend_tile_body(q, rows, r0, g, k, v, c, o)
}

/// Online softmax over key tiles: per (row, head) a running maximum `m`, sum `l` and
/// output row; a tile raising the maximum rescales what was summed before. The block's
/// query rows (row-major, `rows × group` of them) meet a tile in two small GEMMs of the
/// `gemm` crate, scores = Q·Kᵀ and O += P·V, whose register-blocked kernels run the
/// FLOPs at several times the rate of per-row dot products (those kept the scores and
/// accumulators in memory: two loads and a store per FMA).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_tile_body(q: &[f32], rows: &[(usize, usize)], r0: usize, g: usize, k: &[f32], v: &[f32], c: &Config, o: &mut [f32]) {
    let (hd, group) = (c.head_dim, c.heads / c.kv_heads);
    let (qn, kvn) = (c.heads * hd, c.kv_heads * hd);
    let scale = 1.0 / (hd as f32).sqrt();
    let nq = rows.len() * group;
    // Query j = (row i, head h) at j = i·group + h, scaled, contiguous.
    let mut qb = vec![0f32; nq * hd];
    for (i, dst) in qb.chunks_mut(group * hd).enumerate() {
        let src = &q[(r0 + i) * qn + g * group * hd..(r0 + i) * qn + (g + 1) * group * hd];
        dst.iter_mut().zip(src).for_each(|(d, &x)| *d = x * scale);
    }
    let (mut m, mut l) = (vec![f32::NEG_INFINITY; nq], vec![0f32; nq]);
    o.fill(0.0);
    let last = rows.iter().map(|&(_, p)| p).max().unwrap_or(0);
    let mut sc = vec![0f32; nq * KEYS];
    for t0 in (0..=last).step_by(KEYS) {
        let nt = KEYS.min(last + 1 - t0);
        let (kt, vt) = (&k[t0 * kvn + g * hd..], &v[t0 * kvn + g * hd..]);
        assert!(kt.len() >= (nt - 1) * kvn + hd && vt.len() >= (nt - 1) * kvn + hd, "the cache holds the tile");
        // SAFETY: sc is nq × nt (row stride KEYS >= nt); qb is nq × hd; key t, element d is
        // kt[t·kvn + d], inside kt by the assert; nothing else touches sc.
        unsafe {
            gemm::gemm(
                nq, nt, hd,
                sc.as_mut_ptr(), 1, KEYS as isize, false,
                qb.as_ptr(), 1, hd as isize,
                kt.as_ptr(), kvn as isize, 1,
                0.0, 1.0, false, false, false, gemm::Parallelism::None,
            );
        }
        for (j, srow) in sc.chunks_mut(KEYS).enumerate() {
            let pos = rows[j / group].1;
            let valid = if pos < t0 { 0 } else { (pos + 1 - t0).min(nt) };
            let srow = &mut srow[..nt];
            srow[valid..].fill(f32::NEG_INFINITY);
            if valid == 0 {
                // This row's positions all came before the tile: its P row is 0 (not the
                // -inf above, which P·V would turn into NaN).
                srow.fill(0.0);
                continue;
            }
            let new_m = m[j].max(srow[..valid].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)));
            let fix = (m[j] - new_m).exp(); // 0 on the first tile (m = -inf)
            if fix != 1.0 {
                o[j * hd..(j + 1) * hd].iter_mut().for_each(|a| *a *= fix);
                l[j] *= fix;
            }
            m[j] = new_m;
            srow.iter_mut().for_each(|x| *x -= new_m);
            exp_lanes(srow);
            srow[valid..].fill(0.0);
            l[j] += srow.iter().sum::<f32>();
        }
        // SAFETY: o is nq × hd (row stride hd); sc nq × nt as above; value t, element d is
        // vt[t·kvn + d], inside vt by the assert; nothing else touches o.
        unsafe {
            gemm::gemm(
                nq, hd, nt,
                o.as_mut_ptr(), 1, hd as isize, true,
                sc.as_ptr(), 1, KEYS as isize,
                vt.as_ptr(), 1, kvn as isize,
                1.0, 1.0, false, false, false, gemm::Parallelism::None,
            );
        }
    }
    for (j, acc) in o.chunks_mut(hd).enumerate() {
        let inv = 1.0 / l[j];
        acc.iter_mut().for_each(|a| *a *= inv);
    }
}

/// `x = exp(x)` for every `x <= 0` of a tile, branch-free so the loop vectorizes:
/// x = n·ln 2 + r with n whole and |r| <= ln 2 / 2 (ln 2 in two parts, Cody and Waite, so
/// r keeps its precision for large |x|), 2^n by the exponent bits and e^r by a degree-7
/// Taylor polynomial (its error under 1e-8). Values below -87 give exp(-87) ~ 1.6e-38
/// (callers only sum entries of real scores, which are 0 for the maximum).
#[inline(always)]
fn exp_lanes(x: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // ln 2 to 12 bits: n·LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4; // ln 2 - LN2_HI
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    for v in x.iter_mut() {
        let xc = v.max(-87.0);
        let n = (xc * LOG2E + ROUND) - ROUND;
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        let poly = 1.0
            + r * (1.0
                + r * (1.0 / 2.0
                    + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
        *v = f32::from_bits(((n as i32 + 127) << 23) as u32) * poly;
    }
}

/// Dot product in 8 independent partial sums, which the compiler vectorizes (one
/// running sum is a chain of dependent adds it must keep in order).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// Softmax(q·k/√d)·v in f64, straight from the definition.
    fn reference(qh: &[f32], k: &[f32], v: &[f32], len: usize, kvh: usize, c: &Config) -> Vec<f64> {
        let (hd, kvn) = (c.head_dim, c.kv_heads * c.head_dim);
        let s: Vec<f64> = (0..len)
            .map(|t| (0..hd).map(|d| qh[d] as f64 * k[t * kvn + kvh * hd + d] as f64).sum::<f64>() / (hd as f64).sqrt())
            .collect();
        let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        (0..hd).map(|d| (0..len).map(|t| e[t] / sum * v[t * kvn + kvh * hd + d] as f64).sum()).collect()
    }

    #[test]
    fn vector_exp_matches_the_library_exp_on_the_softmax_range() {
        let mut worst = 0f64;
        for start in 0..2000 {
            let mut x = [0f32; 64];
            for (i, v) in x.iter_mut().enumerate() {
                *v = -((start * 64 + i) as f32) * 87.0 / (2000.0 * 64.0);
            }
            let want = x.map(|v| (v as f64).exp());
            exp_lanes(&mut x);
            for (g, w) in x.iter().zip(want) {
                worst = worst.max(((*g as f64) - w).abs() / w);
            }
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn tiles_and_rows_both_match_the_definition_across_tile_and_block_edges() {
        let c = Config { hidden: 72, intermediate: 1, heads: 6, kv_heads: 2, head_dim: 12, layers: 1, vocab: 1, eps: 1e-5, rope_theta: 1e4, context: 512 };
        let (qn, kvn) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let mut rng = SmallRng::seed_from_u64(3);
        let mut rnd = |n: usize| (0..n).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect::<Vec<f32>>();
        // Three sequences: 560 cached positions then 40 new rows (a chunk after a chunk, its
        // keys over three tiles), 70 new rows from the start, and a chunk of rows 250..270
        // (one 16-row block spans the tile edge at 256: its first rows come before that
        // tile); block edges fall inside all three.
        let lens = [600usize, 70, 270];
        let kv: Vec<(Vec<f32>, Vec<f32>)> = lens.iter().map(|&n| (rnd(n * kvn), rnd(n * kvn))).collect();
        let mut rows = Vec::new();
        rows.extend((560..600).map(|p| (0, p)));
        rows.extend((0..70).map(|p| (1, p)));
        rows.extend((250..270).map(|p| (2, p)));
        let q = rnd(rows.len() * qn);
        let caches: Vec<(&[f32], &[f32])> = kv.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let check = |out: &[f32], rows: &[(usize, usize)], q: &[f32]| {
            for (r, &(s, pos)) in rows.iter().enumerate() {
                for hq in 0..c.heads {
                    let qh = &q[r * qn + hq * c.head_dim..r * qn + (hq + 1) * c.head_dim];
                    let want = reference(qh, caches[s].0, caches[s].1, pos + 1, hq / 3, &c);
                    let got = &out[r * qn + hq * c.head_dim..r * qn + (hq + 1) * c.head_dim];
                    for (g, w) in got.iter().zip(&want) {
                        assert!((*g as f64 - w).abs() < 1e-5 * (1.0 + w.abs()), "row {r} head {hq}: {g} vs {w}");
                    }
                }
            }
        };
        check(&attention(&q, &rows, &caches, &c), &rows, &q);
        // One row per sequence: the decode form.
        let dec = [(0, 599), (1, 69)];
        let qd = rnd(2 * qn);
        check(&attention(&qd, &dec, &caches, &c), &dec, &qd);
    }
}
