//! What `generate` and `serve` need from a model executor, so that the same generation
//! loop and batching engine drive the CPU path (f32, llama.rs) and the GPU path (cuda.rs).

use super::llama::{Config, KvCache, Llama};
use super::sampler::Sampler;
use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::dispatch::{Coverage, Dispatcher};
use crate::error::Result;
use crate::problem::Phase;
use std::ops::Deref;

/// One sequence's KV cache.
pub trait SeqCache: Send {
    /// Tokens cached so far.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The dispatcher's side a runtime exposes: phase for recording, coverage, the record.
pub trait DispatchStats: Send + Sync {
    fn set_phase(&self, p: Phase);
    fn coverage(&self) -> Coverage;
    fn flush_record(&self) -> Result<()>;
}

impl<B: Backend> DispatchStats for Dispatcher<B> {
    fn set_phase(&self, p: Phase) {
        Dispatcher::set_phase(self, p)
    }
    fn coverage(&self) -> Coverage {
        Dispatcher::coverage(self)
    }
    fn flush_record(&self) -> Result<()> {
        Dispatcher::flush_record(self)
    }
}

/// A model ready to run forward passes with every GEMM dispatched by a table.
pub trait Runtime: Send {
    type Cache: SeqCache;
    fn config(&self) -> &Config;
    /// An empty cache for a new sequence (fails when a GPU runtime has no slot free).
    fn new_cache(&mut self) -> Result<Self::Cache>;
    /// Runs the new `tokens` of each sequence (appending to its cache) and returns the
    /// logits of each sequence's last new token.
    fn forward(&mut self, seqs: &mut [(&mut Self::Cache, &[u32])]) -> Result<Vec<Vec<f32>>>;
    /// `forward`, returning each sequence's greedy next token (the first maximum) instead
    /// of its logits; a GPU runtime picks it on the device and copies only the ids.
    fn forward_greedy(&mut self, seqs: &mut [(&mut Self::Cache, &[u32])]) -> Result<Vec<u32>> {
        Ok(self.forward(seqs)?.iter().map(|l| Sampler::greedy().sample(l)).collect())
    }
    /// The phase the following GEMMs belong to (for recording).
    fn set_phase(&self, p: Phase);
}

impl SeqCache for KvCache {
    fn len(&self) -> usize {
        self.len
    }
}

/// The f32 CPU path: a model and a dispatcher, owned (`Arc`, for the serving thread) or
/// borrowed.
pub struct CpuRuntime<L, D> {
    pub model: L,
    pub d: D,
}

impl<L, D> Runtime for CpuRuntime<L, D>
where
    L: Deref<Target = Llama> + Send,
    D: Deref<Target = Dispatcher<CpuBackend>> + Send,
{
    type Cache = KvCache;
    fn config(&self) -> &Config {
        &self.model.cfg
    }
    fn new_cache(&mut self) -> Result<KvCache> {
        Ok(KvCache::new(&self.model.cfg))
    }
    fn forward(&mut self, seqs: &mut [(&mut KvCache, &[u32])]) -> Result<Vec<Vec<f32>>> {
        self.model.forward(&self.d, seqs)
    }
    fn set_phase(&self, p: Phase) {
        self.d.set_phase(p)
    }
}
