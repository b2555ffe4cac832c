use crate::backend::cpu::CpuBackend;
use crate::cli::GenerateArgs;
use crate::dispatch::Dispatcher;
use crate::error::Result;

use crate::model::llama::Llama;
use crate::model::sampler::Sampler;
use crate::model::tokenizer::{StreamDecoder, Tokenizer};
use crate::model::generate;
use std::io::Write;
use std::time::Instant;

pub fn run(a: &GenerateArgs) -> Result<()> {
    let t = Instant::now();
    let (model, tok, d) = super::load_runtime(&a.model, a.table.as_deref(), a.strict, a.record.as_deref(), a.weights)?;
    let text = if a.chat { tok.chat_prompt(&[("user".into(), a.prompt.clone())])? } else { a.prompt.clone() };
    let ids = tok.encode(&text)?;
    eprintln!("loaded {} in {:.2} s; prompt: {} tokens", a.model.display(), t.elapsed().as_secs_f64(), ids.len());
    if a.batch > 1 {
        return batched(a, &model, &tok, &d, &ids);
    }
    let mut sampler = Sampler::new(a.temperature, a.top_p, a.seed);
    let stop: Vec<u32> = if a.ignore_eos { Vec::new() } else { tok.stop.clone() };
    let mut stream = StreamDecoder::new();
    let mut out = std::io::stdout().lock();
    let mut generated = Vec::new();
    let stats = generate(&model, &d, &ids, a.max_tokens, &stop, &mut sampler, |id| {
        generated.push(id);
        if a.ids {
            write!(out, "{id} ").ok();
        } else {
            write!(out, "{}", stream.push(&tok, id)?).ok();
        }
        out.flush().ok();
        Ok(true)
    })?;
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
    eprintln!("dispatch: {}", d.coverage().summary());
    d.flush_record()?;
    Ok(())
}

/// `--batch N`: N copies of the prompt, prefilled one by one, then decoded together.
fn batched(a: &GenerateArgs, model: &Llama, tok: &Tokenizer, d: &Dispatcher<CpuBackend>, ids: &[u32]) -> Result<()> {
    use crate::model::llama::KvCache;
    use crate::problem::Phase;
    let n = a.batch;
    let mut caches: Vec<KvCache> = (0..n).map(|_| KvCache::new(&model.cfg)).collect();
    let mut samplers: Vec<Sampler> = (0..n).map(|i| Sampler::new(a.temperature, a.top_p, a.seed + i as u64)).collect();
    let t = Instant::now();
    d.set_phase(Phase::Prefill);
    let mut next = Vec::with_capacity(n);
    for (c, s) in caches.iter_mut().zip(samplers.iter_mut()) {
        let l = model.forward(d, &mut [(c, ids)])?.remove(0);
        next.push(s.sample(&l));
    }
    let prefill = t.elapsed();
    let t = Instant::now();
    d.set_phase(Phase::Decode);
    let mut first = Vec::new();
    let mut live = vec![true; n];
    let mut produced = 0usize;
    for step in 0..a.max_tokens {
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
        let logits = {
            let mut refs: Vec<(&mut KvCache, &[u32])> = Vec::new();
            let mut it = caches.iter_mut().enumerate().filter(|(i, _)| live[*i]);
            for t in &toks {
                let (_, c) = it.next().expect("one cache per active sequence");
                refs.push((c, &t[..]));
            }
            model.forward(d, &mut refs)?
        };
        for (&i, l) in active.iter().zip(logits) {
            next[i] = samplers[i].sample(&l);
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
    eprintln!("dispatch: {}", d.coverage().summary());
    d.flush_record()?;
    Ok(())
}
