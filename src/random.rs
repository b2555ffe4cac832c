//! Counter-based random operands: element `i` of an operand drawn with `seed` is a pure
//! function of `(seed, i)`. Any backend can fill a device buffer with exactly these values
//! (a few integer ops per element), and the host can recompute any single element for
//! the f64 reference without holding or downloading the whole operand.
//!
//! Values are uniform in [-1, 1), never all zero, and already rounded to the problem's
//! dtype, so the reference sees exactly what the kernel sees.

use crate::problem::DType;
use half::{bf16, f16};

/// SplitMix64 finaliser: a well-mixed 64-bit hash of the counter.
#[inline(always)]
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform f32 in [-1, 1) from 24 random bits (exact in f32).
#[inline(always)]
pub fn value(seed: u64, i: u64) -> f32 {
    let bits = (mix(seed ^ mix(i)) >> 40) as u32; // 24 bits
    bits as f32 * (1.0 / 8_388_608.0) - 1.0
}

/// Rounds an f32 to the nearest value of `dtype` (round-to-nearest-even).
#[inline(always)]
pub fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F32 => v,
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::BF16 => bf16::from_f32(v).to_f32(),
    }
}

/// Element `i` of the operand drawn with `seed`, as stored in `dtype`.
#[inline(always)]
pub fn element(dtype: DType, seed: u64, i: u64) -> f32 {
    round_to(dtype, value(seed, i))
}

/// A fresh seed for each draw: mixes a base seed with a draw counter.
pub fn derive_seed(base: u64, draw: u64) -> u64 {
    mix(base.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ draw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_uniform_and_not_degenerate() {
        let n = 100_000u64;
        let vals: Vec<f32> = (0..n).map(|i| value(7, i)).collect();
        assert!(vals.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0 / 3.0).abs() < 0.01, "var {var}");
        let zeros = vals.iter().filter(|&&v| v == 0.0).count();
        assert!(zeros < 5);
        // A different seed gives a different sequence.
        assert_ne!(value(7, 3), value(8, 3));
    }

    #[test]
    fn rounding_is_exact_in_dtype() {
        for i in 0..1000 {
            let v = element(DType::BF16, 1, i);
            assert_eq!(bf16::from_f32(v).to_f32(), v);
            let v = element(DType::F16, 1, i);
            assert_eq!(f16::from_f32(v).to_f32(), v);
        }
    }
}
