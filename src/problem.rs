//! The GEMM problem key: what a tuned table row is looked up by.
//!
//! One convention everywhere: the PyTorch linear layer `Y[M,N] = X[M,K] · W[N,K]^T`
//! (row-major tensors). In column-major BLAS terms that call is `C = op(A)·op(B)` with
//! `A = W`, `B = X`, `m = N`, `n = M`, and `op(A) = T`, `op(B) = N`: the layout "TN".
//! The two letters are always the BLAS `(transa, transb)` of that call, so
//!
//! | layout | W stored (row-major) | X stored (row-major) | typical use            |
//! |--------|----------------------|----------------------|------------------------|
//! | `TN`   | `[N, K]`             | `[M, K]`             | `nn.Linear` (default)  |
//! | `NN`   | `[K, N]`             | `[M, K]`             | `Y = X · W`            |
//! | `TT`   | `[N, K]`             | `[K, M]`             | transposed activations |
//! | `NT`   | `[K, N]`             | `[K, M]`             |                        |
//!
//! `Y` is always row-major `[M, N]`. A batch count > 1 means `batch` independent
//! problems stored back to back (strided batched GEMM).

use std::fmt;
use std::str::FromStr;

/// Largest value accepted for one dimension: large enough for any real layer
/// (vocabularies of 256k, prefill of 1M tokens), small enough that M·N·K fits u64 math.
pub const MAX_DIM: u64 = 1 << 24;
/// Largest element count of one operand (16 Gi elements = 32 GiB in bf16).
pub const MAX_ELEMS: u64 = 1 << 34;

/// Element type of X, W and Y. Accumulation is always f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
    pub fn bytes(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }
    /// Largest relative Frobenius error a correct kernel may show against the f64
    /// reference: f32 accumulation over K plus rounding of the output to this type.
    pub fn tolerance(self) -> f64 {
        match self {
            DType::F32 => 1e-4,
            DType::F16 => 4e-3,
            DType::BF16 => 2e-2,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(DType::F32),
            "f16" | "float16" | "half" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            other => Err(format!("unknown dtype '{other}' (expected f32, f16 or bf16)")),
        }
    }
}

/// How W is stored: dense in the problem's dtype, or packed in a weight-only quantized
/// format while X and Y stay in the dtype (activations f32 on the CPU, bf16/f16 on GPUs).
/// Byte layouts, dequantization and random packed weights are in `quant.rs`.
///
/// In tables and shape files the format rides in the `dtype` column after a slash,
/// `f32/q4_1`; a plain `f32` is dense, so files written before quantized problems
/// existed load unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeightFormat {
    #[default]
    Dense,
    /// GGUF Q4_1: blocks of 32 along K, f16 scale d, f16 min m, 16 bytes of nibbles; d·q + m.
    Q4_1,
    /// GGUF Q8_0: blocks of 32 along K, f16 scale d, 32 × i8; d·q.
    Q8_0,
    /// GPTQ/AWQ-style int4, groups of 128 along K with f16 scale s and f16 zero z; s·(q − z).
    G128,
}

impl WeightFormat {
    pub const QUANTIZED: [WeightFormat; 3] = [WeightFormat::Q4_1, WeightFormat::Q8_0, WeightFormat::G128];

    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::Dense => "dense",
            WeightFormat::Q4_1 => "q4_1",
            WeightFormat::Q8_0 => "q8_0",
            WeightFormat::G128 => "g128",
        }
    }
    pub fn is_dense(self) -> bool {
        self == WeightFormat::Dense
    }
    /// Elements per block (group) along K; K must be a multiple of it.
    pub fn block(self) -> usize {
        match self {
            WeightFormat::Dense => 1,
            WeightFormat::Q4_1 | WeightFormat::Q8_0 => 32,
            WeightFormat::G128 => 128,
        }
    }
    /// Packed bytes per block, scales included (0 for dense: see `Problem::w_bytes`).
    pub fn block_bytes(self) -> usize {
        match self {
            WeightFormat::Dense => 0,
            WeightFormat::Q4_1 => 20,
            WeightFormat::Q8_0 => 34,
            WeightFormat::G128 => 68,
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dense" => Ok(WeightFormat::Dense),
            "q4_1" => Ok(WeightFormat::Q4_1),
            "q8_0" => Ok(WeightFormat::Q8_0),
            "g128" => Ok(WeightFormat::G128),
            other => Err(format!("unknown weight format '{other}' (expected q4_1, q8_0 or g128)")),
        }
    }
}

/// Parses the `dtype` column of tables and shape files: `f32`, or `f32/q4_1` for
/// quantized weights (see `WeightFormat`).
pub fn parse_types(s: &str) -> Result<(DType, WeightFormat), String> {
    match s.split_once('/') {
        None => Ok((s.parse()?, WeightFormat::Dense)),
        Some((d, w)) => Ok((d.parse()?, w.parse()?)),
    }
}

/// BLAS `(transa, transb)` of the column-major call; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layout {
    /// `op(A)` applied to W: true means W is stored `[N, K]` (the linear layer).
    pub w_trans: bool,
    /// `op(B)` applied to X: true means X is stored `[K, M]`.
    pub x_trans: bool,
}

impl Layout {
    pub const TN: Layout = Layout { w_trans: true, x_trans: false };
    pub const NN: Layout = Layout { w_trans: false, x_trans: false };
    pub const TT: Layout = Layout { w_trans: true, x_trans: true };
    pub const NT: Layout = Layout { w_trans: false, x_trans: true };

    pub fn name(self) -> &'static str {
        match (self.w_trans, self.x_trans) {
            (true, false) => "TN",
            (false, false) => "NN",
            (true, true) => "TT",
            (false, true) => "NT",
        }
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout::TN
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "TN" => Ok(Layout::TN),
            "NN" => Ok(Layout::NN),
            "TT" => Ok(Layout::TT),
            "NT" => Ok(Layout::NT),
            other => Err(format!("unknown layout '{other}' (expected TN, NN, NT or TT)")),
        }
    }
}

/// Row-major strides `(row, col)` of one operand, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    pub row: usize,
    pub col: usize,
}

/// A problem without M: `(dtype, wformat, layout, n, k, batch)`.
pub type WeightKey = (DType, WeightFormat, Layout, usize, usize, usize);

/// The key of a tuned table row: everything that decides which kernel is fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    pub dtype: DType,
    pub layout: Layout,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    /// How W is stored (dense unless a quantized format is named).
    pub wformat: WeightFormat,
}

impl Problem {
    /// A linear-layer problem (`TN`, batch 1), validated.
    pub fn linear(dtype: DType, m: usize, n: usize, k: usize) -> Result<Problem, String> {
        Problem::new(dtype, Layout::TN, m, n, k, 1)
    }

    pub fn new(
        dtype: DType,
        layout: Layout,
        m: usize,
        n: usize,
        k: usize,
        batch: usize,
    ) -> Result<Problem, String> {
        let p = Problem { dtype, layout, m, n, k, batch, wformat: WeightFormat::Dense };
        p.check()?;
        Ok(p)
    }

    /// The same problem with W stored in `wformat`, validated (K a multiple of the block,
    /// W stored `[N, K]`).
    pub fn with_weights(self, wformat: WeightFormat) -> Result<Problem, String> {
        let p = Problem { wformat, ..self };
        p.check()?;
        Ok(p)
    }

    /// The `dtype` column: `f32`, or `f32/q4_1` for quantized weights.
    pub fn types(&self) -> String {
        if self.wformat.is_dense() {
            self.dtype.name().to_string()
        } else {
            format!("{}/{}", self.dtype, self.wformat)
        }
    }

    /// The column of a shape file or table that a `check` message is about (None when it
    /// is about several at once, as an operand's size).
    pub fn check_field(msg: &str) -> Option<&'static str> {
        match msg.split([' ', '=']).next()? {
            "m" => Some("m"),
            "n" => Some("n"),
            "k" => Some("k"),
            "batch" => Some("batch"),
            _ if msg.contains("(layout ") => Some("layout"),
            _ => None,
        }
    }

    /// Rejects zero and absurd sizes before anybody allocates for them.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [("m", self.m), ("n", self.n), ("k", self.k), ("batch", self.batch)] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
            if v as u64 > MAX_DIM {
                return Err(format!("{name} = {v} is larger than the supported maximum {MAX_DIM}"));
            }
        }
        let b = self.batch as u64;
        for (name, elems) in [
            ("X", b * self.m as u64 * self.k as u64),
            ("W", b * self.n as u64 * self.k as u64),
            ("Y", b * self.m as u64 * self.n as u64),
        ] {
            if elems > MAX_ELEMS {
                return Err(format!(
                    "operand {name} would hold {elems} elements, more than the supported {MAX_ELEMS}"
                ));
            }
        }
        if !self.wformat.is_dense() {
            let f = self.wformat;
            if !self.k.is_multiple_of(f.block()) {
                return Err(format!("k = {} is not a multiple of the {f} block of {}", self.k, f.block()));
            }
            if !self.layout.w_trans {
                return Err(format!("{f} weights are stored [N, K] (layout TN or TT), not {}", self.layout));
            }
        }
        Ok(())
    }

    pub fn x_len(&self) -> usize {
        self.batch * self.m * self.k
    }
    pub fn w_len(&self) -> usize {
        self.batch * self.n * self.k
    }
    pub fn y_len(&self) -> usize {
        self.batch * self.m * self.n
    }

    /// Strides of X seen as the logical `[M, K]` matrix.
    pub fn x_strides(&self) -> Strides {
        if self.layout.x_trans {
            Strides { row: 1, col: self.m }
        } else {
            Strides { row: self.k, col: 1 }
        }
    }
    /// Strides of W seen as the logical `[N, K]` matrix.
    pub fn w_strides(&self) -> Strides {
        if self.layout.w_trans {
            Strides { row: self.k, col: 1 }
        } else {
            Strides { row: 1, col: self.n }
        }
    }

    /// Bytes of W as stored: elements × dtype size, or the packed blocks with their scales.
    pub fn w_bytes(&self) -> f64 {
        if self.wformat.is_dense() {
            self.w_len() as f64 * self.dtype.bytes() as f64
        } else {
            (self.w_len() / self.wformat.block()) as f64 * self.wformat.block_bytes() as f64
        }
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }
    /// The fewest bytes a kernel must move: each operand read once (W as stored, packed
    /// when quantized), Y written once.
    pub fn min_bytes(&self) -> f64 {
        (self.x_len() + self.y_len()) as f64 * self.dtype.bytes() as f64 + self.w_bytes()
    }

    /// The same problem with another M (the dispatcher's bucket fallback).
    pub fn with_m(&self, m: usize) -> Problem {
        Problem { m, ..*self }
    }

    /// Everything but M: problems sharing it run on the same weights.
    pub fn weight_key(&self) -> WeightKey {
        (self.dtype, self.wformat, self.layout, self.n, self.k, self.batch)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} m={} n={} k={}", self.types(), self.layout, self.m, self.n, self.k)?;
        if self.batch != 1 {
            write!(f, " batch={}", self.batch)?;
        }
        Ok(())
    }
}

/// Which part of inference a problem comes from; rides along, not part of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Prefill,
    Decode,
    Other,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
            Phase::Other => "other",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "prefill" => Ok(Phase::Prefill),
            "decode" => Ok(Phase::Decode),
            "" | "other" => Ok(Phase::Other),
            other => Err(format!("unknown phase '{other}' (expected prefill, decode or other)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
        for l in [Layout::TN, Layout::NN, Layout::NT, Layout::TT] {
            assert_eq!(l.name().parse::<Layout>().unwrap(), l);
        }
        assert!("f8".parse::<DType>().is_err());
        assert!("XN".parse::<Layout>().is_err());
    }

    #[test]
    fn rejects_zero_and_absurd_dims() {
        assert!(Problem::linear(DType::F32, 0, 4, 4).is_err());
        assert!(Problem::linear(DType::F32, 4, 4, 0).is_err());
        let e = Problem::linear(DType::F32, 1 << 30, 4, 4).unwrap_err();
        assert!(e.contains("m = "), "{e}");
        // Each dim is fine, the product is not.
        let e = Problem::linear(DType::BF16, 1 << 20, 1 << 20, 16).unwrap_err();
        assert!(e.contains("operand Y"), "{e}");
    }

    #[test]
    fn weight_formats_in_the_key() {
        assert_eq!(parse_types("f32").unwrap(), (DType::F32, WeightFormat::Dense));
        assert_eq!(parse_types("bf16/g128").unwrap(), (DType::BF16, WeightFormat::G128));
        for f in WeightFormat::QUANTIZED {
            let p = Problem::linear(DType::F32, 1, 8, 256).unwrap().with_weights(f).unwrap();
            assert_eq!(parse_types(&p.types()).unwrap(), (DType::F32, f));
            assert_ne!(p.weight_key(), Problem::linear(DType::F32, 1, 8, 256).unwrap().weight_key());
        }
        assert!(parse_types("f32/q3_k").unwrap_err().contains("weight format"));
        assert!(parse_types("f8/q4_1").is_err());
        let p = Problem::linear(DType::F32, 1, 576, 576).unwrap();
        assert!(p.with_weights(WeightFormat::G128).unwrap_err().contains("multiple of the g128 block"));
        let nn = Problem::new(DType::F32, Layout::NN, 1, 64, 64, 1).unwrap();
        assert!(nn.with_weights(WeightFormat::Q4_1).is_err());
        // Roofline bytes count the packed weights: 576×576 q4_1 is 20 bytes per 32.
        let q = p.with_weights(WeightFormat::Q4_1).unwrap();
        assert_eq!(q.w_bytes(), (576.0 * 576.0 / 32.0) * 20.0);
        assert_eq!(q.min_bytes(), q.w_bytes() + 2.0 * 576.0 * 4.0);
        assert_eq!(q.to_string(), "f32/q4_1 TN m=1 n=576 k=576");
    }

    #[test]
    fn strides_follow_layout() {
        let p = Problem::new(DType::F32, Layout::TN, 3, 5, 7, 1).unwrap();
        assert_eq!(p.x_strides(), Strides { row: 7, col: 1 });
        assert_eq!(p.w_strides(), Strides { row: 7, col: 1 });
        let p = Problem::new(DType::F32, Layout::NT, 3, 5, 7, 1).unwrap();
        assert_eq!(p.x_strides(), Strides { row: 1, col: 3 });
        assert_eq!(p.w_strides(), Strides { row: 1, col: 5 });
    }
}
