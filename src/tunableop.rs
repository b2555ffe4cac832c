//! PyTorch TunableOp interchange (shared/reference/tuners.md §2): results files
//! (`tunableop_results*.csv`) out of and into gemmtune tables, and untuned files
//! (`tunableop_untuned*.csv`) into shape files.
//!
//! Format: `Validator,<KEY>,<VALUE>` lines, then `<op_signature>,<params>,<kernel_id>[,<ms>]`.
//! `op_signature` = `GemmTunableOp_<T>_<TA><TB>` (T: float, Half, BFloat16, ...),
//! `params` = `<ta><tb>_<M>_<N>_<K>[_ld_<lda>_<ldb>_<ldc>]` in BLAS column-major terms:
//! M and N are swapped relative to `Y = X·Wᵀ`. `F.linear(x[M,K], W[N,K])` is
//! `GemmTunableOp_BFloat16_TN,tn_<N>_<M>_<K>_ld_<K>_<K>_<N>`. Our layout letters are the
//! same (transa, transb), so they carry over unchanged.
//!
//! Kernel ids: `Default`, `Gemm_Rocblas_<solution>`, `Gemm_Hipblaslt_<TA><TB>_<index>`
//! (older `Gemm_Hipblaslt_<index>`). In gemmtune they are `rocm:rocblas:default`,
//! `rocm:rocblas:<solution>` and `rocm:hipblaslt-index:<index>` (a hipBLASLt algorithm
//! named by its index only: the ROCm backend finds the matching 24-byte blob by asking the
//! heuristic for every algorithm and matching the index, never by building one by hand).

use crate::backend::{KernelId, Validators};
use crate::error::{Error, Result};
use crate::problem::{DType, Layout, Problem};
use crate::shapes::{ShapeEntry, ShapeFile};
use crate::table::{Table, TableRow};
use std::path::Path;

fn type_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float",
        DType::F16 => "Half",
        DType::BF16 => "BFloat16",
    }
}

fn dtype_of(t: &str) -> Option<DType> {
    match t {
        "float" => Some(DType::F32),
        "Half" => Some(DType::F16),
        "BFloat16" => Some(DType::BF16),
        _ => None,
    }
}

/// `(op_signature, params_signature)` of a problem (batch > 1: strided batched).
pub fn signature(p: &Problem) -> (String, String) {
    let (ta, tb) = (if p.layout.w_trans { 'T' } else { 'N' }, if p.layout.x_trans { 'T' } else { 'N' });
    let lda = if p.layout.w_trans { p.k } else { p.n };
    let ldb = if p.layout.x_trans { p.m } else { p.k };
    let ops = format!("{}{}", ta.to_ascii_lowercase(), tb.to_ascii_lowercase());
    if p.batch > 1 {
        (
            format!("GemmStridedBatchedTunableOp_{}_{ta}{tb}", type_name(p.dtype)),
            format!("{ops}_{}_{}_{}_B_{}_ld_{lda}_{ldb}_{}", p.n, p.m, p.k, p.batch, p.n),
        )
    } else {
        (format!("GemmTunableOp_{}_{ta}{tb}", type_name(p.dtype)), format!("{ops}_{}_{}_{}_ld_{lda}_{ldb}_{}", p.n, p.m, p.k, p.n))
    }
}

/// The problem of a TunableOp signature pair, or why it is not one gemmtune handles.
pub fn parse_signature(op: &str, params: &str) -> std::result::Result<Problem, String> {
    let (batched, rest) = if let Some(r) = op.strip_prefix("GemmStridedBatchedTunableOp_") {
        (true, r)
    } else if let Some(r) = op.strip_prefix("GemmTunableOp_") {
        (false, r)
    } else {
        return Err(format!("op '{op}' is not a GEMM TunableOp (Gemm..., GemmStridedBatched...)"));
    };
    let (t, trans) = rest.rsplit_once('_').ok_or_else(|| format!("op '{op}' has no transposes"))?;
    let dtype = dtype_of(t).ok_or_else(|| format!("type '{t}' is not supported (float, Half, BFloat16)"))?;
    let layout: Layout = trans.parse()?;
    let parts: Vec<&str> = params.split('_').collect();
    let num = |i: usize| -> std::result::Result<usize, String> {
        parts.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| format!("params '{params}': field {i} is not a number"))
    };
    if parts.first().map(|s| s.to_ascii_uppercase()) != Some(trans.to_string()) {
        return Err(format!("params '{params}' do not start with '{}'", trans.to_ascii_lowercase()));
    }
    // BLAS order: m_blas = N, n_blas = M.
    let (n, m, k) = (num(1)?, num(2)?, num(3)?);
    let batch = if batched {
        if parts.get(4) != Some(&"B") {
            return Err(format!("params '{params}': batched op without _B_<count>"));
        }
        num(5)?
    } else {
        1
    };
    // Leading dimensions (newer signatures): gemmtune tunes packed operands, so a padded
    // one is another problem. A stride over a single column is free, and not compared.
    if let Some(at) = parts.iter().position(|p| *p == "ld") {
        let (ta, tb) = (layout.w_trans, layout.x_trans);
        // BLAS column-major: A = W (m_blas = N rows of op(A)), B = X (n_blas = M).
        let packed = [(if ta { k } else { n }, if ta { n } else { k }), (if tb { m } else { k }, if tb { k } else { m }), (n, m)];
        for (i, (name, (ld, cols))) in ["lda", "ldb", "ldc"].iter().zip(packed).enumerate() {
            let given = num(at + 1 + i)?;
            if cols > 1 && given != ld {
                return Err(format!("params '{params}': {name} {given} is not the packed {ld} (gemmtune tunes packed operands; a padded one is another problem)"));
            }
        }
    }
    Problem::new(dtype, layout, m, n, k, batch)
}

/// TunableOp kernel id → gemmtune kernel id.
pub fn kernel_from(id: &str) -> std::result::Result<KernelId, String> {
    if id == "Default" {
        return Ok(KernelId::new("rocm:rocblas:default"));
    }
    if let Some(idx) = id.strip_prefix("Gemm_Rocblas_") {
        let i: i64 = idx.parse().map_err(|_| format!("kernel '{id}': bad solution index"))?;
        return Ok(KernelId::new(format!("rocm:rocblas:{i}")));
    }
    if let Some(rest) = id.strip_prefix("Gemm_Hipblaslt_") {
        let idx = rest.rsplit('_').next().unwrap_or(rest);
        let i: i64 = idx.parse().map_err(|_| format!("kernel '{id}': bad algorithm index"))?;
        return Ok(KernelId::new(format!("rocm:hipblaslt-index:{i}")));
    }
    Err(format!("kernel '{id}' has no gemmtune equivalent"))
}

/// gemmtune kernel id → TunableOp kernel id (`layout` for the hipBLASLt form).
pub fn kernel_to(id: &KernelId, layout: Layout) -> std::result::Result<String, String> {
    let parts: Vec<&str> = id.as_str().split(':').collect();
    match parts.as_slice() {
        ["rocm", "rocblas", "default"] => Ok("Default".into()),
        ["rocm", "rocblas", i] => Ok(format!("Gemm_Rocblas_{i}")),
        ["rocm", "hipblaslt-index", i] => Ok(format!("Gemm_Hipblaslt_{layout}_{i}")),
        ["rocm", "hipblaslt", _version, blob] => {
            // Solution index = little-endian int32 in bytes 0..4 of the algo blob.
            let b = u32::from_str_radix(blob.get(..8).ok_or("short blob")?, 16).map_err(|e| e.to_string())?;
            Ok(format!("Gemm_Hipblaslt_{layout}_{}", i32::from_le_bytes(b.to_be_bytes())))
        }
        _ => Err(format!("kernel '{id}' is not a ROCm kernel TunableOp can run")),
    }
}

/// A parsed results file: validators and rows (problem, kernel id, ms), with line numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub validators: Vec<(String, String)>,
    pub rows: Vec<(usize, Problem, String, Option<f64>)>,
    /// Lines skipped (not a GEMM op gemmtune handles), with the reason.
    pub skipped: Vec<(usize, String)>,
}

/// Reads a results file with TunableOp's rules: validators, then rows of ≥ 3 fields;
/// extra fields (BLAS_PARAMS) ignored; empty lines skipped.
pub fn parse_results(text: &str, path: &Path) -> Result<Results> {
    let mut r = Results { validators: Vec::new(), rows: Vec::new(), skipped: Vec::new() };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f[0] == "Validator" {
            if f.len() < 3 {
                return Err(Error::at(path, n, None, "validator line needs a key and a value"));
            }
            r.validators.push((f[1].to_string(), f[2..].join(",")));
            continue;
        }
        if f.len() < 3 {
            return Err(Error::at(path, n, None, format!("expected op,params,kernel[,ms], got {} fields", f.len())));
        }
        let ms = match f.get(3) {
            Some(v) => Some(v.trim().parse::<f64>().map_err(|_| Error::at(path, n, Some("time"), format!("'{v}' is not a number")))?),
            None => None,
        };
        match parse_signature(f[0], f[1]) {
            Ok(p) => r.rows.push((n, p, f[2].to_string(), ms)),
            Err(why) => r.skipped.push((n, why)),
        }
    }
    Ok(r)
}

/// The validator set whose rows go into a TunableOp file, which has one set of validators:
/// `chosen`, or the table's only set; a table of several devices or library versions must
/// say which.
pub fn export_set(t: &Table, chosen: Option<&str>) -> Result<String> {
    let count = |id: &str| t.rows.iter().filter(|r| r.validators == id).count();
    if let Some(id) = chosen {
        return match t.validators.contains_key(id) {
            true => Ok(id.to_string()),
            false => Err(Error::input(format!("--set {id}: the table has no validator set '{id}' (it has {})", sets(t, &count)))),
        };
    }
    let used: Vec<&String> = t.validators.keys().filter(|id| count(id) > 0).collect();
    match used.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::input("the table has no rows to export")),
        _ => Err(Error::input(format!(
            "the table holds rows of {} validator sets ({}); a TunableOp file has one set: choose it with --set",
            used.len(),
            sets(t, &count)
        ))),
    }
}

fn sets(t: &Table, count: &dyn Fn(&str) -> usize) -> String {
    let name = |v: &Validators| ["backend", "device", "arch"].iter().filter_map(|k| v.get(*k).cloned()).collect::<Vec<_>>().join(" ");
    t.validators.iter().map(|(id, v)| format!("{id}: {} rows, {}", count(id), name(v))).collect::<Vec<_>>().join("; ")
}

/// Writes the rows of validator set `set` of `t` as a TunableOp results file with
/// `validators` (see `validators_for`). Rows whose kernel TunableOp cannot run are left
/// out and returned; rows of other sets are left out too (one line says how many).
pub fn export(t: &Table, set: &str, validators: &[(String, String)]) -> (String, Vec<String>) {
    let mut out = String::new();
    for (k, v) in validators {
        out.push_str(&format!("Validator,{k},{v}\n"));
    }
    let mut left_out = Vec::new();
    let others = t.rows.iter().filter(|r| r.validators != set).count();
    if others > 0 {
        left_out.push(format!("{others} rows of other validator sets than {set}"));
    }
    for r in t.rows.iter().filter(|r| r.validators == set) {
        if !r.problem.wformat.is_dense() {
            left_out.push(format!("{}: TunableOp has no quantized weights", r.problem));
            continue;
        }
        match kernel_to(&r.kernel, r.problem.layout) {
            Ok(kid) => {
                let (op, params) = signature(&r.problem);
                out.push_str(&format!("{op},{params},{kid},{:.6}\n", r.time_us / 1000.0));
            }
            Err(why) => left_out.push(format!("{}: {why}", r.problem)),
        }
    }
    (out, left_out)
}

/// TunableOp validators for validator set `set` of `t`: the TunableOp validators an
/// imported file had (kept as `tunableop.<KEY>`), then those gemmtune's ROCm validators
/// give (ROCBLAS_VERSION, HIPBLASLT_VERSION, GCN_ARCH_NAME, HIP_VERSION) where missing,
/// PT_VERSION `unknown` when nothing gave it; `given` (KEY=VALUE) override or add.
pub fn validators_for(t: &Table, set: &str, given: &[(String, String)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, x: &str, replace: bool| match v.iter_mut().find(|(kk, _)| kk == k) {
        Some(e) if replace => e.1 = x.to_string(),
        Some(_) => {}
        None => v.push((k.to_string(), x.to_string())),
    };
    if let Some(vals) = t.validators.get(set) {
        if let Some(pt) = vals.get("tunableop.PT_VERSION") {
            put("PT_VERSION", pt, false);
        }
        for (k, x) in vals.iter().filter_map(|(k, x)| k.strip_prefix("tunableop.").map(|k| (k, x))) {
            put(k, x, false);
        }
        if vals.get("backend").map(String::as_str) == Some("rocm") {
            for (ours, theirs) in [("lib.rocblas", "ROCBLAS_VERSION"), ("lib.hipblaslt", "HIPBLASLT_VERSION"), ("arch", "GCN_ARCH_NAME"), ("lib.hip", "HIP_VERSION")] {
                if let Some(x) = vals.get(ours) {
                    put(theirs, x, false);
                }
            }
        }
    }
    put("PT_VERSION", "unknown", false);
    for (k, x) in given {
        put(k, x, true);
    }
    // PT_VERSION first, as PyTorch writes it.
    v.sort_by_key(|(k, _)| k != "PT_VERSION");
    v
}

/// A gemmtune table from a TunableOp results file. Validators map back (GCN_ARCH_NAME →
/// arch, ROCBLAS_VERSION → lib.rocblas, ...); every TunableOp validator is kept as
/// `tunableop.<KEY>`. Returns the table and the lines skipped with reasons.
pub fn import(text: &str, path: &Path) -> Result<(Table, Vec<String>)> {
    let r = parse_results(text, path)?;
    let mut v = Validators::new();
    // A ROCm file by its validators, or by its kernels when it has none of those (its rows
    // would otherwise be ROCm kernels under a CUDA machine's validators).
    let is_rocm = r.validators.iter().any(|(k, _)| k == "ROCBLAS_VERSION" || k == "HIPBLASLT_VERSION" || k == "GCN_ARCH_NAME")
        || r.rows.iter().any(|(_, _, kid, _)| kid.starts_with("Gemm_Rocblas_") || kid.starts_with("Gemm_Hipblaslt_"));
    v.insert("backend".into(), if is_rocm { "rocm" } else { "cuda" }.into());
    v.insert("gemmtune".into(), env!("CARGO_PKG_VERSION").into());
    for (k, x) in &r.validators {
        match k.as_str() {
            "GCN_ARCH_NAME" => {
                v.insert("arch".into(), x.clone());
            }
            "ROCBLAS_VERSION" => {
                v.insert("lib.rocblas".into(), x.clone());
            }
            "HIPBLASLT_VERSION" => {
                v.insert("lib.hipblaslt".into(), x.clone());
            }
            "HIP_VERSION" => {
                v.insert("lib.hip".into(), x.clone());
            }
            _ => {}
        }
        v.insert(format!("tunableop.{k}"), x.clone());
    }
    // Rows are keyed by (problem, machine = backend, device, arch). A file naming neither
    // device nor arch (CUDA files carry only PT_VERSION) is its own machine, so importing
    // another GPU's file into the same table keeps both.
    if !v.contains_key("arch") {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        v.insert("device".into(), format!("unknown: TunableOp file {name}"));
    }
    let mut t = Table::default();
    t.comments.push(format!("imported from TunableOp results {}", path.display()));
    let vid = t.validator_id(&v);
    let mut skipped: Vec<String> = r.skipped.iter().map(|(n, why)| format!("{}:{n}: {why}", path.display())).collect();
    let mut first_line: std::collections::HashMap<Problem, usize> = std::collections::HashMap::new();
    for (n, p, kid, ms) in r.rows {
        if let Some(ms) = ms.filter(|ms| !(ms.is_finite() && *ms > 0.0)) {
            skipped.push(format!("{}:{n}: time {ms} ms is not a positive time", path.display()));
            continue;
        }
        let kernel = match kernel_from(&kid) {
            Ok(k) if is_rocm => k,
            Ok(_) if kid == "Default" => KernelId::new("cuda:cublas:default"),
            Ok(k) => k,
            Err(why) => {
                skipped.push(format!("{}:{n}: {why}", path.display()));
                continue;
            }
        };
        if let Some(before) = first_line.insert(p, n) {
            skipped.push(format!("{}:{before}: the same problem again on line {n}; the later line is kept", path.display()));
        }
        let time_us = ms.map_or(f64::NAN, |m| m * 1000.0);
        t.upsert(TableRow {
            problem: p,
            default_kernel: KernelId::new(if is_rocm { "rocm:rocblas:default" } else { "cuda:cublas:default" }),
            kernel,
            time_us,
            default_time_us: f64::NAN,
            speedup: f64::NAN,
            noise_pct: f64::NAN,
            tflops: p.flops() / (time_us * 1e-6) / 1e12,
            gbps: p.min_bytes() / (time_us * 1e-6) / 1e9,
            candidates: 0,
            rejected: 0,
            validators: vid.clone(),
            attrs: format!("tunableop={kid}"),
            tuned_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            line: 0,
        });
    }
    Ok((t, skipped))
}

/// A shape file from a TunableOp untuned file (`op,params` lines; repeats add up).
pub fn untuned_to_shapes(text: &str, path: &Path) -> Result<(ShapeFile, Vec<String>)> {
    let mut f = ShapeFile {
        comments: vec![format!("from TunableOp untuned file {}", path.display())],
        entries: Vec::new(),
    };
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() < 2 || fields[0].is_empty() {
            continue;
        }
        match parse_signature(fields[0], fields[1]) {
            Ok(p) => {
                let mut e = ShapeEntry::new(p);
                e.layer = "tunableop".into();
                f.add(e);
            }
            Err(why) => skipped.push(format!("{}:{}: {why}", path.display(), i + 1)),
        }
    }
    Ok((f, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_layer_signature_swaps_m_and_n() {
        let p = Problem::linear(DType::BF16, 8, 6144, 4096).unwrap();
        let (op, params) = signature(&p);
        assert_eq!(op, "GemmTunableOp_BFloat16_TN");
        assert_eq!(params, "tn_6144_8_4096_ld_4096_4096_6144");
        assert_eq!(parse_signature(&op, &params).unwrap(), p);
        // Older signatures without leading dimensions.
        assert_eq!(parse_signature("GemmTunableOp_BFloat16_TN", "tn_6144_8_4096").unwrap(), p);
        let b = Problem::new(DType::F16, Layout::NT, 32, 64, 128, 4).unwrap();
        let (op, params) = signature(&b);
        assert_eq!(parse_signature(&op, &params).unwrap(), b);
        assert!(parse_signature("ScaledGemmTunableOp_Float8_e4m3fn_Float8_e4m3fn_BFloat16_TN", "tn_1_2_3").is_err());
        assert!(parse_signature("GemmTunableOp_double_NN", "nn_1_2_3").is_err());
    }

    #[test]
    fn kernel_ids_map_both_ways() {
        assert_eq!(kernel_from("Gemm_Rocblas_1216").unwrap().as_str(), "rocm:rocblas:1216");
        assert_eq!(kernel_from("Gemm_Rocblas_-123456").unwrap().as_str(), "rocm:rocblas:-123456");
        assert_eq!(kernel_from("Gemm_Hipblaslt_TN_56537").unwrap().as_str(), "rocm:hipblaslt-index:56537");
        assert_eq!(kernel_from("Gemm_Hipblaslt_1219").unwrap().as_str(), "rocm:hipblaslt-index:1219");
        assert_eq!(kernel_from("Default").unwrap().as_str(), "rocm:rocblas:default");
        assert!(kernel_from("Gemm_Cublaslt_TN_3").is_err());
        assert_eq!(kernel_to(&KernelId::new("rocm:hipblaslt-index:56537"), Layout::TN).unwrap(), "Gemm_Hipblaslt_TN_56537");
        // A blob whose first four bytes hold index 300 (0x12c, little endian).
        let blob = format!("2c010000{}", "0".repeat(40));
        assert_eq!(kernel_to(&KernelId::new(format!("rocm:hipblaslt:100000:{blob}")), Layout::NT).unwrap(), "Gemm_Hipblaslt_NT_300");
        assert!(kernel_to(&KernelId::new("cuda:cublas:default"), Layout::TN).is_err());
    }
}
