//! The batching engine: one thread owns the model and runs continuous batching. New
//! requests are prefilled one by one (M = prompt tokens); then every active sequence
//! advances by one token in a single forward pass, so the decode GEMMs run with
//! M = number of active sequences, exactly where tuned M buckets matter. Finished
//! sequences leave the batch at once and waiting ones join at the next step.

use crate::model::runtime::{Runtime, SeqCache};
use crate::model::sampler::Sampler;
use crate::model::tokenizer::{StreamDecoder, Tokenizer};
use crate::problem::Phase;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// What a request asks the engine for.
pub struct Job {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    pub events: UnboundedSender<Event>,
}

/// What the engine sends back for a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A piece of generated text (may be empty while a character is incomplete).
    Text(String),
    Done { reason: FinishReason, prompt_tokens: usize, completion_tokens: usize },
    Error(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// A decode step's result: logits to sample from, or greedy ids picked by the runtime
/// (when every active sequence decodes greedily).
enum Step {
    Logits(Vec<Vec<f32>>),
    Ids(Vec<u32>),
}

struct Active<C> {
    job: Job,
    cache: C,
    sampler: Sampler,
    decoder: StreamDecoder,
    next: u32,
    generated: usize,
}

/// A handle to submit jobs; the queue is bounded.
#[derive(Clone)]
pub struct Engine {
    tx: SyncSender<Job>,
    pub active: Arc<AtomicUsize>,
    pub max_batch: usize,
}

pub enum Submit {
    Ok,
    Busy,
    Down,
}

impl Engine {
    pub fn start<R: Runtime + 'static>(rt: R, tok: Arc<Tokenizer>, max_batch: usize, queue: usize) -> Engine {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let active = Arc::new(AtomicUsize::new(0));
        let a = active.clone();
        std::thread::Builder::new()
            .name("gemmtune-engine".into())
            .spawn(move || run(rt, tok, rx, a, max_batch))
            .expect("spawn engine thread");
        Engine { tx, active, max_batch }
    }

    pub fn submit(&self, job: Job) -> Submit {
        match self.tx.try_send(job) {
            Ok(()) => Submit::Ok,
            Err(TrySendError::Full(_)) => Submit::Busy,
            Err(TrySendError::Disconnected(_)) => Submit::Down,
        }
    }
}

fn run<R: Runtime>(mut rt: R, tok: Arc<Tokenizer>, rx: Receiver<Job>, active_count: Arc<AtomicUsize>, max_batch: usize) {
    let context = rt.config().context;
    let mut active: Vec<Active<R::Cache>> = Vec::new();
    loop {
        // Admit waiting jobs (block when idle).
        while active.len() < max_batch {
            let job = if active.is_empty() {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(j) => j,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.try_recv() {
                    Ok(j) => j,
                    Err(_) => break,
                }
            };
            if job.events.is_closed() {
                continue; // the client went away while waiting
            }
            let mut cache = match rt.new_cache() {
                Ok(c) => c,
                Err(e) => {
                    let _ = job.events.send(Event::Error(e.to_string()));
                    continue;
                }
            };
            rt.set_phase(Phase::Prefill);
            match rt.forward(&mut [(&mut cache, &job.prompt)]) {
                Ok(mut logits) => {
                    let mut sampler = Sampler::new(job.temperature, job.top_p, job.seed);
                    let next = sampler.sample(&logits.remove(0));
                    active.push(Active { job, cache, sampler, decoder: StreamDecoder::new(), next, generated: 0 });
                }
                Err(e) => {
                    let _ = job.events.send(Event::Error(e.to_string()));
                }
            }
        }
        active_count.store(active.len(), Ordering::Relaxed);
        if active.is_empty() {
            continue;
        }
        // Emit each sequence's pending token; retire the finished ones.
        active.retain_mut(|a| {
            let done = |a: &Active<R::Cache>, reason| Event::Done {
                reason,
                prompt_tokens: a.job.prompt.len(),
                completion_tokens: a.generated,
            };
            if tok.stop.contains(&a.next) {
                let _ = a.job.events.send(done(a, FinishReason::Stop));
                return false;
            }
            a.generated += 1;
            let text = a.decoder.push(&tok, a.next).unwrap_or_default();
            if a.job.events.send(Event::Text(text)).is_err() {
                return false; // client disconnected: free the slot
            }
            let full = a.cache.len() + 1 >= context;
            if a.generated >= a.job.max_tokens || full {
                let _ = a.job.events.send(done(a, FinishReason::Length));
                return false;
            }
            true
        });
        active_count.store(active.len(), Ordering::Relaxed);
        if active.is_empty() {
            continue;
        }
        // One decode step for the whole batch: M = active sequences.
        rt.set_phase(Phase::Decode);
        let toks: Vec<[u32; 1]> = active.iter().map(|a| [a.next]).collect();
        let greedy = active.iter().all(|a| a.sampler.is_plain_greedy());
        let result = {
            let mut seqs: Vec<(&mut R::Cache, &[u32])> =
                active.iter_mut().zip(&toks).map(|(a, t)| (&mut a.cache, &t[..])).collect();
            if greedy {
                rt.forward_greedy(&mut seqs).map(Step::Ids)
            } else {
                rt.forward(&mut seqs).map(Step::Logits)
            }
        };
        match result {
            Ok(Step::Logits(logits)) => {
                for (a, l) in active.iter_mut().zip(logits) {
                    a.next = a.sampler.sample(&l);
                }
            }
            Ok(Step::Ids(ids)) => {
                for (a, id) in active.iter_mut().zip(ids) {
                    a.next = id;
                }
            }
            Err(e) => {
                for a in active.drain(..) {
                    let _ = a.job.events.send(Event::Error(e.to_string()));
                }
            }
        }
    }
}
