//! Weight-only quantized W: byte layouts, dequantization and counter-based random packed
//! weights. Shared by the backends (operand fills, kernels), the f64 reference and the
//! model loader.
//!
//! W is `[rows, K]` (rows = batch × N), each row packed on its own, rows back to back
//! (`row_bytes(K)` each), so row `r` starts at `r · row_bytes`:
//!
//! | format | block | bytes | block layout | value |
//! |---|---:|---:|---|---|
//! | `q4_1` | 32 | 20 | f16 d, f16 m, 16 bytes: element j < 16 low nibble of byte j, j + 16 its high nibble (GGUF) | d·q + m |
//! | `q8_0` | 32 | 34 | f16 d, 32 × i8 (GGUF) | d·q |
//! | `g128` | 128 | 68 | see below | s·(q − z) |
//!
//! `g128` (GPTQ/AWQ-style) keeps each row's nibbles and scales apart, as GPTQ's
//! `qweight` and `scales`/`zeros` tensors are: a row is `K/2` bytes of nibbles (element
//! 2i the low nibble of byte i, 2i + 1 its high nibble: GPTQ's int32 words of 8 elements
//! read little-endian), then `K/128` pairs of f16 (scale s, zero z). For K a multiple of
//! 512 rows start 16-byte aligned, so a GPU kernel can load the nibbles with 16-byte loads.
//!
//! Random packed weights (the tuner's operands) are a pure function of `(seed, index)`
//! like `random::element`: a block's scales come from the seed and the block's index, a
//! quantized value from the seed and the element's index, so any backend can fill a
//! buffer with exactly these bytes and the host can recompute any element for the
//! reference. Scales are chosen so that values span about [-1.2, 1.2] (never all zero).

use crate::problem::WeightFormat;
use crate::random::{mix, value};
use half::f16;
use rayon::prelude::*;

/// Packed bytes of one row of `k` elements.
pub fn row_bytes(f: WeightFormat, k: usize) -> usize {
    assert!(!f.is_dense() && k.is_multiple_of(f.block()), "row_bytes: {f} with k = {k}");
    k / f.block() * f.block_bytes()
}

/// Packed weights on the host: `rows × k` elements in format `format`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantTensor {
    pub format: WeightFormat,
    pub rows: usize,
    pub k: usize,
    pub data: Vec<u8>,
}

impl QuantTensor {
    /// Wraps packed bytes, checking their length.
    pub fn new(format: WeightFormat, rows: usize, k: usize, data: Vec<u8>) -> Result<QuantTensor, String> {
        if format.is_dense() || !k.is_multiple_of(format.block()) {
            return Err(format!("{format} weights need k a multiple of {} (got {k})", format.block()));
        }
        let want = rows * row_bytes(format, k);
        if data.len() != want {
            return Err(format!("{rows} x {k} {format} weights take {want} bytes, got {}", data.len()));
        }
        Ok(QuantTensor { format, rows, k, data })
    }

    pub fn zeros(format: WeightFormat, rows: usize, k: usize) -> QuantTensor {
        QuantTensor { format, rows, k, data: vec![0; rows * row_bytes(format, k)] }
    }

    pub fn elements(&self) -> usize {
        self.rows * self.k
    }
    pub fn row_bytes(&self) -> usize {
        row_bytes(self.format, self.k)
    }
    pub fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Row `r` dequantized into `out` (`k` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        dequantize_row(self.format, self.row(r), out)
    }

    /// All rows dequantized, rows split across the current rayon pool.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.elements()];
        out.par_chunks_mut(self.k).enumerate().for_each(|(r, o)| self.dequantize_row(r, o));
        out
    }

    /// Fills with the counter-based random weights of `seed` (see the module docs).
    pub fn fill_random(&mut self, seed: u64) {
        let (f, k, rb) = (self.format, self.k, self.row_bytes());
        self.data.par_chunks_mut(rb).enumerate().for_each(|(r, row)| random_row(f, k, seed, r, row));
    }
}

/// The layout GPU kernels read (CUDA backend): the nibbles of every row first, then
/// every row's block parameters. Why not GGUF's: a q4_1 block is 20 bytes, so its 16
/// bytes of nibbles never sit on a 16-byte boundary and a GPU thread could not fetch a
/// block with one vector load. Planes keep each row's nibbles contiguous and 16-byte
/// aligned (K is a multiple of 32), and each block's two f16 parameters one 4-byte word.
///
/// - nibble plane, `rows × K/2` bytes: element `2i` of a row is the low nibble of its byte
///   `i`, element `2i + 1` the high nibble (g128's order, GPTQ's);
/// - parameter plane, `rows × K/block` words: f16 `(d, m)` (q4_1: d·q + m) or `(s, z)`
///   (g128: s·(q − z)), low half first.
///
/// q8_0 has no planar form (no fused GPU kernel reads it): `None`.
pub fn planar(t: &QuantTensor) -> Option<Vec<u8>> {
    let (f, k, rows) = (t.format, t.k, t.rows);
    if !matches!(f, WeightFormat::Q4_1 | WeightFormat::G128) {
        return None;
    }
    let blocks = k / f.block();
    let mut out = vec![0u8; rows * (k / 2 + 4 * blocks)];
    let (nib, par) = out.split_at_mut(rows * k / 2);
    nib.par_chunks_mut(k / 2).zip(par.par_chunks_mut(4 * blocks)).enumerate().for_each(|(r, (n, p))| {
        let row = t.row(r);
        match f {
            WeightFormat::G128 => {
                n.copy_from_slice(&row[..k / 2]);
                p.copy_from_slice(&row[k / 2..]);
            }
            _ => {
                for (b, blk) in row.chunks_exact(20).enumerate() {
                    p[4 * b..4 * b + 4].copy_from_slice(&blk[..4]);
                    let q = |j: usize| if j < 16 { blk[4 + j] & 0x0f } else { blk[4 + j - 16] >> 4 };
                    for i in 0..16 {
                        n[16 * b + i] = q(2 * i) | (q(2 * i + 1) << 4);
                    }
                }
            }
        }
    });
    Some(out)
}


#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes one packed row into `out` (its length is K), in f32 as kernels do:
/// q4_1 `d·q + m`, q8_0 `d·q`, g128 `(q − z)·s` (each exact before the final rounding).
pub fn dequantize_row(f: WeightFormat, row: &[u8], out: &mut [f32]) {
    let k = out.len();
    match f {
        WeightFormat::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(32).zip(row.chunks_exact(20)) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                for j in 0..16 {
                    o[j] = d * (b[4 + j] & 0x0f) as f32 + m;
                    o[j + 16] = d * (b[4 + j] >> 4) as f32 + m;
                }
            }
        }
        WeightFormat::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(32).zip(row.chunks_exact(34)) {
                let d = f16_at(b, 0);
                for j in 0..32 {
                    o[j] = d * (b[2 + j] as i8) as f32;
                }
            }
        }
        WeightFormat::G128 => {
            let (qs, params) = row.split_at(k / 2);
            for ((o, q), p) in out.chunks_exact_mut(128).zip(qs.chunks_exact(64)).zip(params.chunks_exact(4)) {
                let (s, z) = (f16_at(p, 0), f16_at(p, 2));
                for i in 0..64 {
                    o[2 * i] = ((q[i] & 0x0f) as f32 - z) * s;
                    o[2 * i + 1] = ((q[i] >> 4) as f32 - z) * s;
                }
            }
        }
        WeightFormat::Dense => panic!("dequantize_row on dense weights"),
    }
}

/// Salts separating the streams of scales, minima/zeros and quantized values.
const SALT_SCALE: u64 = 0x5CA1_E5CA_1E00_0001;
const SALT_OFFSET: u64 = 0x0FF5_E70F_F5E7_0002;

/// The f16 scale and offset (q4_1: min; g128: zero; q8_0: unused) of global block `gb`.
fn random_params(f: WeightFormat, seed: u64, gb: u64) -> (f16, f16) {
    let (u1, u2) = (value(seed ^ SALT_SCALE, gb), value(seed ^ SALT_OFFSET, gb));
    match f {
        WeightFormat::Q4_1 => {
            let d = f16::from_f32(0.09375 + 0.03125 * u1);
            (d, f16::from_f32(-7.5 * d.to_f32() + 0.25 * u2))
        }
        WeightFormat::Q8_0 => (f16::from_f32((1.5 + 0.5 * u1) / 128.0), f16::ZERO),
        WeightFormat::G128 => (f16::from_f32(0.09375 + 0.03125 * u1), f16::from_f32(7.5 + u2)),
        WeightFormat::Dense => unreachable!("dense weights have no blocks"),
    }
}

/// The quantized value of element `i` (row-major over all rows): a nibble, or an i8.
#[inline(always)]
fn random_q(f: WeightFormat, seed: u64, i: u64) -> u8 {
    let bits = mix(seed ^ mix(i));
    match f {
        WeightFormat::Q8_0 => (bits >> 56) as u8,
        _ => (bits >> 60) as u8,
    }
}

/// Packs row `r` of the random weights of `seed` into `row`.
fn random_row(f: WeightFormat, k: usize, seed: u64, r: usize, row: &mut [u8]) {
    let blocks = k / f.block();
    let base = (r * k) as u64;
    let q = |j: usize| random_q(f, seed, base + j as u64);
    for b in 0..blocks {
        let gb = (r * blocks + b) as u64;
        let (s, o) = random_params(f, seed, gb);
        let e0 = b * f.block();
        match f {
            WeightFormat::Q4_1 => {
                let blk = &mut row[b * 20..(b + 1) * 20];
                blk[0..2].copy_from_slice(&s.to_le_bytes());
                blk[2..4].copy_from_slice(&o.to_le_bytes());
                for j in 0..16 {
                    blk[4 + j] = q(e0 + j) | (q(e0 + j + 16) << 4);
                }
            }
            WeightFormat::Q8_0 => {
                let blk = &mut row[b * 34..(b + 1) * 34];
                blk[0..2].copy_from_slice(&s.to_le_bytes());
                for j in 0..32 {
                    blk[2 + j] = q(e0 + j);
                }
            }
            WeightFormat::G128 => {
                for i in 0..64 {
                    row[e0 / 2 + i] = q(e0 + 2 * i) | (q(e0 + 2 * i + 1) << 4);
                }
                let p = k / 2 + 4 * b;
                row[p..p + 2].copy_from_slice(&s.to_le_bytes());
                row[p + 2..p + 4].copy_from_slice(&o.to_le_bytes());
            }
            WeightFormat::Dense => unreachable!(),
        }
    }
}

/// Exact value of element `i` (row-major over all rows) of the random weights of `seed`
/// in format `f`: what the f64 reference multiplies with.
pub fn random_value(f: WeightFormat, seed: u64, i: u64) -> f64 {
    let gb = i / f.block() as u64; // rows hold whole blocks, so this is the global block
    let (s, o) = random_params(f, seed, gb);
    let q = random_q(f, seed, i);
    let (s, o) = (s.to_f64(), o.to_f64());
    match f {
        WeightFormat::Q4_1 => s * q as f64 + o,
        WeightFormat::Q8_0 => s * (q as i8) as f64,
        WeightFormat::G128 => s * (q as f64 - o),
        WeightFormat::Dense => unreachable!("dense weights are drawn by random::element"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_dequantize_to_their_exact_values() {
        for f in WeightFormat::QUANTIZED {
            let (rows, k) = (3, 256);
            let mut t = QuantTensor::zeros(f, rows, k);
            t.fill_random(42);
            let deq = t.dequantize();
            let mut distinct = std::collections::BTreeSet::new();
            for (i, &v) in deq.iter().enumerate() {
                let exact = random_value(f, 42, i as u64);
                assert!((v as f64 - exact).abs() <= 1e-6 * exact.abs().max(1e-3), "{f} element {i}: {v} vs {exact}");
                assert!(exact.abs() < 2.5, "{f}: {exact}");
                distinct.insert(v.to_bits());
            }
            assert!(distinct.len() > 64, "{f}: only {} distinct values", distinct.len()); // g128: 6 groups × 16
            // Another seed, other bytes.
            let mut u = QuantTensor::zeros(f, rows, k);
            u.fill_random(43);
            assert_ne!(t.data, u.data);
        }
    }

    #[test]
    fn q4_1_layout_is_ggufs() {
        // One hand-made block: d = 0.5, m = -1, nibbles j (low) and 15 - j (high).
        let mut b = Vec::new();
        b.extend(f16::from_f32(0.5).to_le_bytes());
        b.extend(f16::from_f32(-1.0).to_le_bytes());
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let t = QuantTensor::new(WeightFormat::Q4_1, 1, 32, b).unwrap();
        let v = t.dequantize();
        assert_eq!((v[0], v[3], v[16], v[31]), (-1.0, 0.5, 6.5, -1.0 + 0.5 * 0.0));
        assert!(QuantTensor::new(WeightFormat::Q4_1, 1, 32, vec![0; 19]).is_err());
        assert!(QuantTensor::new(WeightFormat::G128, 1, 64, vec![]).is_err());
    }

    #[test]
    fn g128_nibbles_are_gptq_ordered_and_scales_follow_the_row() {
        let k = 128;
        let mut row = vec![0u8; row_bytes(WeightFormat::G128, k)];
        assert_eq!(row.len(), 68);
        row[0] = 0x21; // element 0 = 1, element 1 = 2
        row[64..66].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
        row[66..68].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
        let mut out = vec![0f32; k];
        dequantize_row(WeightFormat::G128, &row, &mut out);
        assert_eq!((out[0], out[1], out[2]), (0.0, 0.25, -0.25));
    }

    /// Element `e` of row `r` of a planar tensor (see `planar`), dequantized: what the GPU
    /// kernels compute, for tests.
    fn planar_value(f: WeightFormat, data: &[u8], rows: usize, k: usize, r: usize, e: usize) -> f32 {
        let byte = data[r * k / 2 + e / 2];
        let q = if e.is_multiple_of(2) { byte & 0x0f } else { byte >> 4 } as f32;
        let w = rows * k / 2 + 4 * (r * (k / f.block()) + e / f.block());
        let (a, b) = (f16_at(data, w), f16_at(data, w + 2));
        match f {
            WeightFormat::Q4_1 => a * q + b,
            _ => (q - b) * a,
        }
    }

    #[test]
    fn planar_layout_holds_the_same_values() {
        for f in WeightFormat::QUANTIZED {
            let (rows, k) = (3, 384);
            let mut t = QuantTensor::zeros(f, rows, k);
            t.fill_random(7);
            let Some(p) = planar(&t) else {
                assert_eq!(f, WeightFormat::Q8_0);
                continue;
            };
            assert_eq!(p.len(), t.data.len(), "{f}: same bytes, other places");
            assert_eq!((rows * k / 2) % 16, 0);
            let deq = t.dequantize();
            for r in 0..rows {
                for e in 0..k {
                    assert_eq!(planar_value(f, &p, rows, k, r, e), deq[r * k + e], "{f} row {r} element {e}");
                }
            }
        }
    }
}
