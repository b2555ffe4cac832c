//! Tensor data of a GGUF file, dequantized to f32 at load (F32, F16, BF16, Q8_0, Q4_0,
//! Q4_1). Block layouts (ggml): Q8_0 = f16 scale d + 32 × i8, value d·q; Q4_0 = f16 d +
//! 16 bytes of nibbles, value d·(q − 8); Q4_1 = f16 d, f16 min m + 16 bytes, value d·q + m.
//! In Q4 blocks element j < 16 is the low nibble of byte j and element j + 16 its high
//! nibble.

use crate::backend::cpu::HostTensor;
use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo};
use crate::problem::WeightFormat;
use crate::quant::{dequantize_row, QuantTensor};
use half::{bf16, f16};
use std::io::{Read, Seek, SeekFrom};

/// Dequantizes raw tensor bytes of ggml type `t` into `out` (one f32 per element).
pub fn dequantize(t: u32, raw: &[u8], out: &mut [f32]) -> std::result::Result<(), String> {
    let f16_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    match t {
        0 => {
            for (o, c) in out.iter_mut().zip(raw.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        1 => {
            for (o, c) in out.iter_mut().zip(raw.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        30 => {
            for (o, c) in out.iter_mut().zip(raw.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        // Blocks run on across rows, so a whole tensor dequantizes like one long row.
        8 => dequantize_row(WeightFormat::Q8_0, raw, out),
        2 => {
            for (o, b) in out.chunks_exact_mut(32).zip(raw.chunks_exact(18)) {
                let d = f16_at(b, 0);
                for j in 0..16 {
                    o[j] = d * ((b[2 + j] & 0x0f) as f32 - 8.0);
                    o[j + 16] = d * ((b[2 + j] >> 4) as f32 - 8.0);
                }
            }
        }
        3 => dequantize_row(WeightFormat::Q4_1, raw, out),
        _ => return Err(format!("ggml type {t} cannot be dequantized here")),
    }
    Ok(())
}

/// How the runtime holds GGUF weights: `f32` dequantizes every tensor at load (the
/// default); `native` keeps Q4_1 and Q8_0 tensors packed, so their linear layers run as
/// quantized problems (`f32/q4_1`, `f32/q8_0`) through the dispatcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightMode {
    #[default]
    F32,
    Native,
}

/// The packed format the CPU kernels run for a ggml type, if any.
pub fn native_format(ggml_type: u32) -> Option<WeightFormat> {
    match ggml_type {
        3 => Some(WeightFormat::Q4_1),
        8 => Some(WeightFormat::Q8_0),
        _ => None,
    }
}

fn load_raw(g: &Gguf, info: &TensorInfo) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(&g.path).map_err(|e| Error::io(&g.path, "open GGUF file", e))?;
    let mut raw = vec![0u8; info.bytes as usize];
    f.seek(SeekFrom::Start(info.offset))
        .and_then(|_| f.read_exact(&mut raw))
        .map_err(|e| Error::io(&g.path, &format!("read tensor '{}'", info.name), e))?;
    Ok(raw)
}

/// A `[rows, k]` weight: packed as stored when `mode` is native and the type has CPU
/// kernels, else dequantized to f32.
pub fn load_weight(g: &Gguf, info: &TensorInfo, rows: usize, k: usize, mode: WeightMode) -> Result<HostTensor> {
    match (mode, native_format(info.ggml_type)) {
        (WeightMode::Native, Some(f)) => QuantTensor::new(f, rows, k, load_raw(g, info)?)
            .map(HostTensor::Quant)
            .map_err(|e| Error::input(format!("{}: tensor '{}': {e}", g.path.display(), info.name))),
        _ => load_f32(g, info).map(HostTensor::F32),
    }
}

/// Reads and dequantizes one tensor (its byte range was validated when the file opened).
pub fn load_f32(g: &Gguf, info: &TensorInfo) -> Result<Vec<f32>> {
    let raw = load_raw(g, info)?;
    let mut out = vec![0f32; info.elements() as usize];
    dequantize(info.ggml_type, &raw, &mut out)
        .map_err(|e| Error::input(format!("{}: tensor '{}': {e}", g.path.display(), info.name)))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_and_q8_0_blocks() {
        let mut b = Vec::new();
        b.extend(f16::from_f32(0.5).to_le_bytes());
        b.extend(f16::from_f32(-1.0).to_le_bytes());
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let mut out = [0f32; 32];
        dequantize(3, &b, &mut out).unwrap();
        assert_eq!(out[0], -1.0);
        assert_eq!(out[3], 0.5 * 3.0 - 1.0);
        assert_eq!(out[16], 0.5 * 15.0 - 1.0);
        let mut q8 = f16::from_f32(0.25).to_le_bytes().to_vec();
        q8.extend((0..32).map(|j| (j as i8 - 16) as u8));
        dequantize(8, &q8, &mut out).unwrap();
        assert_eq!(out[0], -4.0);
        assert_eq!(out[31], 3.75);
        let mut q4 = f16::from_f32(2.0).to_le_bytes().to_vec();
        q4.extend([0x8fu8; 16]);
        dequantize(2, &q4, &mut out).unwrap();
        assert_eq!((out[0], out[16]), (14.0, 0.0));
        assert!(dequantize(99, &q4, &mut out).is_err());
    }
}
