//! A GGUF reader (metadata and tensor directory), validating every length, count and
//! offset against the file size before allocating or seeking, so a truncated or
//! corrupted file is a clear error naming the byte offset, never a panic.
//!
//! Written here because the crates available either truncate metadata arrays (gguf-rs
//! cuts `tokenizer.*` arrays to 3 elements by default) or pull in a whole ML framework
//! (candle). Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most elements a metadata array may have (the largest vocabularies have ~260 K).
const MAX_ARRAY: u64 = 1 << 24;

const MAGIC: &[u8; 4] = b"GGUF";

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// One tensor of the directory.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF stores them: innermost (contiguous) first.
    pub dims: Vec<u64>,
    /// ggml type id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, 30 BF16, ...).
    pub ggml_type: u32,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Bytes of data.
    pub bytes: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// Bytes of `n` elements of ggml type `t` (block-quantized types in whole blocks), or why
/// not.
pub fn type_bytes(t: u32, n: u64) -> std::result::Result<u64, String> {
    let (block, bytes) = match t {
        0 => (1, 4),   // F32
        1 => (1, 2),   // F16
        30 => (1, 2),  // BF16
        2 => (32, 18), // Q4_0
        3 => (32, 20), // Q4_1
        6 => (32, 22), // Q5_0
        7 => (32, 24), // Q5_1
        8 => (32, 34), // Q8_0
        9 => (32, 36), // Q8_1
        _ => return Err(format!("ggml type {t} is not supported")),
    };
    if !n.is_multiple_of(block) {
        return Err(format!("{n} elements is not a whole number of {block}-element blocks"));
    }
    (n / block).checked_mul(bytes).ok_or_else(|| "tensor size overflows".into())
}

#[derive(Clone, Debug)]
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub file_len: u64,
}

struct Cursor<R> {
    r: R,
    pos: u64,
    len: u64,
    path: PathBuf,
}

impl<R: Read> Cursor<R> {
    fn err(&self, what: impl AsRef<str>) -> Error {
        Error::input(format!("{}: byte {}: {}", self.path.display(), self.pos, what.as_ref()))
    }
    fn need(&self, n: u64, what: &str) -> Result<()> {
        if self.len.saturating_sub(self.pos) < n {
            return Err(self.err(format!("truncated file: {what} needs {n} bytes, {} left", self.len - self.pos)));
        }
        Ok(())
    }
    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        self.need(N as u64, what)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| self.err(format!("reading {what}: {e}")))?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        self.need(n, what)?;
        let mut v = vec![0u8; n as usize];
        self.r.read_exact(&mut v).map_err(|e| self.err(format!("reading {what}: {e}")))?;
        self.pos += n;
        String::from_utf8(v).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }
    fn value(&mut self, t: u32, what: &str, depth: u32) -> Result<Value> {
        Ok(match t {
            0 => Value::U8(self.bytes::<1>(what)?[0]),
            1 => Value::I8(self.bytes::<1>(what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.bytes(what)?)),
            3 => Value::I16(i16::from_le_bytes(self.bytes(what)?)),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(i32::from_le_bytes(self.bytes(what)?)),
            6 => Value::F32(f32::from_le_bytes(self.bytes(what)?)),
            7 => match self.bytes::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.err(format!("{what}: bool byte {b}"))),
            },
            8 => Value::String(self.string(what)?),
            9 => {
                if depth > 2 {
                    return Err(self.err(format!("{what}: arrays nested too deep")));
                }
                let et = self.u32(what)?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: bound the count by what is left
                // before allocating.
                let min = match et {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    _ => return Err(self.err(format!("{what}: unknown array element type {et}"))),
                };
                self.need(n.saturating_mul(min), what)?;
                // Each element takes ~32 bytes in memory against 1-12 in the file: a flipped
                // count in a large file would still abort on allocation. Real metadata
                // arrays (vocabularies, merges) hold well under a million entries.
                if n > MAX_ARRAY {
                    return Err(self.err(format!("{what}: an array of {n} elements (at most {MAX_ARRAY} are read)")));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(et, what, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(i64::from_le_bytes(self.bytes(what)?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes(what)?)),
            _ => return Err(self.err(format!("{what}: unknown value type {t}"))),
        })
    }
}

impl Gguf {
    /// Reads the metadata and tensor directory of a GGUF file (not the tensor data).
    pub fn open(path: &Path) -> Result<Gguf> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, "open GGUF file", e))?;
        let len = f.metadata().map_err(|e| Error::io(path, "stat GGUF file", e))?.len();
        Gguf::read(BufReader::new(f), len, path)
    }

    pub fn read(r: impl Read + Seek, len: u64, path: &Path) -> Result<Gguf> {
        let mut c = Cursor { r, pos: 0, len, path: path.to_path_buf() };
        c.r.seek(SeekFrom::Start(0)).map_err(|e| c.err(format!("seek: {e}")))?;
        let magic: [u8; 4] = c.bytes("magic")?;
        if &magic != MAGIC {
            return Err(c.err("not a GGUF file (bad magic)"));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(c.err(format!("GGUF version {version} is not supported (2 or 3)")));
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        // A key-value pair takes at least 12 bytes, a tensor entry at least 24.
        c.need(n_kv.saturating_mul(12).saturating_add(n_tensors.saturating_mul(24)), "the header's counts")?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key {i}"))?;
            let t = c.u32(&format!("type of '{key}'"))?;
            let v = c.value(t, &format!("value of '{key}'"), 0)?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor {i} name"))?;
            let nd = c.u32(&format!("tensor '{name}' dimension count"))?;
            if nd == 0 || nd > 4 {
                return Err(c.err(format!("tensor '{name}': {nd} dimensions")));
            }
            let mut dims = Vec::new();
            for _ in 0..nd {
                dims.push(c.u64(&format!("tensor '{name}' dimensions"))?);
            }
            let ggml_type = c.u32(&format!("tensor '{name}' type"))?;
            let offset = c.u64(&format!("tensor '{name}' offset"))?;
            tensors.push((name, dims, ggml_type, offset));
        }
        let align = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32);
        if align == 0 || !align.is_power_of_two() || align > 1 << 20 {
            return Err(c.err(format!("general.alignment = {align} is not a power of two")));
        }
        let data_start = c.pos.div_ceil(align) * align;
        let mut infos = Vec::new();
        for (name, dims, ggml_type, rel) in tensors {
            let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let bytes = n
                .ok_or_else(|| "element count overflows".to_string())
                .and_then(|n| type_bytes(ggml_type, n))
                .map_err(|e| Error::input(format!("{}: tensor '{name}': {e}", path.display())))?;
            if rel % align != 0 {
                return Err(Error::input(format!(
                    "{}: tensor '{name}': data offset {rel} is not a multiple of the alignment {align}",
                    path.display()
                )));
            }
            match data_start.checked_add(rel).and_then(|o| o.checked_add(bytes)) {
                Some(end) if end <= len => {}
                _ => {
                    return Err(Error::input(format!(
                        "{}: tensor '{name}' ({bytes} bytes at data offset {rel}) lies outside the file ({len} bytes): truncated or corrupted",
                        path.display()
                    )))
                }
            }
            infos.push(TensorInfo { name, dims, ggml_type, offset: data_start + rel, bytes });
        }
        Ok(Gguf { path: path.to_path_buf(), version, metadata, tensors: infos, file_len: len })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// An unsigned integer field, or an error naming the key.
    pub fn u64(&self, key: &str) -> Result<u64> {
        self.get(key).and_then(Value::as_u64).ok_or_else(|| {
            Error::input(format!("{}: metadata field '{key}' is missing or not an integer", self.path.display()))
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Writes a GGUF v3 file (metadata + tensors) — used by tests and tools to make small files.
pub fn write(path: &Path, metadata: &[(&str, Value)], tensors: &[(&str, Vec<u64>, u32, Vec<u8>)]) -> Result<()> {
    fn put_string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    fn put_value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U8(x) => out.push(*x),
            Value::I8(x) => out.push(*x as u8),
            Value::U16(x) => out.extend(x.to_le_bytes()),
            Value::I16(x) => out.extend(x.to_le_bytes()),
            Value::U32(x) => out.extend(x.to_le_bytes()),
            Value::I32(x) => out.extend(x.to_le_bytes()),
            Value::F32(x) => out.extend(x.to_le_bytes()),
            Value::Bool(x) => out.push(*x as u8),
            Value::String(s) => put_string(out, s),
            Value::Array(a) => {
                out.extend(a.first().map_or(4, type_id).to_le_bytes());
                out.extend((a.len() as u64).to_le_bytes());
                for x in a {
                    put_value(out, x);
                }
            }
            Value::U64(x) => out.extend(x.to_le_bytes()),
            Value::I64(x) => out.extend(x.to_le_bytes()),
            Value::F64(x) => out.extend(x.to_le_bytes()),
        }
    }
    fn type_id(v: &Value) -> u32 {
        match v {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }
    let mut out = Vec::new();
    out.extend(MAGIC);
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_string(&mut out, k);
        out.extend(type_id(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0u64;
    let mut offsets = Vec::new();
    for (name, dims, t, data) in tensors {
        put_string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(t.to_le_bytes());
        out.extend(offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + data.len() as u64).div_ceil(32) * 32;
    }
    while out.len() % 32 != 0 {
        out.push(0);
    }
    let start = out.len();
    for ((_, _, _, data), off) in tensors.iter().zip(offsets) {
        out.resize(start + off as usize, 0);
        out.extend(data);
    }
    crate::atomic::write_atomic(path, |w| w.write_all(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> PathBuf {
        let p = dir.join("m.gguf");
        write(
            &p,
            &[
                ("general.architecture", Value::String("llama".into())),
                ("llama.block_count", Value::U32(2)),
                ("tokenizer.ggml.tokens", Value::Array(vec![Value::String("a".into()), Value::String("b".into())])),
                ("llama.rope.freq_base", Value::F32(10000.0)),
            ],
            &[("w", vec![4, 2], 0, vec![1u8; 32]), ("v", vec![32], 8, vec![2u8; 34])],
        )
        .unwrap();
        p
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let g = Gguf::open(&sample(dir.path())).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.u64("llama.block_count").unwrap(), 2);
        assert_eq!(g.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap().len(), 2);
        assert_eq!(g.tensor("w").unwrap().bytes, 32);
        assert_eq!(g.tensor("v").unwrap().bytes, 34);
        assert_eq!(g.tensor("v").unwrap().offset % 32, 0);
        assert!(g.u64("llama.missing").unwrap_err().to_string().contains("'llama.missing'"));
    }

    #[test]
    fn every_truncation_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        let full = std::fs::read(&p).unwrap();
        for cut in 0..full.len() {
            let r = Gguf::read(std::io::Cursor::new(&full[..cut]), cut as u64, &p);
            let e = r.expect_err(&format!("cut at {cut} accepted")).to_string();
            assert!(e.contains("m.gguf"), "{e}");
        }
    }

    #[test]
    fn absurd_counts_do_not_allocate() {
        let mut b = Vec::new();
        b.extend(MAGIC);
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes()); // array
        b.extend(4u32.to_le_bytes()); // of u32
        b.extend(u64::MAX.to_le_bytes()); // absurd length
        let e = Gguf::read(std::io::Cursor::new(&b), b.len() as u64, Path::new("x.gguf")).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
