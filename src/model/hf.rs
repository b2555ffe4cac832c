//! Hugging Face checkpoints: `config.json` + `*.safetensors` (F32, F16, BF16), through the
//! `safetensors` crate. HF stores q/k for `rotate_half` RoPE (pairs (i, i + d/2)); the
//! runtime pairs adjacent elements as GGUF files do, so q/k rows are permuted at load
//! exactly as llama.cpp's converter does (per head: [2, d/2] → [d/2, 2]).
//!
//! GPTQ checkpoints (AutoGPTQ / GPTQModel: `quantization_config.quant_method = "gptq"`,
//! 4 bits, groups of 128, no act-order) load their linear layers from `qweight` (int32
//! `[K/8, N]`, 8 values of one column along K per word, the first in the low nibble),
//! `qzeros` (int32 `[K/128, N/8]`, packed along N) and `scales` (f16 `[K/128, N]`) into the
//! `g128` format (quant.rs): value `s·(q − z)`, where the original format stores `z − 1`
//! (`checkpoint_format` "gptq", the default) and `gptq_v2` stores `z`. With `--weights
//! native` they stay packed, else they are dequantized to f32.

use super::llama::{Config, Layer, Llama};
use super::weights::WeightMode;
use crate::backend::cpu::HostTensor;
use crate::error::{Error, Result};
use crate::problem::WeightFormat;
use crate::quant::QuantTensor;
use half::{bf16, f16};
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// What a GPTQ checkpoint's `quantization_config` says, once checked to be the g128 format.
struct Gptq {
    /// Added to the stored zero points: 1 for the original format (it stores z − 1).
    zero_offset: u32,
}

fn gptq_config(j: &serde_json::Value, cfg_path: &Path) -> Result<Option<Gptq>> {
    let Some(q) = j.get("quantization_config") else { return Ok(None) };
    let bad = |what: String| Error::input(format!("{}: quantization_config: {what}", cfg_path.display()));
    let method = q.get("quant_method").and_then(|v| v.as_str()).unwrap_or("");
    if method != "gptq" {
        return Err(bad(format!("quant_method '{method}' is not supported (GPTQ 4-bit, group 128, is)")));
    }
    let int = |k: &str| q.get(k).and_then(|v| v.as_i64());
    if int("bits") != Some(4) {
        return Err(bad(format!("bits {:?}: only 4-bit GPTQ is supported", q.get("bits"))));
    }
    if int("group_size") != Some(128) {
        return Err(bad(format!("group_size {:?}: only groups of 128 are supported", q.get("group_size"))));
    }
    if q.get("desc_act").and_then(|v| v.as_bool()).unwrap_or(false) {
        return Err(bad("desc_act (act-order) checkpoints are not supported".into()));
    }
    let zero_offset = match q.get("checkpoint_format").and_then(|v| v.as_str()).unwrap_or("gptq") {
        "gptq" => 1,
        "gptq_v2" => 0,
        other => return Err(bad(format!("checkpoint_format '{other}' is not supported (gptq, gptq_v2)"))),
    };
    Ok(Some(Gptq { zero_offset }))
}

/// One GPTQ linear layer (`n` outputs, `k` inputs) as g128 rows (see the module docs).
fn gptq_to_g128(qweight: &[i32], qzeros: &[i32], scales: &[f32], n: usize, k: usize, zero_offset: u32) -> QuantTensor {
    let groups = k / 128;
    let mut t = QuantTensor::zeros(WeightFormat::G128, n, k);
    let rb = t.row_bytes();
    t.data.par_chunks_mut(rb).enumerate().for_each(|(r, row)| {
        let q = |kk: usize| ((qweight[(kk / 8) * n + r] as u32) >> (4 * (kk % 8))) & 15;
        for (i, byte) in row[..k / 2].iter_mut().enumerate() {
            *byte = (q(2 * i) | (q(2 * i + 1) << 4)) as u8;
        }
        for g in 0..groups {
            let z = (((qzeros[g * (n / 8) + r / 8] as u32) >> (4 * (r % 8))) & 15) + zero_offset;
            let p = k / 2 + 4 * g;
            row[p..p + 2].copy_from_slice(&f16::from_f32(scales[g * n + r]).to_le_bytes());
            row[p + 2..p + 4].copy_from_slice(&f16::from_f32(z as f32).to_le_bytes());
        }
    });
    t
}

pub fn load(dir: &Path, mode: WeightMode) -> Result<Llama> {
    let cfg_path = dir.join("config.json");
    let mc = crate::profile::from_hf(&cfg_path)?;
    if mc.moe.is_some() {
        return Err(Error::input(format!("{}: mixture-of-experts models are not supported by the runtime", cfg_path.display())));
    }
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, "read", e))?)
        .map_err(|e| Error::input(format!("{}: {e}", cfg_path.display())))?;
    // What this forward pass computes: Llama/Mistral blocks without biases, RoPE on whole
    // heads at one frequency base. Anything else would run and give wrong text.
    let unsupported = |what: String| Error::input(format!("{}: {what} is not supported by the runtime", cfg_path.display()));
    let arch = j.get("architectures").and_then(|a| a.get(0)).and_then(|v| v.as_str());
    match (j.get("model_type").and_then(|v| v.as_str()), arch) {
        (Some("llama" | "mistral"), _) | (None, Some("LlamaForCausalLM" | "MistralForCausalLM")) => {}
        (kind, arch) => return Err(unsupported(format!("model_type {kind:?} / architecture {arch:?} (llama, mistral are)"))),
    }
    if let Some(r) = j.get("rope_scaling").filter(|r| !r.is_null()) {
        let kind = r.get("rope_type").or_else(|| r.get("type")).and_then(|v| v.as_str()).unwrap_or("?");
        if kind != "default" {
            return Err(unsupported(format!("RoPE scaling '{kind}'")));
        }
    }
    for key in ["attention_bias", "mlp_bias"] {
        if j.get(key).and_then(|v| v.as_bool()) == Some(true) {
            return Err(unsupported(format!("'{key}': true")));
        }
    }
    if j.get("partial_rotary_factor").and_then(|v| v.as_f64()).is_some_and(|x| x != 1.0) {
        return Err(unsupported("a partial rotary factor".into()));
    }
    let f = |k: &str, d: f64| j.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
    let cfg = Config::from_model(&mc, f("rms_norm_eps", 1e-5), f("rope_theta", 10000.0), f("max_position_embeddings", 4096.0));
    let gptq = gptq_config(&j, &cfg_path)?;
    // All tensors of all shards, by name: the shards the index names when there is one
    // (a folder may also hold a leftover single-file checkpoint), else every file.
    let index = dir.join("model.safetensors.index.json");
    let mut paths: Vec<std::path::PathBuf> = if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, "read", e))?;
        let j: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::input(format!("{}: {e}", index.display())))?;
        let map = j.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::input(format!("{}: no 'weight_map'", index.display())))?;
        let names: std::collections::BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else {
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list", e))? {
            let p = e.map_err(|e| Error::io(dir, "list", e))?.path();
            if p.extension().is_some_and(|x| x == "safetensors") {
                v.push(p);
            }
        }
        v
    };
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, "read", e))?;
        files.push((p, bytes));
    }
    if files.is_empty() {
        return Err(Error::input(format!("{}: no *.safetensors files", dir.display())));
    }
    // Which file each tensor came from: a name in two files is an error, not a coin toss.
    let mut origin: HashMap<String, &std::path::Path> = HashMap::new();
    let mut tensors: HashMap<String, Vec<f32>> = HashMap::new();
    let mut ints: HashMap<String, Vec<i32>> = HashMap::new();
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    for (p, bytes) in &files {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::input(format!("{}: {e}", p.display())))?;
        for (name, view) in st.tensors() {
            if let Some(first) = origin.insert(name.clone(), p) {
                return Err(Error::input(format!("tensor '{name}' is in both {} and {}", first.display(), p.display())));
            }
            let data = view.data();
            let v: Vec<f32> = match view.dtype() {
                Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                Dtype::F16 => data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                Dtype::BF16 => data.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                // GPTQ's packed weights, zero points and group indices.
                Dtype::I32 => {
                    ints.insert(name.clone(), data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect());
                    shapes.insert(name, view.shape().to_vec());
                    continue;
                }
                other => return Err(Error::input(format!("{}: tensor '{name}' has unsupported dtype {other:?}", p.display()))),
            };
            shapes.insert(name.clone(), view.shape().to_vec());
            tensors.insert(name, v);
        }
    }
    let mut st = Store { dir, tensors, ints, shapes, gptq, mode, head_dim: cfg.head_dim };
    let (h, d) = (cfg.hidden, cfg.head_dim);
    let mut layers = Vec::new(); // grown as layers load (a corrupt count fails on a missing tensor)
    for i in 0..cfg.layers {
        let n = |s: &str| format!("model.layers.{i}.{s}");
        let w = |s: &str| format!("model.layers.{i}.{s}.weight");
        layers.push(Layer {
            attn_norm: st.take(&w("input_layernorm"), &[h])?,
            wq: st.linear(&n("self_attn.q_proj"), cfg.heads * d, h, Some(cfg.heads))?,
            wk: st.linear(&n("self_attn.k_proj"), cfg.kv_heads * d, h, Some(cfg.kv_heads))?,
            wv: st.linear(&n("self_attn.v_proj"), cfg.kv_heads * d, h, None)?,
            wo: st.linear(&n("self_attn.o_proj"), h, cfg.heads * d, None)?,
            ffn_norm: st.take(&w("post_attention_layernorm"), &[h])?,
            wg: st.linear(&n("mlp.gate_proj"), cfg.intermediate, h, None)?,
            wu: st.linear(&n("mlp.up_proj"), cfg.intermediate, h, None)?,
            wd: st.linear(&n("mlp.down_proj"), h, cfg.intermediate, None)?,
        });
    }
    let embed = st.take("model.embed_tokens.weight", &[cfg.vocab, h])?;
    let out_norm = st.take("model.norm.weight", &[h])?;
    let head = if mc.tied_embeddings { None } else { Some(st.take("lm_head.weight", &[cfg.vocab, h])?) };
    Ok(Llama::from_parts(cfg, embed, head, out_norm, layers))
}

/// The tensors of a checkpoint by name, handed out once each with their shapes checked.
struct Store<'a> {
    dir: &'a Path,
    tensors: HashMap<String, Vec<f32>>,
    ints: HashMap<String, Vec<i32>>,
    shapes: HashMap<String, Vec<usize>>,
    gptq: Option<Gptq>,
    mode: WeightMode,
    head_dim: usize,
}

impl Store<'_> {
    fn check(&self, name: &str, shape: &[usize]) -> Result<()> {
        let got = self.shapes.get(name).ok_or_else(|| Error::input(format!("{}: tensor '{name}' is missing", self.dir.display())))?;
        if got != shape {
            return Err(Error::input(format!("{}: tensor '{name}' has shape {got:?}, expected {shape:?}", self.dir.display())));
        }
        Ok(())
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.check(name, shape)?;
        self.tensors.remove(name).ok_or_else(|| Error::input(format!("{}: tensor '{name}' is not a float tensor", self.dir.display())))
    }

    fn take_ints(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i32>> {
        self.check(name, shape)?;
        self.ints.remove(name).ok_or_else(|| Error::input(format!("{}: tensor '{name}' is not int32", self.dir.display())))
    }

    /// A linear layer `<prefix>.weight` `[n, k]`, or GPTQ's `<prefix>.qweight` and its
    /// companions; with `rope_heads`, q/k rows reordered for the runtime's RoPE pairs.
    fn linear(&mut self, prefix: &str, n: usize, k: usize, rope_heads: Option<usize>) -> Result<HostTensor> {
        let order: Vec<usize> = rope_heads.map_or_else(|| (0..n).collect(), |heads| rope_row_order(heads, self.head_dim));
        let name = |s: &str| format!("{prefix}.{s}");
        let Some(zero_offset) = self.gptq.as_ref().filter(|_| self.shapes.contains_key(&name("qweight"))).map(|g| g.zero_offset) else {
            let w = self.take(&name("weight"), &[n, k])?;
            return Ok(HostTensor::F32(order.iter().flat_map(|&r| w[r * k..(r + 1) * k].iter().copied()).collect()));
        };
        if !n.is_multiple_of(8) || !k.is_multiple_of(128) {
            return Err(Error::input(format!("{}: GPTQ layer '{prefix}' is {n} x {k}: needs N % 8 == 0 and K % 128 == 0", self.dir.display())));
        }
        if let Some(gi) = self.ints.get(&name("g_idx")) {
            if gi.len() != k || gi.iter().enumerate().any(|(i, &v)| v as usize != i / 128) {
                return Err(Error::input(format!(
                    "{}: '{}' is not in order (act-order checkpoints are not supported)",
                    self.dir.display(),
                    name("g_idx")
                )));
            }
        }
        let qw = self.take_ints(&name("qweight"), &[k / 8, n])?;
        let qz = self.take_ints(&name("qzeros"), &[k / 128, n / 8])?;
        let sc = self.take(&name("scales"), &[k / 128, n])?;
        let t = gptq_to_g128(&qw, &qz, &sc, n, k, zero_offset);
        let rb = t.row_bytes();
        let data = order.iter().flat_map(|&r| t.data[r * rb..(r + 1) * rb].iter().copied()).collect();
        let t = QuantTensor::new(WeightFormat::G128, n, k, data).map_err(Error::input)?;
        Ok(match self.mode {
            WeightMode::Native => HostTensor::Quant(t),
            WeightMode::F32 => HostTensor::F32(t.dequantize()),
        })
    }
}

/// The source row of each row when the rows of each head go from rotate-half order
/// (i, i + d/2) to adjacent pairs (2i, 2i + 1): row 2i + half takes row half·(d/2) + i.
pub fn rope_row_order(heads: usize, d: usize) -> Vec<usize> {
    let mut src = vec![0; heads * d];
    for hh in 0..heads {
        for half in 0..2 {
            for i in 0..d / 2 {
                src[hh * d + 2 * i + half] = hh * d + half * (d / 2) + i;
            }
        }
    }
    src
}
