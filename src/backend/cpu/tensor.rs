//! Host memory holding one operand in its storage type.

use crate::problem::{DType, WeightFormat};
use crate::quant::QuantTensor;
use crate::random;
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;
use std::borrow::Cow;

/// Guard elements behind a guarded tensor, and the sentinel bit patterns (quiet NaNs no
/// arithmetic produces by accident).
pub const GUARD: usize = 64;
const SENTINEL32: u32 = 0x7fc0_dead;
const SENTINEL16: u16 = 0x7fd3;

#[derive(Clone, Debug, PartialEq)]
pub enum HostTensor {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    /// Packed quantized weights (only ever W); its elements read as f32 when dequantized.
    Quant(QuantTensor),
}

impl HostTensor {
    /// Zeros with a guard region of `GUARD` elements of spare capacity behind them, holding
    /// a sentinel that `guard_intact` checks (the tuner's buffers).
    pub fn zeros_guarded(dtype: DType, len: usize) -> HostTensor {
        fn make<T: Copy>(len: usize, zero: T, sentinel: T) -> Vec<T> {
            let mut v = Vec::with_capacity(len + GUARD);
            v.resize(len + GUARD, sentinel);
            v.truncate(len); // the sentinels stay in the spare capacity
            v.fill(zero);
            v
        }
        match dtype {
            DType::F32 => HostTensor::F32(make(len, 0.0, f32::from_bits(SENTINEL32))),
            DType::F16 => HostTensor::F16(make(len, f16::ZERO, f16::from_bits(SENTINEL16))),
            DType::BF16 => HostTensor::BF16(make(len, bf16::ZERO, bf16::from_bits(SENTINEL16))),
        }
    }

    /// Whether the guard region (if any) still holds the sentinel everywhere.
    pub fn guard_intact(&self) -> bool {
        fn check<T: Copy>(v: &[T], cap: usize, ok: impl Fn(T) -> bool) -> bool {
            let spare = cap - v.len();
            if spare < GUARD {
                return true; // not a guarded tensor
            }
            // SAFETY: the GUARD elements after len were initialized by zeros_guarded and
            // lie within the allocation.
            let g = unsafe { std::slice::from_raw_parts(v.as_ptr().add(v.len()), GUARD) };
            g.iter().all(|&x| ok(x))
        }
        match self {
            HostTensor::F32(v) => check(v, v.capacity(), |x: f32| x.to_bits() == SENTINEL32),
            HostTensor::F16(v) => check(v, v.capacity(), |x: f16| x.to_bits() == SENTINEL16),
            HostTensor::BF16(v) => check(v, v.capacity(), |x: bf16| x.to_bits() == SENTINEL16),
            HostTensor::Quant(_) => true, // never an output
        }
    }

    pub fn zeros(dtype: DType, len: usize) -> HostTensor {
        match dtype {
            DType::F32 => HostTensor::F32(vec![0.0; len]),
            DType::F16 => HostTensor::F16(vec![f16::ZERO; len]),
            DType::BF16 => HostTensor::BF16(vec![bf16::ZERO; len]),
        }
    }

    /// Stores f32 values, rounding them to `dtype`.
    pub fn from_f32(dtype: DType, v: &[f32]) -> HostTensor {
        match dtype {
            DType::F32 => HostTensor::F32(v.to_vec()),
            DType::F16 => HostTensor::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            DType::BF16 => HostTensor::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
        }
    }

    /// The element type; packed weights dequantize to f32.
    pub fn dtype(&self) -> DType {
        match self {
            HostTensor::F32(_) | HostTensor::Quant(_) => DType::F32,
            HostTensor::F16(_) => DType::F16,
            HostTensor::BF16(_) => DType::BF16,
        }
    }

    /// How the elements are stored: dense, or a quantized format.
    pub fn wformat(&self) -> WeightFormat {
        match self {
            HostTensor::Quant(q) => q.format,
            _ => WeightFormat::Dense,
        }
    }

    /// Row `r` of a row-major `[rows, k]` tensor as f32 (dequantized when packed): the
    /// embedding lookup of the runtime.
    pub fn row_f32(&self, r: usize, k: usize) -> Vec<f32> {
        let range = r * k..(r + 1) * k;
        match self {
            HostTensor::F32(v) => v[range].to_vec(),
            HostTensor::F16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
            HostTensor::BF16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
            HostTensor::Quant(q) => {
                assert_eq!(q.k, k, "row_f32: row length");
                let mut out = vec![0f32; k];
                q.dequantize_row(r, &mut out);
                out
            }
        }
    }

    /// Element `i` as f32, if there is one (None for packed weights, which are read by row).
    pub fn get(&self, i: usize) -> Option<f32> {
        match self {
            HostTensor::F32(v) => v.get(i).copied(),
            HostTensor::F16(v) => v.get(i).map(|x| x.to_f32()),
            HostTensor::BF16(v) => v.get(i).map(|x| x.to_f32()),
            HostTensor::Quant(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostTensor::F32(v) => v.len(),
            HostTensor::F16(v) => v.len(),
            HostTensor::BF16(v) => v.len(),
            HostTensor::Quant(q) => q.elements(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32, borrowed when already f32 (packed weights are dequantized).
    pub fn as_f32(&self) -> Cow<'_, [f32]> {
        match self {
            HostTensor::F32(v) => Cow::Borrowed(v),
            HostTensor::Quant(q) => Cow::Owned(q.dequantize()),
            HostTensor::F16(_) | HostTensor::BF16(_) => {
                let mut out = vec![0.0; self.len()];
                self.widen_into(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// The 16-bit values widened into `out` (its length); a no-op for other storage.
    fn widen_into(&self, out: &mut [f32]) {
        match self {
            HostTensor::F16(v) => v.convert_to_f32_slice(out),
            HostTensor::BF16(v) => v.convert_to_f32_slice(out),
            HostTensor::F32(_) | HostTensor::Quant(_) => {}
        }
    }

    /// Overwrites the contents with f32 values rounded to the storage type.
    pub fn store_f32(&mut self, src: &[f32]) {
        assert_eq!(src.len(), self.len(), "store_f32: length mismatch");
        match self {
            HostTensor::F32(v) => v.copy_from_slice(src),
            HostTensor::F16(v) => v.convert_from_f32_slice(src),
            HostTensor::BF16(v) => v.convert_from_f32_slice(src),
            HostTensor::Quant(_) => panic!("store_f32: packed weights are never an output"),
        }
    }

    /// Lets `f` write f32 results: in place when f32, else through a converted copy. The
    /// copy starts as the current contents (a poisoned output stays NaN where `f` does not
    /// write, so validation sees it) and has a guard region behind it: a kernel writing
    /// past the end through a raw pointer panics here (a rejected candidate) instead of
    /// corrupting memory nobody checks.
    pub fn write_f32(&mut self, f: impl FnOnce(&mut [f32])) {
        if let HostTensor::F32(v) = self {
            return f(v);
        }
        const GUARD: usize = 64;
        const SENTINEL: u32 = 0x7fc0_dead; // a NaN no conversion produces
        let n = self.len();
        let mut tmp = vec![f32::from_bits(SENTINEL); n + GUARD];
        self.widen_into(&mut tmp[..n]);
        f(&mut tmp[..n]);
        assert!(tmp[n..].iter().all(|g| g.to_bits() == SENTINEL), "the kernel wrote past the end of its {n}-element output");
        self.store_f32(&tmp[..n]);
    }

    pub fn fill_random(&mut self, seed: u64) {
        let d = self.dtype();
        let gen = move |i: usize| random::element(d, seed, i as u64);
        match self {
            HostTensor::F32(v) => v.par_iter_mut().enumerate().for_each(|(i, x)| *x = gen(i)),
            HostTensor::F16(v) => {
                v.par_iter_mut().enumerate().for_each(|(i, x)| *x = f16::from_f32(gen(i)))
            }
            HostTensor::BF16(v) => {
                v.par_iter_mut().enumerate().for_each(|(i, x)| *x = bf16::from_f32(gen(i)))
            }
            HostTensor::Quant(q) => q.fill_random(seed),
        }
    }

    /// Fills with NaN and re-arms the guard region (if any) with its sentinel.
    pub fn fill_nan(&mut self) {
        fn rearm<T: Copy>(v: &mut Vec<T>, sentinel: T) {
            if v.capacity() - v.len() >= GUARD {
                for x in v.spare_capacity_mut().iter_mut().take(GUARD) {
                    x.write(sentinel);
                }
            }
        }
        match self {
            HostTensor::F32(v) => {
                v.fill(f32::NAN);
                rearm(v, f32::from_bits(SENTINEL32));
            }
            HostTensor::F16(v) => {
                v.fill(f16::NAN);
                rearm(v, f16::from_bits(SENTINEL16));
            }
            HostTensor::BF16(v) => {
                v.fill(bf16::NAN);
                rearm(v, bf16::from_bits(SENTINEL16));
            }
            // Packed weights have no NaN; they are never an output to poison.
            HostTensor::Quant(_) => {}
        }
    }
}
