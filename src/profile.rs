//! `profile`: the GEMM shapes a model produces, derived from its configuration.
//!
//! Sources: a Hugging Face `config.json` (or a folder holding one, whose `*.safetensors`
//! headers then tell whether q/k/v and gate/up are stored fused), or a GGUF file (its
//! architecture metadata and tensor names).
//!
//! Every linear layer is `Y[M,N] = X[M,K] · W[N,K]^T` (layout TN). Per forward step and
//! tensor-parallel rank (`--tp`):
//!
//! | layer | N | K | split | calls |
//! |---|---|---|---|---|
//! | qkv (fused) | (H + 2·KV)·d / tp | hidden | column-parallel | layers |
//! | q / k, v (separate) | H·d / tp, KV·d / tp | hidden | column-parallel | layers each |
//! | o_proj | hidden | H·d / tp | row-parallel | layers |
//! | gate_up (fused) | 2·I / tp | hidden | column-parallel | layers |
//! | gate / up (separate) | I / tp | hidden | column-parallel | layers each |
//! | down | hidden | I / tp | row-parallel | layers |
//! | lm_head | ⌈V / tp⌉ | hidden | vocab-parallel | 1 |
//! | MoE router | E | hidden | replicated | layers |
//! | MoE experts w13 / w2 | 2·I / tp, hidden | hidden, I / tp | as gate_up / down | layers × active experts |
//!
//! H, KV: query and key/value heads (KV heads fewer than `tp` are replicated, one per
//! rank), d: head dim, I: intermediate size, V: vocabulary, E: experts. Prefill runs
//! M = prompt length tokens of one sequence and computes logits for the last token only
//! (lm_head M = 1); decode runs M = batch (one token per sequence). For MoE with T tokens
//! and top-k routing over E experts, the expected number of active experts is
//! E·(1 − (1 − k/E)^T), each with T·k / active tokens rounded to the nearest whole (at
//! least 1). Experts' w1 and w3 are listed fused (w13, as serving runtimes run them)
//! unless `--fuse separate`, whatever the checkpoint stores.
//!
//! Each row's weight is its estimated share of time: calls × roofline time on the target
//! device (max(2MNK / peak, bytes / bandwidth)), times the generated tokens per request for
//! decode rows, so `tune --top-share` works through the shapes that matter first.

use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::problem::{DType, Phase, Problem};
use crate::shapes::{ShapeEntry, ShapeFile};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// The architecture facts that decide GEMM shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    pub vocab: usize,
    pub tied_embeddings: bool,
    /// (experts, experts used per token) for mixture-of-experts models.
    pub moe: Option<(usize, usize)>,
    /// How the checkpoint stores q/k/v and gate/up: Some(true) fused, Some(false)
    /// separate, None unknown (config only).
    pub fused_qkv: Option<bool>,
    pub fused_gate_up: Option<bool>,
}

/// Roofline of the device the weights are estimated for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceModel {
    pub name: &'static str,
    /// FLOP/s at the profile's dtype (dense 16-bit tensor cores for GPUs).
    pub peak: f64,
    /// Memory bandwidth, bytes/s.
    pub bandwidth: f64,
}

pub const DEVICES: [DeviceModel; 5] = [
    // Measured here where we could (docs/PERFORMANCE.md), datasheet otherwise.
    DeviceModel { name: "h100", peak: 790e12, bandwidth: 3.0e12 },
    DeviceModel { name: "h200", peak: 790e12, bandwidth: 4.3e12 },
    DeviceModel { name: "a100", peak: 312e12, bandwidth: 1.9e12 },
    DeviceModel { name: "mi300x", peak: 1300e12, bandwidth: 5.3e12 },
    DeviceModel { name: "cpu", peak: 0.2e12, bandwidth: 30e9 },
];

pub fn device(name: &str) -> Result<DeviceModel> {
    DEVICES.iter().copied().find(|d| d.name == name).ok_or_else(|| {
        let known: Vec<&str> = DEVICES.iter().map(|d| d.name).collect();
        Error::input(format!("unknown --device '{name}' (known: {})", known.join(", ")))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fuse {
    /// As the checkpoint stores them; fused when unknown (what serving runtimes do). MoE
    /// experts are fused (w13) unless `Separate`.
    Auto,
    Fused,
    Separate,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub tp: usize,
    pub batches: Vec<usize>,
    pub prompt_lens: Vec<usize>,
    pub phase: Option<Phase>,
    pub dtype: DType,
    pub device: DeviceModel,
    /// Tokens generated per request: decode rows weigh this many steps.
    pub gen_len: usize,
    pub fuse: Fuse,
}

/// The decode M values to tune so that every batch up to `max` maps to a tuned entry
/// through the dispatcher's bucket rule (the smallest tuned M ≥ the requested M): powers
/// of two up to `max`, and `max` itself.
pub fn decode_buckets(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..usize::BITS).map(|i| 1usize << i).take_while(|&m| m < max).collect();
    v.push(max.max(1));
    v
}

// ---------------------------------------------------------------- loading

/// Loads a model configuration from a `config.json`, a folder holding one, or a GGUF file.
pub fn load(path: &Path) -> Result<ModelConfig> {
    if path.is_dir() {
        let cfg = path.join("config.json");
        let mut c = from_hf(&cfg)?;
        let (qkv, gate_up) = safetensors_layout(path)?;
        c.fused_qkv = qkv.or(c.fused_qkv);
        c.fused_gate_up = gate_up.or(c.fused_gate_up);
        return Ok(c);
    }
    let is_gguf = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut m = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut m).map(|_| &m == b"GGUF")
        })
        .unwrap_or(false);
    if is_gguf {
        from_gguf(&Gguf::open(path)?)
    } else {
        from_hf(path)
    }
}

fn field<'a>(j: &'a Json, path: &Path, key: &str) -> Result<&'a Json> {
    j.get(key).ok_or_else(|| Error::input(format!("{}: field '{key}' is missing", path.display())))
}

fn uint(j: &Json, path: &Path, key: &str) -> Result<usize> {
    let v = field(j, path, key)?;
    v.as_u64()
        .filter(|&x| x > 0 && x <= crate::problem::MAX_DIM)
        .map(|x| x as usize)
        .ok_or_else(|| {
            let why = match v.as_u64() {
                Some(x) if x > crate::problem::MAX_DIM => format!("is larger than the {} gemmtune supports", crate::problem::MAX_DIM),
                _ => "is not a positive integer".into(),
            };
            Error::input(format!("{}: field '{key}' = {v} {why}", path.display()))
        })
}

/// A Hugging Face `config.json` (Llama, Mistral, Qwen2, Mixtral and their kin).
pub fn from_hf(path: &Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read model config", e))?;
    let j: Json = serde_json::from_str(&text)
        .map_err(|e| Error::input(format!("{}:{}: not valid JSON: {e}", path.display(), e.line())))?;
    let hidden = uint(&j, path, "hidden_size")?;
    let heads = uint(&j, path, "num_attention_heads")?;
    let kv_heads = if j.get("num_key_value_heads").is_some_and(|v| !v.is_null()) {
        uint(&j, path, "num_key_value_heads")?
    } else {
        heads
    };
    // Grouped-query attention: each KV head serves a whole group of query heads.
    if heads % kv_heads != 0 {
        return Err(Error::input(format!(
            "{}: field 'num_attention_heads' = {heads} is not a multiple of 'num_key_value_heads' = {kv_heads}",
            path.display()
        )));
    }
    let head_dim = if j.get("head_dim").is_some_and(|v| !v.is_null()) {
        uint(&j, path, "head_dim")?
    } else {
        if hidden % heads != 0 {
            return Err(Error::input(format!(
                "{}: field 'hidden_size' = {hidden} is not divisible by 'num_attention_heads' = {heads} (and no 'head_dim')",
                path.display()
            )));
        }
        hidden / heads
    };
    // Shared experts (Qwen2-MoE) are a second FFN per layer this model does not list.
    if j.get("shared_expert_intermediate_size").and_then(Json::as_u64).is_some_and(|n| n > 0) {
        return Err(Error::input(format!("{}: shared experts ('shared_expert_intermediate_size') are not modelled", path.display())));
    }
    // Multi-head latent attention and DeepSeek's routed experts are other GEMMs than
    // these: refused rather than derived as a dense model.
    for key in ["kv_lora_rank", "q_lora_rank", "n_routed_experts", "n_shared_experts"] {
        if j.get(key).is_some_and(|v| !v.is_null()) {
            return Err(Error::input(format!("{}: '{key}' (DeepSeek-style attention or experts) is not modelled", path.display())));
        }
    }
    let present = |k: &str| j.get(k).is_some_and(|v| !v.is_null());
    let moe = match ["num_local_experts", "num_experts"].into_iter().find(|k| present(k)) {
        Some(key) => Some((uint(&j, path, key)?, uint(&j, path, "num_experts_per_tok")?)),
        None => None,
    };
    let name = j
        .get("_name_or_path")
        .and_then(Json::as_str)
        .map(str::to_string)
        .or_else(|| path.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    Ok(ModelConfig {
        name,
        hidden,
        // An MoE config may size its experts apart from any dense FFN.
        intermediate: if moe.is_some() && j.get("moe_intermediate_size").is_some_and(|v| !v.is_null()) {
            uint(&j, path, "moe_intermediate_size")?
        } else {
            uint(&j, path, "intermediate_size")?
        },
        heads,
        kv_heads,
        head_dim,
        layers: uint(&j, path, "num_hidden_layers")?,
        vocab: uint(&j, path, "vocab_size")?,
        tied_embeddings: j.get("tie_word_embeddings").and_then(Json::as_bool).unwrap_or(false),
        moe,
        fused_qkv: None,
        fused_gate_up: None,
    })
}

/// Whether a safetensors checkpoint stores q/k/v and gate/up fused, from tensor names.
fn safetensors_layout(dir: &Path) -> Result<(Option<bool>, Option<bool>)> {
    let mut names = Vec::new();
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, "list model folder", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    for f in files {
        names.extend(safetensors_names(&f)?);
    }
    let has = |s: &str| names.iter().any(|n| n.contains(s));
    let qkv = if has("qkv_proj") || has("query_key_value") {
        Some(true)
    } else if has("q_proj") {
        Some(false)
    } else {
        None
    };
    let gate_up = if has("gate_up_proj") {
        Some(true)
    } else if has("gate_proj") || has(".w1.") {
        Some(false)
    } else {
        None
    };
    Ok((qkv, gate_up))
}

/// Tensor names from a safetensors header (8-byte length + JSON), bounded by file size.
pub fn safetensors_names(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, "open safetensors file", e))?;
    let len = f.metadata().map_err(|e| Error::io(path, "stat safetensors file", e))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| Error::input(format!("{}: truncated safetensors header", path.display())))?;
    let n = u64::from_le_bytes(n);
    if n > len.saturating_sub(8) || n > 100 << 20 {
        return Err(Error::input(format!("{}: header length {n} exceeds the file", path.display())));
    }
    let mut h = vec![0u8; n as usize];
    f.read_exact(&mut h).map_err(|_| Error::input(format!("{}: truncated safetensors header", path.display())))?;
    let j: Json = serde_json::from_slice(&h)
        .map_err(|e| Error::input(format!("{}: safetensors header is not JSON: {e}", path.display())))?;
    Ok(j.as_object().map(|o| o.keys().filter(|k| *k != "__metadata__").cloned().collect()).unwrap_or_default())
}

/// A GGUF file's architecture metadata (`<arch>.embedding_length`, ...).
pub fn from_gguf(g: &Gguf) -> Result<ModelConfig> {
    let arch = g
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::input(format!("{}: metadata field 'general.architecture' is missing", g.path.display())))?
        .to_string();
    let key = |k: &str| format!("{arch}.{k}");
    let usz = |k: &str| -> Result<usize> { g.u64(&key(k)).map(|v| v as usize) };
    let hidden = usz("embedding_length")?;
    let heads = usz("attention.head_count")?;
    // Absent means multi-head attention; present but not one number (per-layer arrays)
    // is a model this runtime does not describe.
    let kv_heads = match g.get(&key("attention.head_count_kv")) {
        None => heads,
        Some(_) => usz("attention.head_count_kv").map_err(|_| {
            Error::input(format!("{}: '{arch}.attention.head_count_kv' is not one number (per-layer KV heads are not modelled)", g.path.display()))
        })?,
    };
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::input(format!(
            "{}: '{arch}.attention.head_count' = {heads} is not a positive multiple of 'attention.head_count_kv' = {kv_heads}",
            g.path.display()
        )));
    }
    let head_dim = match usz("attention.key_length") {
        Ok(d) => d,
        Err(_) if hidden % heads == 0 => hidden / heads,
        Err(_) => {
            return Err(Error::input(format!(
                "{}: '{arch}.embedding_length' = {hidden} is not divisible by the {heads} heads (and no 'attention.key_length')",
                g.path.display()
            )))
        }
    };
    let vocab = match usz("vocab_size") {
        Ok(v) => v,
        Err(_) => g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).map(|a| a.len()).ok_or_else(|| {
            Error::input(format!(
                "{}: neither '{arch}.vocab_size' nor 'tokenizer.ggml.tokens' gives the vocabulary",
                g.path.display()
            ))
        })?,
    };
    let moe = match (usz("expert_count"), usz("expert_used_count")) {
        (Ok(e), Ok(k)) if e > 0 => Some((e, k)),
        _ => None,
    };
    let has = |suffix: &str| g.tensors.iter().any(|t| t.name.ends_with(suffix));
    Ok(ModelConfig {
        name: g.get("general.name").and_then(|v| v.as_str()).unwrap_or(&arch).to_string(),
        hidden,
        intermediate: usz("expert_feed_forward_length").or_else(|_| usz("feed_forward_length"))?,
        heads,
        kv_heads,
        head_dim,
        layers: usz("block_count")?,
        vocab,
        tied_embeddings: g.tensor("output.weight").is_none(),
        moe,
        fused_qkv: Some(has("attn_qkv.weight")),
        fused_gate_up: if moe.is_some() { Some(false) } else { Some(has("ffn_gate_up.weight")) },
    })
}

// ---------------------------------------------------------------- derivation

struct Layer {
    name: &'static str,
    n: usize,
    k: usize,
    /// Calls per forward step (before MoE expansion).
    calls: f64,
    expert: bool,
}

fn split(what: &str, value: usize, tp: usize) -> Result<usize> {
    if !value.is_multiple_of(tp) {
        return Err(Error::input(format!("{what} = {value} is not divisible by --tp {tp}")));
    }
    Ok(value / tp)
}

/// The part of the model one of `tp` tensor-parallel ranks holds: heads, KV heads (KV
/// heads fewer than ranks are replicated, one per rank), intermediate size and vocabulary
/// (vocab-parallel head) split; hidden size and layers whole.
pub fn rank_shard(c: &ModelConfig, tp: usize) -> Result<ModelConfig> {
    let tp = tp.max(1);
    let heads = split("num_attention_heads", c.heads, tp)?;
    let kv = if c.kv_heads.is_multiple_of(tp) {
        c.kv_heads / tp
    } else if tp.is_multiple_of(c.kv_heads) {
        1
    } else {
        return Err(Error::input(format!(
            "num_key_value_heads = {} neither divides nor is divided by --tp {tp}",
            c.kv_heads
        )));
    };
    let intermediate = split("intermediate_size", c.intermediate, tp)?;
    Ok(ModelConfig { heads, kv_heads: kv, intermediate, vocab: c.vocab.div_ceil(tp), ..c.clone() })
}

fn layers(c: &ModelConfig, o: &Options) -> Result<Vec<Layer>> {
    let r = rank_shard(c, o.tp)?;
    let (heads, kv, inter) = (r.heads, r.kv_heads, r.intermediate);
    let l = c.layers as f64;
    let d = c.head_dim;
    let fused = |f: Option<bool>| match o.fuse {
        Fuse::Fused => true,
        Fuse::Separate => false,
        Fuse::Auto => f.unwrap_or(true),
    };
    let mut v = Vec::new();
    if fused(c.fused_qkv) {
        v.push(Layer { name: "qkv_proj", n: (heads + 2 * kv) * d, k: c.hidden, calls: l, expert: false });
    } else {
        v.push(Layer { name: "q_proj", n: heads * d, k: c.hidden, calls: l, expert: false });
        v.push(Layer { name: "k_proj", n: kv * d, k: c.hidden, calls: l, expert: false });
        v.push(Layer { name: "v_proj", n: kv * d, k: c.hidden, calls: l, expert: false });
    }
    v.push(Layer { name: "o_proj", n: c.hidden, k: heads * d, calls: l, expert: false });
    let moe = c.moe.is_some();
    if let Some((e, _)) = c.moe {
        v.push(Layer { name: "router", n: e, k: c.hidden, calls: l, expert: false });
    }
    if fused(c.fused_gate_up) && !moe || moe && o.fuse != Fuse::Separate {
        v.push(Layer { name: if moe { "experts_w13" } else { "gate_up_proj" }, n: 2 * inter, k: c.hidden, calls: l, expert: moe });
    } else {
        v.push(Layer { name: if moe { "experts_w1" } else { "gate_proj" }, n: inter, k: c.hidden, calls: l, expert: moe });
        v.push(Layer { name: if moe { "experts_w3" } else { "up_proj" }, n: inter, k: c.hidden, calls: l, expert: moe });
    }
    v.push(Layer { name: if moe { "experts_w2" } else { "down_proj" }, n: c.hidden, k: inter, calls: l, expert: moe });
    v.push(Layer { name: "lm_head", n: r.vocab, k: c.hidden, calls: 1.0, expert: false });
    Ok(v)
}

/// Expected active experts and tokens per active expert for `tokens` routed top-k of e.
pub fn expert_load(tokens: usize, e: usize, k: usize) -> (f64, usize) {
    let p_idle = (1.0 - k as f64 / e as f64).powi(tokens as i32);
    let active = (e as f64 * (1.0 - p_idle)).max(1.0);
    // The nearest whole M: rounding up turned 32.000000000000004 (float error) into 33
    // and an expected 4.04 tokens into a GEMM of 5.
    let per = ((tokens * k) as f64 / active).round() as usize;
    (active, per.max(1))
}

/// Derives the shape file for `c` under `o`.
pub fn derive(c: &ModelConfig, o: &Options) -> Result<ShapeFile> {
    if o.tp == 0 {
        return Err(Error::input("--tp must be at least 1"));
    }
    let ls = layers(c, o)?;
    let mut f = ShapeFile::default();
    let mut scenarios: Vec<(Phase, usize)> = Vec::new();
    if o.phase != Some(Phase::Decode) {
        scenarios.extend(o.prompt_lens.iter().map(|&m| (Phase::Prefill, m)));
    }
    if o.phase != Some(Phase::Prefill) {
        scenarios.extend(o.batches.iter().map(|&m| (Phase::Decode, m)));
    }
    for (phase, tokens) in scenarios {
        for l in &ls {
            // Prefill computes logits for the last token of the sequence only.
            let m = if l.name == "lm_head" && phase == Phase::Prefill { 1 } else { tokens };
            let (m, calls) = match (l.expert, c.moe) {
                (true, Some((e, k))) => {
                    let (active, per) = expert_load(m, e, k);
                    (per, l.calls * active)
                }
                _ => (m, l.calls),
            };
            let p = Problem::linear(o.dtype, m, l.n, l.k).map_err(|e| Error::input(format!("{}: {e}", l.name)))?;
            let t = (p.flops() / o.device.peak).max(p.min_bytes() / o.device.bandwidth);
            let steps = if phase == Phase::Decode { o.gen_len as f64 } else { 1.0 };
            f.add(ShapeEntry {
                problem: p,
                phase,
                model: c.name.clone(),
                layer: l.name.to_string(),
                calls,
                weight: calls * t * 1e6 * steps,
            });
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama(hidden: usize, inter: usize, heads: usize, kv: usize, layers_: usize) -> ModelConfig {
        ModelConfig {
            name: "llama".into(),
            hidden,
            intermediate: inter,
            heads,
            kv_heads: kv,
            head_dim: hidden / heads,
            layers: layers_,
            vocab: 128256,
            tied_embeddings: false,
            moe: None,
            fused_qkv: None,
            fused_gate_up: None,
        }
    }

    fn opts(tp: usize) -> Options {
        Options {
            tp,
            batches: vec![1, 8],
            prompt_lens: vec![512],
            phase: None,
            dtype: DType::BF16,
            device: device("h100").unwrap(),
            gen_len: 256,
            fuse: Fuse::Auto,
        }
    }

    fn nk(f: &ShapeFile, layer: &str) -> (usize, usize) {
        let e = f.entries.iter().find(|e| e.layer.split('+').any(|l| l == layer)).unwrap_or_else(|| panic!("{layer}"));
        (e.problem.n, e.problem.k)
    }

    #[test]
    fn llama_8b_and_70b_tp8_by_hand() {
        let f = derive(&llama(4096, 14336, 32, 8, 32), &opts(1)).unwrap();
        assert_eq!(nk(&f, "qkv_proj"), ((32 + 2 * 8) * 128, 4096));
        assert_eq!(nk(&f, "o_proj"), (4096, 4096));
        assert_eq!(nk(&f, "gate_up_proj"), (28672, 4096));
        assert_eq!(nk(&f, "down_proj"), (4096, 14336));
        assert_eq!(nk(&f, "lm_head"), (128256, 4096));
        let f = derive(&llama(8192, 28672, 64, 8, 80), &opts(8)).unwrap();
        assert_eq!(nk(&f, "qkv_proj"), (1280, 8192));
        assert_eq!(nk(&f, "o_proj"), (8192, 1024));
        assert_eq!(nk(&f, "gate_up_proj"), (7168, 8192));
        assert_eq!(nk(&f, "down_proj"), (8192, 3584));
        assert_eq!(nk(&f, "lm_head"), (16032, 8192));
        // Prefill logits for the last token only; decode M = batch.
        let lm: Vec<(usize, Phase)> =
            f.entries.iter().filter(|e| e.layer.contains("lm_head")).map(|e| (e.problem.m, e.phase)).collect();
        assert!(lm.contains(&(1, Phase::Other)), "M=1 serves prefill and decode: {lm:?}");
        assert!(lm.contains(&(8, Phase::Decode)));
        let qkv_decode = f.entries.iter().find(|e| e.layer == "qkv_proj" && e.problem.m == 8).unwrap();
        assert_eq!(qkv_decode.calls, 80.0);
        assert!(qkv_decode.weight > 0.0);
    }

    #[test]
    fn tp_errors_and_kv_replication() {
        let e = derive(&llama(576, 1536, 9, 3, 30), &opts(2)).unwrap_err().to_string();
        assert!(e.contains("num_attention_heads = 9") && e.contains("--tp 2"), "{e}");
        // 405B at TP16 would leave 8 KV heads for 16 ranks: each rank gets one replica.
        let f = derive(&llama(16384, 53248, 128, 8, 126), &opts(16)).unwrap();
        assert_eq!(nk(&f, "qkv_proj"), ((8 + 2) * 128, 16384));
        let mut c = llama(4096, 14336, 32, 6, 32);
        c.head_dim = 128;
        assert!(derive(&c, &opts(4)).unwrap_err().to_string().contains("num_key_value_heads = 6"));
        // Heads that do not group over the KV heads, and a size beyond the supported one.
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.json");
        let write = |extra: &str| {
            std::fs::write(&cfg, format!("{{\"hidden_size\": 576, \"intermediate_size\": 1536, \"num_hidden_layers\": 2, \"vocab_size\": 100, {extra}}}")).unwrap();
            from_hf(&cfg).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(write("\"num_attention_heads\": 9, \"num_key_value_heads\": 4").contains("not a multiple of 'num_key_value_heads' = 4"));
        assert!(write("\"num_attention_heads\": 9, \"num_key_value_heads\": 3").is_empty());
        assert!(write("\"num_attention_heads\": 9, \"hidden_size\": 1099511627776").contains("is larger than"));
        // DeepSeek-style configs are refused, not derived as dense models; a null
        // num_local_experts leaves num_experts to say it is MoE.
        assert!(write("\"num_attention_heads\": 9, \"kv_lora_rank\": 512").contains("'kv_lora_rank'"));
        write("\"num_attention_heads\": 9, \"num_local_experts\": null, \"num_experts\": 8, \"num_experts_per_tok\": 2");
        assert_eq!(from_hf(&cfg).unwrap().moe, Some((8, 2)));
    }

    #[test]
    fn separate_projections_merge_equal_shapes() {
        let mut c = llama(576, 1536, 9, 3, 30);
        c.fused_qkv = Some(false);
        c.fused_gate_up = Some(false);
        c.vocab = 49152;
        let f = derive(&c, &Options { dtype: DType::F32, ..opts(1) }).unwrap();
        let kv = f.entries.iter().find(|e| e.layer == "k_proj+v_proj" && e.problem.m == 1).unwrap();
        assert_eq!((kv.problem.n, kv.problem.k, kv.calls), (192, 576, 60.0));
        let qo = f.entries.iter().find(|e| e.layer == "q_proj+o_proj" && e.problem.m == 1).unwrap();
        assert_eq!((qo.problem.n, qo.calls), (576, 60.0));
        let gu = f.entries.iter().find(|e| e.layer == "gate_proj+up_proj" && e.problem.m == 8).unwrap();
        assert_eq!((gu.problem.n, gu.calls), (1536, 60.0));
    }

    #[test]
    fn mixtral_expert_counts() {
        let mut c = llama(4096, 14336, 32, 8, 32);
        c.moe = Some((8, 2));
        c.vocab = 32000;
        let f = derive(&c, &opts(2)).unwrap();
        // Decode M = 1: two experts active, one token each.
        let w13 = f.entries.iter().find(|e| e.layer == "experts_w13" && e.phase == Phase::Decode && e.problem.m == 1).unwrap();
        assert_eq!((w13.problem.n, w13.problem.k), (14336, 4096));
        assert!((w13.calls - 64.0).abs() < 1e-9, "{}", w13.calls);
        let router = f.entries.iter().find(|e| e.layer == "router").unwrap();
        assert_eq!((router.problem.n, router.problem.k), (8, 4096));
        // Prefill of 512 tokens: all 8 experts active, 128 tokens each.
        let (active, per) = expert_load(512, 8, 2);
        assert!((active - 8.0).abs() < 1e-6 && per == 128);
        // The nearest whole M, not one up from float error or a small excess: 128 tokens
        // on 8 experts are 32 a GEMM (was 33), 16 tokens 4 (was 5), one token top-4 of
        // 60 experts 1 (was 2).
        assert_eq!([expert_load(128, 8, 2).1, expert_load(16, 8, 2).1, expert_load(1, 60, 4).1], [32, 4, 1]);
        assert_eq!(nk(&f, "experts_w2"), (4096, 7168));
    }

    #[test]
    fn buckets_cover_every_batch() {
        assert_eq!(decode_buckets(256), vec![1, 2, 4, 8, 16, 32, 64, 128, 256]);
        assert_eq!(decode_buckets(48), vec![1, 2, 4, 8, 16, 32, 48]);
        assert_eq!(decode_buckets(1), vec![1]);
    }
}
