//! The batching engine: one thread owns the model and runs continuous batching. Every
//! active sequence advances by one token in a single forward pass, so the decode GEMMs run
//! with M = number of active sequences, exactly where tuned M buckets matter. Finished
//! sequences leave the batch at once. New requests are prefilled between decode steps,
//! those waiting together in one forward call (M = their prompt tokens), `prefill_chunk`
//! tokens a call (a longer first prompt whole when nothing else decodes), so a long prompt
//! delays the others' next token by one chunk, not by its whole prefill.
//!
//! Admission: at most `max_batch` sequences decode and `queue` more wait; a request past
//! that gets 429 at once. Each job carries a slot of that count, freed when the engine
//! drops the job, whichever way it ends.

use super::stop::StopText;
use crate::model::runtime::{Runtime, SeqCache};
use crate::model::sampler::Sampler;
use crate::model::tokenizer::{StreamDecoder, Tokenizer};
use crate::problem::Phase;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
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
    /// Stop sequences (none empty).
    pub stop: Vec<String>,
    pub events: UnboundedSender<Event>,
}

/// What the engine sends back for a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A piece of generated text (never empty).
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

/// One admitted request's share of `max_batch + queue`, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A job with its slot, as it travels to and through the engine.
struct Queued {
    job: Job,
    _slot: Slot,
}

/// A decode step's result: logits to sample from, or greedy ids picked by the runtime
/// (when every active sequence decodes greedily).
enum Step {
    Logits(Vec<Vec<f32>>),
    Ids(Vec<u32>),
}

struct Active<C> {
    q: Queued,
    cache: C,
    sampler: Sampler,
    decoder: StreamDecoder,
    stop: StopText,
    next: u32,
    generated: usize,
}

/// A sequence whose prompt is being prefilled: `done` tokens of it are in the cache.
struct Prefill<C> {
    q: Queued,
    cache: C,
    done: usize,
}

/// A handle to submit jobs.
#[derive(Clone)]
pub struct Engine {
    tx: Sender<Queued>,
    /// Jobs admitted and not yet finished (waiting, prefilling or decoding).
    load: Arc<AtomicUsize>,
    capacity: usize,
    alive: Arc<AtomicBool>,
    pub active: Arc<AtomicUsize>,
    pub max_batch: usize,
}

pub enum Submit {
    Ok,
    Busy,
    Down,
}

/// Marks the engine stopped when its thread ends, by return or by panic.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Engine {
    pub fn start<R: Runtime + 'static>(rt: R, tok: Arc<Tokenizer>, limits: super::Limits) -> Engine {
        let super::Limits { max_batch, queue, prefill_chunk } = limits;
        let (tx, rx) = std::sync::mpsc::channel::<Queued>();
        let active = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let (a, flag) = (active.clone(), Alive(alive.clone()));
        std::thread::Builder::new()
            .name("gemmtune-engine".into())
            .spawn(move || {
                let _alive = flag;
                run(rt, tok, rx, a, max_batch, prefill_chunk.max(1))
            })
            .expect("spawn engine thread");
        Engine { tx, load: Arc::new(AtomicUsize::new(0)), capacity: max_batch + queue, alive, active, max_batch }
    }

    /// Whether the engine thread is still running.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    pub fn submit(&self, job: Job) -> Submit {
        if !self.is_alive() {
            return Submit::Down;
        }
        if self.load.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.load.fetch_sub(1, Ordering::SeqCst);
            return Submit::Busy;
        }
        let q = Queued { job, _slot: Slot(self.load.clone()) };
        match self.tx.send(q) {
            Ok(()) => Submit::Ok,
            Err(_) => Submit::Down, // the job (and its slot) came back and is dropped
        }
    }
}

fn run<R: Runtime>(mut rt: R, tok: Arc<Tokenizer>, rx: Receiver<Queued>, active_count: Arc<AtomicUsize>, max_batch: usize, chunk: usize) {
    let context = rt.config().context;
    let mut waiting: VecDeque<Queued> = VecDeque::new();
    let mut prefills: Vec<Prefill<R::Cache>> = Vec::new();
    let mut active: Vec<Active<R::Cache>> = Vec::new();
    loop {
        // Take new jobs (block when idle); forget the ones whose client left while waiting.
        if active.is_empty() && prefills.is_empty() && waiting.is_empty() {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(q) => waiting.push_back(q),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        waiting.extend(rx.try_iter());
        waiting.retain(|q| !q.job.events.is_closed());
        while active.len() + prefills.len() < max_batch {
            let Some(q) = waiting.pop_front() else { break };
            // Refused here, not by the forward call, which it shares with other prompts.
            if let Some(why) = unrunnable(&q.job.prompt, rt.config()) {
                let _ = q.job.events.send(Event::Error(why));
                continue;
            }
            match rt.new_cache() {
                Ok(cache) => prefills.push(Prefill { q, cache, done: 0 }),
                Err(e) => {
                    let _ = q.job.events.send(Event::Error(e.to_string()));
                }
            }
        }
        // One prefill call for the prompts being prefilled, in arrival order: `chunk`
        // tokens, or the first prompt whole when nothing else is decoding (a call's work
        // and activations stay bounded, and the first streams start after one chunk).
        prefills.retain(|p| !p.q.job.events.is_closed());
        if !prefills.is_empty() {
            let spans: Vec<(usize, usize)> = prefills.iter().map(|p| (p.done, p.q.job.prompt.len())).collect();
            let budget = if active.is_empty() { chunk.max(spans[0].1 - spans[0].0) } else { chunk };
            let ends = prefill_ends(&spans, budget);
            rt.set_phase(Phase::Prefill);
            let result = {
                let mut seqs: Vec<(&mut R::Cache, &[u32])> = prefills
                    .iter_mut()
                    .zip(&ends)
                    .filter(|(p, &end)| end > p.done)
                    .map(|(p, &end)| (&mut p.cache, &p.q.job.prompt[p.done..end]))
                    .collect();
                rt.forward(&mut seqs)
            };
            match result {
                Ok(logits) => {
                    let mut logits = logits.into_iter();
                    for (mut p, end) in std::mem::take(&mut prefills).into_iter().zip(ends) {
                        if end == p.done {
                            prefills.push(p); // no tokens this call
                            continue;
                        }
                        let l = logits.next().expect("one row of logits a sequence run");
                        p.done = end;
                        if end < p.q.job.prompt.len() {
                            prefills.push(p);
                            continue;
                        }
                        let j = &p.q.job;
                        let mut sampler = Sampler::new(j.temperature, j.top_p, j.seed);
                        let next = sampler.sample(&l);
                        let stop = StopText::new(j.stop.clone());
                        active.push(Active { q: p.q, cache: p.cache, sampler, decoder: StreamDecoder::new(), stop, next, generated: 0 });
                    }
                }
                Err(e) => {
                    // Those of the call fail; the others wait for the next one.
                    for (p, end) in std::mem::take(&mut prefills).into_iter().zip(ends) {
                        if end > p.done {
                            let _ = p.q.job.events.send(Event::Error(e.to_string()));
                        } else {
                            prefills.push(p);
                        }
                    }
                }
            }
        }
        active_count.store(active.len(), Ordering::Relaxed);
        if active.is_empty() {
            continue;
        }
        // Emit each sequence's pending token; retire the finished ones.
        active.retain_mut(|a| emit(a, &tok, context));
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
                    let _ = a.q.job.events.send(Event::Error(e.to_string()));
                }
            }
        }
    }
}

/// Why a prompt cannot be prefilled, if it cannot: the HTTP layer refuses these first, but
/// a prompt that reached a shared forward call would fail the other prompts of the call.
fn unrunnable(prompt: &[u32], c: &crate::model::llama::Config) -> Option<String> {
    if prompt.is_empty() {
        return Some("the prompt is empty".into());
    }
    if prompt.len() >= c.context {
        return Some(format!("the prompt has {} tokens; the context holds {}", prompt.len(), c.context));
    }
    prompt.iter().find(|&&t| t as usize >= c.vocab).map(|t| format!("token id {t} is outside the vocabulary of {}", c.vocab))
}

/// Where each prompt's prefill gets to in one call: `spans` are (tokens done, prompt
/// length) in arrival order; `budget` tokens go to them in that order (a prompt not
/// reached keeps its `done`).
fn prefill_ends(spans: &[(usize, usize)], budget: usize) -> Vec<usize> {
    let mut left = budget;
    spans
        .iter()
        .map(|&(done, len)| {
            let take = (len - done).min(left);
            left -= take;
            done + take
        })
        .collect()
}

/// Sends a sequence's pending token as text; false when the sequence is finished (an end
/// token, a stop sequence, its length limit or the context) or its client has gone.
fn emit<C: SeqCache>(a: &mut Active<C>, tok: &Tokenizer, context: usize) -> bool {
    let events = &a.q.job.events;
    let send_text = |t: String| t.is_empty() || events.send(Event::Text(t)).is_ok();
    let done = |reason, generated| Event::Done { reason, prompt_tokens: a.q.job.prompt.len(), completion_tokens: generated };
    // At the end, what the decoder and the stop matcher hold back goes out first.
    let flush = |decoder: &mut StreamDecoder, stop: &mut super::stop::StopText| {
        let held = decoder.finish(tok).unwrap_or_default();
        let (text, _) = stop.push(&held);
        text + &stop.finish()
    };
    if tok.stop.contains(&a.next) {
        let rest = flush(&mut a.decoder, &mut a.stop);
        let _ = send_text(rest) && events.send(done(FinishReason::Stop, a.generated)).is_ok();
        return false;
    }
    a.generated += 1;
    let piece = a.decoder.push(tok, a.next).unwrap_or_default();
    let (text, hit) = a.stop.push(&piece);
    if !send_text(text) || events.is_closed() {
        return false; // client disconnected: free the slot
    }
    if hit {
        let _ = events.send(done(FinishReason::Stop, a.generated));
        return false;
    }
    if a.generated >= a.q.job.max_tokens || a.cache.len() + 1 >= context {
        let rest = flush(&mut a.decoder, &mut a.stop);
        let _ = send_text(rest) && events.send(done(FinishReason::Length, a.generated)).is_ok();
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::{prefill_ends, unrunnable};
    use crate::model::llama::Config;

    #[test]
    fn prompts_that_would_fail_a_shared_prefill_call_are_refused_alone() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shapes/configs/smollm2-135m.json");
        let c = Config::from_model(&crate::profile::load(&path).unwrap(), 1e-5, 1e4, 64.0);
        assert_eq!(c.context, 64);
        assert_eq!(unrunnable(&[1, 2, 3], &c), None);
        assert_eq!(unrunnable(&[7; 63], &c), None);
        assert!(unrunnable(&[], &c).unwrap().contains("empty"));
        assert!(unrunnable(&[7; 64], &c).unwrap().contains("context holds 64"));
        assert!(unrunnable(&[1, c.vocab as u32], &c).unwrap().contains("outside the vocabulary"));
    }

    #[test]
    fn the_prefill_budget_goes_to_the_prompts_in_arrival_order() {
        assert_eq!(prefill_ends(&[(0, 40), (0, 30), (0, 100)], 128), vec![40, 30, 58]);
        assert_eq!(prefill_ends(&[(120, 300), (0, 5)], 128), vec![248, 0]);
        assert_eq!(prefill_ends(&[(0, 10), (3, 7)], 1000), vec![10, 7]);
        assert_eq!(prefill_ends(&[(0, 10), (0, 7)], 0), vec![0, 0]);
    }
}
