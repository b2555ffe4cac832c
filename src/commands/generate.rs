use super::interrupt;
use super::with_runtime;
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::cli::{BackendName, GenerateArgs};
use crate::error::{Error, Result};
use crate::model::generate_on;
use crate::model::runtime::Runtime;
use crate::model::sampler::Sampler;
use crate::model::tokenizer::{StreamDecoder, Tokenizer};
use crate::problem::Phase;
use std::io::Write;
use std::time::Instant;

pub fn run(a: &GenerateArgs) -> Result<()> {
    a.exec.check(a.record.as_deref())?;
    let t = Instant::now();
    // Ctrl-C or SIGTERM ends the generation at the next token and keeps its --record.
    interrupt::install(true, true);
    let tok = Tokenizer::load(&a.model)?;
    let slots = a.batch.max(1);
    with_runtime!(&a.exec, &a.model, a.table.as_deref(), a.strict, a.record.as_deref(), slots, (rt, stats) => {
        let mut rt = rt;
        let ids = if a.chat { tok.chat_ids(&[("user".into(), a.prompt.clone())])? } else { tok.encode(&a.prompt)? };
        if ids.is_empty() {
            return Err(Error::input("the prompt is empty (no tokens)"));
        }
        let context = rt.config().context;
        if ids.len() >= context {
            return Err(Error::input(format!("the prompt has {} tokens; the model's context holds {context}", ids.len())));
        }
        // Generation stops at the end of the context rather than failing there.
        let room = context - ids.len();
        if a.max_tokens > room {
            eprintln!("note: --max-tokens {} cut to {room}, what fits in the context after the prompt", a.max_tokens);
        }
        let a = &GenerateArgs { max_tokens: a.max_tokens.min(room), ..a.clone() };
        eprintln!(
            "loaded {} on {:?} in {:.2} s; prompt: {} tokens",
            a.model.display(),
            a.exec.backend(),
            t.elapsed().as_secs_f64(),
            ids.len()
        );
        if a.batch > 1 {
            batched(a, &mut rt, &tok, &ids)?;
        } else {
            single(a, &mut rt, &tok, &ids)?;
        }
        eprintln!("dispatch: {}", stats.coverage().summary());
        stats.flush_record()?;
        if interrupt::requested() {
            let kept = a.record.as_ref().map(|r| format!("; the calls so far are recorded in {}", r.display())).unwrap_or_default();
            return Err(Error::Interrupted(format!("interrupted{kept}")));
        }
        Ok(())
    })
}

fn single<R: Runtime>(a: &GenerateArgs, rt: &mut R, tok: &Tokenizer, ids: &[u32]) -> Result<()> {
    let mut sampler = Sampler::new(a.temperature, a.top_p, a.seed);
    let stop: Vec<u32> = if a.ignore_eos { Vec::new() } else { tok.stop.clone() };
    for _ in 0..a.warmup {
        generate_on(rt, ids, a.max_tokens, &stop, &mut Sampler::new(a.temperature, a.top_p, a.seed), |_| Ok(true))?;
    }
    let mut stream = StreamDecoder::new();
    let mut out = std::io::stdout().lock();
    let stats = generate_on(rt, ids, a.max_tokens, &stop, &mut sampler, |id| {
        if a.ids {
            write!(out, "{id} ").ok();
        } else {
            write!(out, "{}", stream.push(tok, id)?).ok();
        }
        out.flush().ok();
        Ok(!interrupt::requested())
    })?;
    if !a.ids {
        write!(out, "{}", stream.finish(tok)?).ok(); // a character cut short at the end
    }
    writeln!(out).ok();
    eprintln!(
        "prefill: {} tokens in {:.3} s ({:.1} tok/s); decode: {} tokens in {:.3} s ({:.1} tok/s){}",
        stats.prompt_tokens,
        stats.prefill.as_secs_f64(),
        stats.prefill_tok_s(),
        stats.generated,
        stats.decode.as_secs_f64(),
        stats.decode_tok_s(),
        if stats.stopped_by_eos { "; stopped at end of turn" } else { "" }
    );
    Ok(())
}

/// `--batch N`: N copies of the prompt, prefilled one by one, then decoded together.
fn batched<R: Runtime>(a: &GenerateArgs, rt: &mut R, tok: &Tokenizer, ids: &[u32]) -> Result<()> {
    let n = a.batch;
    if a.warmup > 0 {
        return Err(Error::input("--warmup applies to single-sequence generation (without --batch)"));
    }
    let mut caches = (0..n).map(|_| rt.new_cache()).collect::<Result<Vec<_>>>()?;
    let mut samplers: Vec<Sampler> = (0..n).map(|i| Sampler::new(a.temperature, a.top_p, a.seed + i as u64)).collect();
    let t = Instant::now();
    rt.set_phase(Phase::Prefill);
    let mut next = Vec::with_capacity(n);
    for (c, s) in caches.iter_mut().zip(samplers.iter_mut()) {
        let l = rt.forward(&mut [(c, ids)])?.remove(0);
        next.push(s.sample(&l));
    }
    let prefill = t.elapsed();
    let t = Instant::now();
    rt.set_phase(Phase::Decode);
    let mut first = Vec::new();
    let mut live = vec![true; n];
    let mut produced = 0usize;
    for step in 0..a.max_tokens {
        if interrupt::requested() {
            break;
        }
        for i in 0..n {
            if live[i] && !a.ignore_eos && tok.stop.contains(&next[i]) {
                live[i] = false;
            }
        }
        let active: Vec<usize> = (0..n).filter(|&i| live[i]).collect();
        if active.is_empty() {
            break;
        }
        produced += active.len();
        if live[0] {
            first.push(next[0]);
        }
        if step + 1 == a.max_tokens {
            break;
        }
        let toks: Vec<[u32; 1]> = active.iter().map(|&i| [next[i]]).collect();
        let mut refs: Vec<(&mut R::Cache, &[u32])> = Vec::new();
        let mut it = caches.iter_mut().enumerate().filter(|(i, _)| live[*i]);
        for t in &toks {
            let (_, c) = it.next().ok_or_else(|| Error::runtime("one cache per active sequence"))?;
            refs.push((c, &t[..]));
        }
        if samplers.iter().all(|s| s.is_plain_greedy()) {
            for (&i, id) in active.iter().zip(rt.forward_greedy(&mut refs)?) {
                next[i] = id;
            }
        } else {
            for (&i, l) in active.iter().zip(rt.forward(&mut refs)?) {
                next[i] = samplers[i].sample(&l);
            }
        }
    }
    let decode = t.elapsed();
    println!("{}", tok.decode(&first)?);
    eprintln!(
        "batch {n}: prefill {} x {} tokens in {:.3} s ({:.1} tok/s); decode {produced} tokens in {:.3} s ({:.1} tok/s aggregate, {:.1} steps/s)",
        n,
        ids.len(),
        prefill.as_secs_f64(),
        (n * ids.len()) as f64 / prefill.as_secs_f64(),
        decode.as_secs_f64(),
        produced as f64 / decode.as_secs_f64(),
        (produced as f64 / n as f64) / decode.as_secs_f64()
    );
    Ok(())
}
