//! Hugging Face checkpoints: `config.json` + `*.safetensors` (F32, F16, BF16), through the
//! `safetensors` crate. HF stores q/k for `rotate_half` RoPE (pairs (i, i + d/2)); the
//! runtime pairs adjacent elements as GGUF files do, so q/k rows are permuted at load
//! exactly as llama.cpp's converter does (per head: [2, d/2] → [d/2, 2]).

use super::llama::{Config, Layer, Llama};
use crate::backend::cpu::HostTensor;
use crate::error::{Error, Result};
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

pub fn load(dir: &Path) -> Result<Llama> {
    let cfg_path = dir.join("config.json");
    let mc = crate::profile::from_hf(&cfg_path)?;
    if mc.moe.is_some() {
        return Err(Error::input(format!("{}: mixture-of-experts models are not supported by the runtime", cfg_path.display())));
    }
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, "read", e))?)
        .map_err(|e| Error::input(format!("{}: {e}", cfg_path.display())))?;
    let f = |k: &str, d: f64| j.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
    let cfg = Config::from_model(&mc, f("rms_norm_eps", 1e-5), f("rope_theta", 10000.0), f("max_position_embeddings", 4096.0));
    // All tensors of all shards, by name.
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list", e))? {
        let p = e.map_err(|e| Error::io(dir, "list", e))?.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            files.push((p.clone(), std::fs::read(&p).map_err(|e| Error::io(&p, "read", e))?));
        }
    }
    if files.is_empty() {
        return Err(Error::input(format!("{}: no *.safetensors files", dir.display())));
    }
    let mut tensors: HashMap<String, Vec<f32>> = HashMap::new();
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    for (p, bytes) in &files {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::input(format!("{}: {e}", p.display())))?;
        for (name, view) in st.tensors() {
            let data = view.data();
            let v: Vec<f32> = match view.dtype() {
                Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                Dtype::F16 => data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                Dtype::BF16 => data.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
                other => return Err(Error::input(format!("{}: tensor '{name}' has unsupported dtype {other:?}", p.display()))),
            };
            shapes.insert(name.clone(), view.shape().to_vec());
            tensors.insert(name, v);
        }
    }
    let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let got = shapes.get(name).ok_or_else(|| Error::input(format!("{}: tensor '{name}' is missing", dir.display())))?;
        if got != shape {
            return Err(Error::input(format!("{}: tensor '{name}' has shape {got:?}, expected {shape:?}", dir.display())));
        }
        Ok(tensors.remove(name).expect("present"))
    };
    let (h, d) = (cfg.hidden, cfg.head_dim);
    let mut layers = Vec::with_capacity(cfg.layers);
    for i in 0..cfg.layers {
        let n = |s: &str| format!("model.layers.{i}.{s}.weight");
        let w = |v: Vec<f32>| HostTensor::F32(v);
        layers.push(Layer {
            attn_norm: take(&n("input_layernorm"), &[h])?,
            wq: w(interleave_rope_rows(take(&n("self_attn.q_proj"), &[cfg.heads * d, h])?, cfg.heads, d, h)),
            wk: w(interleave_rope_rows(take(&n("self_attn.k_proj"), &[cfg.kv_heads * d, h])?, cfg.kv_heads, d, h)),
            wv: w(take(&n("self_attn.v_proj"), &[cfg.kv_heads * d, h])?),
            wo: w(take(&n("self_attn.o_proj"), &[h, cfg.heads * d])?),
            ffn_norm: take(&n("post_attention_layernorm"), &[h])?,
            wg: w(take(&n("mlp.gate_proj"), &[cfg.intermediate, h])?),
            wu: w(take(&n("mlp.up_proj"), &[cfg.intermediate, h])?),
            wd: w(take(&n("mlp.down_proj"), &[h, cfg.intermediate])?),
        });
    }
    let embed = take("model.embed_tokens.weight", &[cfg.vocab, h])?;
    let out_norm = take("model.norm.weight", &[h])?;
    let head = if mc.tied_embeddings { None } else { Some(take("lm_head.weight", &[cfg.vocab, h])?) };
    Ok(Llama::from_parts(cfg, embed, head, out_norm, layers))
}

/// Reorders the rows of each head from rotate-half order (i, i + d/2) to adjacent pairs
/// (2i, 2i + 1): row r = half·(d/2) + i moves to 2i + half.
pub fn interleave_rope_rows(w: Vec<f32>, heads: usize, d: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for hh in 0..heads {
        for half in 0..2 {
            for i in 0..d / 2 {
                let src = (hh * d + half * (d / 2) + i) * cols;
                let dst = (hh * d + 2 * i + half) * cols;
                out[dst..dst + cols].copy_from_slice(&w[src..src + cols]);
            }
        }
    }
    out
}
