//! The Llama-architecture forward pass (SmolLM2, Llama, Mistral-style dense models) in
//! f32 on the CPU. Every linear layer is one `Dispatcher::gemm` call, so the tuned table
//! decides each kernel.
//!
//! Layout facts (shared/reference/smollm2.md): GGUF stores each weight as `W[N, K]`
//! row-major (out × in), which is exactly the TN linear layout; llama.cpp's converter
//! permutes the rows of `attn_q`/`attn_k` so that RoPE pairs adjacent elements
//! (2i, 2i+1) with frequency θ^(−2i/d), which is what `rope` below does; the output head
//! is tied to `token_embd` when the file has no `output.weight`.
//!
//! A forward call takes any number of sequences, each with any number of new tokens
//! (prefill: one sequence, many tokens; continuous-batching decode: many sequences, one
//! token each). All new tokens go through each GEMM together (M = total new tokens);
//! attention runs per sequence over its own KV cache; logits are computed for the last
//! new token of each sequence only (lm_head M = number of sequences).

use super::weights::{load_f32, load_weight, WeightMode};
use crate::backend::cpu::{CpuBackend, HostTensor};
use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::gguf::Gguf;
use crate::problem::{DType, Problem};
use rayon::prelude::*;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    pub vocab: usize,
    pub eps: f32,
    pub rope_theta: f32,
    pub context: usize,
}

/// One transformer block; projection weights are `W[out, in]` row-major, q/k rows in
/// the interleaved-RoPE order (see the module docs).
impl Config {
    /// The shape facts of `mc` plus the runtime's numeric settings.
    pub fn from_model(mc: &crate::profile::ModelConfig, eps: f64, rope_theta: f64, context: f64) -> Config {
        Config {
            hidden: mc.hidden,
            intermediate: mc.intermediate,
            heads: mc.heads,
            kv_heads: mc.kv_heads,
            head_dim: mc.head_dim,
            layers: mc.layers,
            vocab: mc.vocab,
            eps: eps as f32,
            rope_theta: rope_theta as f32,
            context: context as usize,
        }
    }
}

pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: HostTensor,
    pub wk: HostTensor,
    pub wv: HostTensor,
    pub wo: HostTensor,
    pub ffn_norm: Vec<f32>,
    pub wg: HostTensor,
    pub wu: HostTensor,
    pub wd: HostTensor,
}

pub struct Llama {
    pub cfg: Config,
    /// Token embeddings `[vocab, hidden]`; packed with `--weights native` (rows are
    /// dequantized at lookup).
    pub(crate) embed: HostTensor,
    /// The output head; a copy of the embedding table when tied.
    pub(crate) head: HostTensor,
    /// Whether the head is tied to the embedding (the GPU path then keeps one copy).
    pub(crate) tied: bool,
    pub(crate) out_norm: Vec<f32>,
    pub(crate) layers: Vec<Layer>,
}

/// One sequence's keys and values, per layer, `[position][kv_heads × head_dim]` flat.
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    pub len: usize,
}

impl KvCache {
    pub fn new(cfg: &Config) -> KvCache {
        KvCache { k: vec![Vec::new(); cfg.layers], v: vec![Vec::new(); cfg.layers], len: 0 }
    }
}

impl Llama {
    /// Loads a GGUF file, or a Hugging Face folder (`config.json` + `*.safetensors`).
    pub fn load(path: &Path) -> Result<Llama> {
        Llama::load_with(path, WeightMode::F32)
    }

    /// `load`, keeping packed weights packed when `mode` is native: GGUF Q4_1/Q8_0 and the
    /// 4-bit group-128 weights of GPTQ checkpoints (g128).
    pub fn load_with(path: &Path, mode: WeightMode) -> Result<Llama> {
        if path.is_dir() {
            super::hf::load(path, mode)
        } else {
            Llama::load_gguf(path, mode)
        }
    }

    /// Assembles a model from its parts (used by the loaders).
    pub fn from_parts(cfg: Config, embed: Vec<f32>, head: Option<Vec<f32>>, out_norm: Vec<f32>, layers: Vec<Layer>) -> Llama {
        let tied = head.is_none();
        let head = HostTensor::F32(head.unwrap_or_else(|| embed.clone()));
        Llama { cfg, embed: HostTensor::F32(embed), head, tied, out_norm, layers }
    }

    pub fn load_gguf(path: &Path, mode: WeightMode) -> Result<Llama> {
        let g = Gguf::open(path)?;
        let arch = g.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("").to_string();
        // Qwen2 needs q/k/v biases and rotate-half RoPE, which this forward pass lacks: its
        // output would be silently wrong, so it is refused like any other architecture.
        if !matches!(arch.as_str(), "llama" | "mistral") {
            return Err(Error::input(format!("{}: architecture '{arch}' is not supported (llama, mistral are)", path.display())));
        }
        let unsupported = |what: String| Error::input(format!("{}: {what} is not supported by the runtime", path.display()));
        match g.get(&format!("{arch}.rope.scaling.type")).and_then(|v| v.as_str()) {
            None | Some("none") => {}
            Some(kind) => return Err(unsupported(format!("RoPE scaling '{kind}'"))),
        }
        if g.tensor("rope_freqs.weight").is_some() {
            return Err(unsupported("RoPE frequency factors (rope_freqs.weight, Llama 3.1-style scaling)".into()));
        }
        let mc = crate::profile::from_gguf(&g)?;
        if mc.moe.is_some() {
            return Err(Error::input(format!("{}: mixture-of-experts models are not supported by the runtime", path.display())));
        }
        let f = |k: &str, d: f64| g.get(&format!("{arch}.{k}")).and_then(|v| v.as_f64()).unwrap_or(d);
        if let Some(r) = g.get(&format!("{arch}.rope.dimension_count")).and_then(|v| v.as_u64()) {
            if r as usize != mc.head_dim {
                return Err(unsupported(format!("RoPE on {r} of {} head dimensions", mc.head_dim)));
            }
        }
        let cfg = Config::from_model(
            &mc,
            f("attention.layer_norm_rms_epsilon", 1e-5),
            f("rope.freq_base", 10000.0),
            f("context_length", 4096.0),
        );
        let info = |name: &str, shape: &[usize]| -> Result<&crate::gguf::TensorInfo> {
            let info = g.tensor(name).ok_or_else(|| Error::input(format!("{}: tensor '{name}' is missing", path.display())))?;
            let want: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect(); // GGUF: innermost first
            if info.dims != want {
                return Err(Error::input(format!(
                    "{}: tensor '{name}' has dims {:?}, expected {want:?}",
                    path.display(),
                    info.dims
                )));
            }
            Ok(info)
        };
        let tensor = |name: &str, shape: &[usize]| load_f32(&g, info(name, shape)?);
        let (h, d) = (cfg.hidden, cfg.head_dim);
        let w = |name: &str, n: usize, k: usize| load_weight(&g, info(name, &[n, k])?, n, k, mode);
        // Grown as blocks load: an absurd block count fails on the first missing tensor,
        // not on reserving memory for it.
        let mut layers = Vec::new();
        for i in 0..cfg.layers {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: tensor(&p("attn_norm"), &[h])?,
                wq: w(&p("attn_q"), cfg.heads * d, h)?,
                wk: w(&p("attn_k"), cfg.kv_heads * d, h)?,
                wv: w(&p("attn_v"), cfg.kv_heads * d, h)?,
                wo: w(&p("attn_output"), h, cfg.heads * d)?,
                ffn_norm: tensor(&p("ffn_norm"), &[h])?,
                wg: w(&p("ffn_gate"), cfg.intermediate, h)?,
                wu: w(&p("ffn_up"), cfg.intermediate, h)?,
                wd: w(&p("ffn_down"), h, cfg.intermediate)?,
            });
        }
        let embed = w("token_embd.weight", cfg.vocab, h)?;
        let tied = g.tensor("output.weight").is_none();
        let head = match tied {
            false => w("output.weight", cfg.vocab, h)?,
            true => embed.clone(), // with native weights the tied head runs packed too
        };
        Ok(Llama { out_norm: tensor("output_norm.weight", &[h])?, cfg, embed, head, tied, layers })
    }

    /// Runs the new `tokens` of each sequence (appending to its cache) and returns the
    /// logits of each sequence's last new token.
    pub fn forward(&self, d: &Dispatcher<CpuBackend>, seqs: &mut [(&mut KvCache, &[u32])]) -> Result<Vec<Vec<f32>>> {
        // On a pool worker: the step's ~200 GEMMs fork within the pool instead of each
        // waking it from outside (tens of microseconds apiece at decode).
        d.backend().install(|| self.forward_traced(d, seqs, None))
    }

    /// `forward`, also pushing the hidden state of every row after each layer into `trace`
    /// (for layer-by-layer comparisons with a reference).
    pub fn forward_traced(
        &self,
        d: &Dispatcher<CpuBackend>,
        seqs: &mut [(&mut KvCache, &[u32])],
        mut trace: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<Vec<Vec<f32>>> {
        let c = &self.cfg;
        let (h, hd) = (c.hidden, c.head_dim);
        let m: usize = seqs.iter().map(|(_, t)| t.len()).sum();
        if m == 0 {
            return Ok(Vec::new());
        }
        for (cache, toks) in seqs.iter() {
            if cache.len + toks.len() > c.context {
                return Err(Error::input(format!("sequence of {} tokens exceeds the context of {}", cache.len + toks.len(), c.context)));
            }
            if let Some(&t) = toks.iter().find(|&&t| t as usize >= c.vocab) {
                return Err(Error::input(format!("token id {t} is outside the vocabulary of {}", c.vocab)));
            }
        }
        // Positions and owning sequence of every row.
        let mut rows: Vec<(usize, usize)> = Vec::with_capacity(m);
        for (s, (cache, toks)) in seqs.iter().enumerate() {
            rows.extend((0..toks.len()).map(|i| (s, cache.len + i)));
        }
        let mut x: Vec<f32> = Vec::with_capacity(m * h);
        for (_, toks) in seqs.iter() {
            for &t in toks.iter() {
                x.extend_from_slice(&self.embed.row_f32(t as usize, h));
            }
        }
        let (qn, kvn) = (c.heads * hd, c.kv_heads * hd);
        // The layers append to the caches as they go: a failure midway (a GEMM error)
        // takes those rows back out, so the caches stay as they were for a retry.
        let layers = (|| -> Result<()> {
            for (li, l) in self.layers.iter().enumerate() {
                let xn = rmsnorm(&x, &l.attn_norm, c.eps);
                let [mut q, mut k, v] = linear_group(d, &xn, m, [(&l.wq, qn), (&l.wk, kvn), (&l.wv, kvn)], h)?;
                for (r, &(_, pos)) in rows.iter().enumerate() {
                    rope(&mut q[r * qn..(r + 1) * qn], pos, hd, c.rope_theta);
                    rope(&mut k[r * kvn..(r + 1) * kvn], pos, hd, c.rope_theta);
                }
                let mut start = 0;
                for (cache, toks) in seqs.iter_mut() {
                    cache.k[li].extend_from_slice(&k[start * kvn..(start + toks.len()) * kvn]);
                    cache.v[li].extend_from_slice(&v[start * kvn..(start + toks.len()) * kvn]);
                    start += toks.len();
                }
                let caches: Vec<(&[f32], &[f32])> = seqs.iter().map(|(cache, _)| (&cache.k[li][..], &cache.v[li][..])).collect();
                let att = super::attention::attention(&q, &rows, &caches, c);
                let o = linear(d, &att, m, &l.wo, h, qn)?;
                x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
                let xn = rmsnorm(&x, &l.ffn_norm, c.eps);
                let [g, u] = linear_group(d, &xn, m, [(&l.wg, c.intermediate), (&l.wu, c.intermediate)], h)?;
                let a: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
                let dn = linear(d, &a, m, &l.wd, h, c.intermediate)?;
                x.iter_mut().zip(&dn).for_each(|(a, b)| *a += b);
                if let Some(t) = trace.as_deref_mut() {
                    t.push(x.clone());
                }
            }
            Ok(())
        })();
        if let Err(e) = layers {
            for (cache, _) in seqs.iter_mut() {
                let keep = cache.len * kvn;
                cache.k.iter_mut().chain(cache.v.iter_mut()).for_each(|layer| layer.truncate(keep));
            }
            return Err(e);
        }
        for (cache, toks) in seqs.iter_mut() {
            cache.len += toks.len();
        }
        // Logits for the last new token of each sequence only.
        let mut last = Vec::with_capacity(seqs.len() * h);
        let mut end = 0;
        for (_, toks) in seqs.iter() {
            end += toks.len();
            last.extend_from_slice(&x[(end - 1) * h..end * h]);
        }
        let xn = rmsnorm(&last, &self.out_norm, c.eps);
        let logits = linear(d, &xn, seqs.len(), &self.head, c.vocab, h)?;
        Ok(logits.chunks(c.vocab).map(|r| r.to_vec()).collect())
    }
}

/// `Y[m, n] = X[m, k] · W[n, k]^T` through the dispatcher.
fn linear(d: &Dispatcher<CpuBackend>, x: &[f32], m: usize, w: &HostTensor, n: usize, k: usize) -> Result<Vec<f32>> {
    // The weights' storage is part of the key: packed weights dispatch quantized problems.
    let p = Problem::linear(DType::F32, m, n, k).and_then(|p| p.with_weights(w.wformat())).map_err(Error::runtime)?;
    // The dispatcher works on backend buffers; activations are moved in and out without copies.
    let xt = HostTensor::F32(x.to_vec());
    let mut y = HostTensor::F32(vec![0f32; m * n]);
    d.gemm(&p, &xt, w, &mut y)?;
    match y {
        HostTensor::F32(v) => Ok(v),
        _ => unreachable!("f32 problem"),
    }
}

/// Several `linear`s of the same input run side by side in the pool: a decode step's
/// small GEMMs (k and v are 192 x 576 here, single-threaded by the table) would otherwise
/// leave the other cores idle, and each would pay its own fork and join.
fn linear_group<const G: usize>(
    d: &Dispatcher<CpuBackend>,
    x: &[f32],
    m: usize,
    ws: [(&HostTensor, usize); G],
    k: usize,
) -> Result<[Vec<f32>; G]> {
    let ys: Vec<Result<Vec<f32>>> = ws.par_iter().map(|&(w, n)| linear(d, x, m, w, n, k)).collect();
    let ys = ys.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(ys.try_into().unwrap_or_else(|_| unreachable!("one output per weight")))
}

fn rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let h = w.len();
    let mut out = vec![0f32; x.len()];
    for (o, r) in out.chunks_mut(h).zip(x.chunks(h)) {
        let ms = r.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / h as f64;
        let inv = 1.0 / (ms as f32 + eps).sqrt();
        for i in 0..h {
            o[i] = r[i] * inv * w[i];
        }
    }
    out
}

/// Rotary embedding on every head of `v` (`[heads × hd]`), adjacent pairs (2i, 2i+1).
fn rope(v: &mut [f32], pos: usize, hd: usize, theta: f32) {
    // The angles depend on the pair only: computed once for all heads.
    let rot: Vec<(f64, f64)> = (0..hd / 2)
        .map(|i| (pos as f64 * (theta as f64).powf(-2.0 * i as f64 / hd as f64)).sin_cos())
        .collect();
    for head in v.chunks_mut(hd) {
        for (i, &(s, c)) in rot.iter().enumerate() {
            let (a, b) = (head[2 * i] as f64, head[2 * i + 1] as f64);
            head[2 * i] = (a * c - b * s) as f32;
            head[2 * i + 1] = (a * s + b * c) as f32;
        }
    }
}

