//! Host memory holding one operand in its storage type.

use crate::problem::DType;
use crate::random;
use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;
use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq)]
pub enum HostTensor {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
}

impl HostTensor {
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

    pub fn dtype(&self) -> DType {
        match self {
            HostTensor::F32(_) => DType::F32,
            HostTensor::F16(_) => DType::F16,
            HostTensor::BF16(_) => DType::BF16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostTensor::F32(v) => v.len(),
            HostTensor::F16(v) => v.len(),
            HostTensor::BF16(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32, borrowed when already f32.
    pub fn as_f32(&self) -> Cow<'_, [f32]> {
        match self {
            HostTensor::F32(v) => Cow::Borrowed(v),
            HostTensor::F16(v) => {
                let mut out = vec![0.0; v.len()];
                v.convert_to_f32_slice(&mut out);
                Cow::Owned(out)
            }
            HostTensor::BF16(v) => {
                let mut out = vec![0.0; v.len()];
                v.convert_to_f32_slice(&mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Overwrites the contents with f32 values rounded to the storage type.
    pub fn store_f32(&mut self, src: &[f32]) {
        assert_eq!(src.len(), self.len(), "store_f32: length mismatch");
        match self {
            HostTensor::F32(v) => v.copy_from_slice(src),
            HostTensor::F16(v) => v.convert_from_f32_slice(src),
            HostTensor::BF16(v) => v.convert_from_f32_slice(src),
        }
    }

    /// Lets `f` write f32 results: in place when f32, else through a converted copy.
    pub fn write_f32(&mut self, f: impl FnOnce(&mut [f32])) {
        if let HostTensor::F32(v) = self {
            return f(v);
        }
        let mut tmp = vec![0.0f32; self.len()];
        f(&mut tmp);
        self.store_f32(&tmp);
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
        }
    }

    pub fn fill_nan(&mut self) {
        match self {
            HostTensor::F32(v) => v.fill(f32::NAN),
            HostTensor::F16(v) => v.fill(f16::NAN),
            HostTensor::BF16(v) => v.fill(bf16::NAN),
        }
    }
}
