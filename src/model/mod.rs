//! The inference runtime: a real model (GGUF), its tokenizer, the forward pass with every
//! GEMM dispatched by the tuned table, and generation.

pub mod attention;
pub mod cuda;
pub mod hf;
pub mod llama;
pub mod runtime;
pub mod sampler;
pub mod tokenizer;
pub mod weights;

use crate::backend::cpu::CpuBackend;
use crate::dispatch::Dispatcher;
use crate::error::Result;
use crate::problem::Phase;
use llama::Llama;
use runtime::{CpuRuntime, Runtime};
use sampler::Sampler;
use std::time::{Duration, Instant};

/// Timing of one generation.
#[derive(Clone, Debug, Default)]
pub struct GenStats {
    pub prompt_tokens: usize,
    pub generated: usize,
    pub prefill: Duration,
    pub decode: Duration,
    pub stopped_by_eos: bool,
}

impl GenStats {
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }
    pub fn decode_tok_s(&self) -> f64 {
        self.generated.saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// `generate_on` with the f32 CPU model and a dispatcher.
pub fn generate(
    model: &Llama,
    d: &Dispatcher<CpuBackend>,
    prompt: &[u32],
    max_tokens: usize,
    stop: &[u32],
    sampler: &mut Sampler,
    on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<GenStats> {
    generate_on(&mut CpuRuntime { model, d }, prompt, max_tokens, stop, sampler, on_token)
}

/// Generates up to `max_tokens` after `prompt`, calling `on_token` with each new id; stops
/// at a stop token (not passed on) or when `on_token` returns false.
pub fn generate_on<R: Runtime>(
    rt: &mut R,
    prompt: &[u32],
    max_tokens: usize,
    stop: &[u32],
    sampler: &mut Sampler,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<GenStats> {
    let mut cache = rt.new_cache()?;
    let mut stats = GenStats { prompt_tokens: prompt.len(), ..GenStats::default() };
    if max_tokens == 0 || prompt.is_empty() {
        return Ok(stats);
    }
    // Plain greedy decoding takes the argmax where the logits are (on a GPU: no copy).
    let greedy = sampler.is_plain_greedy();
    let mut step = |rt: &mut R, cache: &mut R::Cache, toks: &[u32]| -> Result<u32> {
        Ok(if greedy { rt.forward_greedy(&mut [(cache, toks)])?[0] } else { sampler.sample(&rt.forward(&mut [(cache, toks)])?[0]) })
    };
    let t = Instant::now();
    rt.set_phase(Phase::Prefill);
    let mut next = step(rt, &mut cache, prompt)?;
    stats.prefill = t.elapsed();
    let t = Instant::now();
    rt.set_phase(Phase::Decode);
    loop {
        if stop.contains(&next) {
            stats.stopped_by_eos = true;
            break;
        }
        stats.generated += 1;
        if !on_token(next)? || stats.generated >= max_tokens {
            break;
        }
        next = step(rt, &mut cache, &[next])?;
    }
    stats.decode = t.elapsed();
    Ok(stats)
}
